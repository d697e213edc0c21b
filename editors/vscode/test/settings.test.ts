import assert from "node:assert/strict";
import { test } from "node:test";
import {
  changeAction,
  DEFAULTS,
  didChangeConfigurationParams,
  enabledFor,
  initializationOptions,
  languages,
  serverLaunch,
  toggled,
} from "../src/logic/settings";

const reader = (values: Record<string, unknown>) => (key: string) => values[key];

test("defaults when nothing is set", () => {
  assert.deepEqual(initializationOptions(reader({})), DEFAULTS);
});

test("settings are passed as camelCase initializationOptions", () => {
  const opts = initializationOptions(
    reader({ model: "/models/qwen", device: "cuda:1", dtype: "bfloat16", drafts: 4, maxNewTokens: 64, logLevel: "DEBUG" }),
  );
  assert.deepEqual(opts, {
    model: "/models/qwen",
    device: "cuda:1",
    dtype: "bfloat16",
    drafts: 4,
    maxNewTokens: 64,
    logLevel: "debug",
  });
});

test("invalid values fall back to defaults or are clamped", () => {
  const opts = initializationOptions(
    reader({ model: "  ", device: "tpu", dtype: "fp8", drafts: 99, maxNewTokens: "12", logLevel: 3 }),
  );
  assert.equal(opts.model, "embedded");
  assert.equal(opts.device, "auto");
  assert.equal(opts.dtype, "auto");
  assert.equal(opts.drafts, 8);
  assert.equal(opts.maxNewTokens, 12);
  assert.equal(opts.logLevel, "info");
  assert.equal(initializationOptions(reader({ drafts: 0, maxNewTokens: -5 })).drafts, 1);
  assert.equal(initializationOptions(reader({ maxNewTokens: Number.NaN })).maxNewTokens, 48);
});

test("didChangeConfiguration puts the settings under the holefill section", () => {
  const params = didChangeConfigurationParams(reader({ maxNewTokens: 16 }));
  assert.equal(params.settings.holefill.maxNewTokens, 16);
  assert.equal(params.settings.holefill.model, "embedded");
});

test("server launch settings", () => {
  assert.deepEqual(serverLaunch(reader({})), { command: [], pythonPath: "", extraArgs: [], env: {} });
  const launch = serverLaunch(
    reader({
      "server.command": ["uvx", "", "holefill", 3],
      "server.pythonPath": " /venv/bin/python ",
      "server.extraArgs": ["--threads", "2"],
      "server.env": { HOLEFILL_CACHE_DIR: "/c", N: 2, BAD: { x: 1 } },
    }),
  );
  assert.deepEqual(launch, {
    command: ["uvx", "holefill"],
    pythonPath: "/venv/bin/python",
    extraArgs: ["--threads", "2"],
    env: { HOLEFILL_CACHE_DIR: "/c", N: "2" },
  });
});

test("languages default to python", () => {
  assert.deepEqual(languages(reader({})), ["python"]);
  assert.deepEqual(languages(reader({ languages: [] })), ["python"]);
  assert.deepEqual(languages(reader({ languages: ["python", "jupyter"] })), ["python", "jupyter"]);
});

test("enable per language with a * default", () => {
  assert.equal(enabledFor(undefined, "python"), true);
  assert.equal(enabledFor({ "*": false }, "python"), false);
  assert.equal(enabledFor({ "*": false, python: true }, "python"), true);
  assert.equal(enabledFor({ "*": true, python: false }, "python"), false);
  assert.equal(enabledFor({ python: "no" }, "python"), true);
});

test("toggling a language leaves the others alone", () => {
  const before = { "*": true, markdown: false };
  assert.deepEqual(toggled(before, "python"), { "*": true, markdown: false, python: false });
  assert.deepEqual(before, { "*": true, markdown: false });
  assert.deepEqual(toggled({ "*": true, python: false }, "python"), { "*": true, python: true });
});

test("which configuration changes restart, notify or stay local", () => {
  const affects = (...sections: string[]) => (s: string) => sections.some((x) => x === s || x.startsWith(`${s}.`));
  assert.equal(changeAction(affects("holefill.server.pythonPath")), "restart");
  assert.equal(changeAction(affects("holefill.languages")), "restart");
  assert.equal(changeAction(affects("holefill.model")), "notify");
  assert.equal(changeAction(affects("holefill.maxNewTokens")), "notify");
  assert.equal(changeAction(affects("holefill.enable")), "local");
  assert.equal(changeAction(affects("editor.fontSize")), "none");
});
