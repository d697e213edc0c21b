import assert from "node:assert/strict";
import { test } from "node:test";
import { INITIAL, isModelProgress, reduce, type Status, type StatusEvent, view } from "../src/logic/status";

const run = (...events: StatusEvent[]): Status => events.reduce(reduce, INITIAL);

test("start, load with progress, ready", () => {
  let s = run({ kind: "starting" });
  assert.equal(view(s).text, "$(sync~spin) holefill");
  s = reduce(s, { kind: "running" });
  assert.equal(s.phase, "loading");
  s = reduce(s, { kind: "progressBegin", title: "holefill: loading model", message: "embedded" });
  assert.equal(view(s).tooltip, "holefill: loading model (embedded)");
  s = reduce(s, { kind: "progressReport", percentage: 42.4 });
  assert.equal(view(s).text, "$(sync~spin) holefill 42%");
  assert.equal(s.detail, "embedded");
  s = reduce(s, { kind: "progressEnd", message: "ready: SmolLM2-135M on cpu (int8) in 0.6 s" });
  assert.equal(s.phase, "ready");
  assert.equal(view(s).text, "$(check) holefill");
  assert.equal(view(s).tooltip, "holefill: model SmolLM2-135M on cpu (int8) in 0.6 s");
  assert.equal(view(s).severity, "none");
});

test("a failed load is an error with the reason", () => {
  const s = run(
    { kind: "starting" },
    { kind: "progressBegin", title: "holefill: loading model" },
    { kind: "progressEnd", message: "failed: no such model directory: /nope" },
  );
  assert.equal(s.phase, "failed");
  assert.equal(view(s).severity, "error");
  assert.match(view(s).tooltip, /could not be loaded: no such model directory: \/nope/);
});

test("a superseded load keeps waiting for the newer one", () => {
  const s = run(
    { kind: "progressBegin", title: "holefill: loading model" },
    { kind: "progressEnd", message: "superseded by a newer configuration" },
  );
  assert.equal(s.phase, "loading");
  assert.equal(reduce(s, { kind: "progressEnd", message: "ready: x" }).phase, "ready");
});

test("a server that cannot start stays red until the next start", () => {
  let s = run({ kind: "starting" }, { kind: "startFailed", message: "spawn holefill ENOENT" });
  assert.equal(view(s).severity, "error");
  assert.match(view(s).tooltip, /could not start: spawn holefill ENOENT/);
  s = reduce(s, { kind: "stopped" });
  assert.equal(s.phase, "error");
  s = reduce(s, { kind: "starting" });
  assert.equal(s.phase, "starting");
});

test("a language switched off shows in the item and survives restarts", () => {
  let s = run({ kind: "progressEnd", message: "ready: x" }, { kind: "language", languageId: "python", enabled: false });
  assert.equal(view(s).text, "$(circle-slash) holefill");
  assert.match(view(s).tooltip, /off for python/);
  s = reduce(reduce(s, { kind: "starting" }), { kind: "progressEnd", message: "ready: y" });
  assert.equal(s.disabledFor, "python");
  s = reduce(s, { kind: "language", languageId: "python", enabled: true });
  assert.equal(view(s).text, "$(check) holefill");
});

test("stopped", () => {
  assert.equal(view(run({ kind: "progressEnd", message: "ready: x" }, { kind: "stopped" })).text, "$(circle-slash) holefill");
});

test("only the model-load progress drives the status bar", () => {
  assert.equal(isModelProgress("holefill/load/1a2b3c4d"), true);
  assert.equal(isModelProgress("holefill/index/1a2b3c4d"), false);
  assert.equal(isModelProgress(7), false);
});
