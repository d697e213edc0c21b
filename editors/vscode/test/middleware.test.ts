import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULTS } from "../src/logic/settings";
import { makeMiddleware } from "../src/middleware";

test("inline completion is asked only for enabled languages", () => {
  const m = makeMiddleware({ inlineEnabled: (l) => l === "python", pulledSettings: () => DEFAULTS });
  const calls: unknown[] = [];
  const next = (...args: unknown[]) => {
    calls.push(args);
    return ["item"];
  };
  assert.deepEqual(m.provideInlineCompletionItems({ languageId: "python" }, 1, 2, 3, next), ["item"]);
  assert.equal(m.provideInlineCompletionItems({ languageId: "markdown" }, 1, 2, 3, next), null);
  assert.equal(calls.length, 1);
});

test("the server's configuration pull gets the mapped holefill settings", async () => {
  const m = makeMiddleware({ inlineEnabled: () => true, pulledSettings: () => ({ ...DEFAULTS, maxNewTokens: 7 }) });
  const answer = await m.workspace.configuration(
    { items: [{ section: "holefill" }, { section: "python" }] },
    undefined,
    async () => [{ server: { command: [] }, enable: { "*": true } }, { x: 1 }],
  );
  assert.deepEqual(answer, [{ ...DEFAULTS, maxNewTokens: 7 }, { x: 1 }]);
  assert.equal(await m.workspace.configuration({ items: [] }, undefined, async () => null), null);
});
