import assert from "node:assert/strict";
import { test } from "node:test";
import {
  cliBase,
  contextCommand,
  display,
  explainFailure,
  processEnv,
  resolveCommand,
  serveCommand,
} from "../src/logic/commandLine";
import type { ServerLaunch } from "../src/logic/settings";

const launch = (over: Partial<ServerLaunch> = {}): ServerLaunch => ({
  command: [],
  pythonPath: "",
  extraArgs: [],
  env: {},
  ...over,
});

test("holefill from PATH by default", () => {
  assert.deepEqual(serveCommand(launch()), { command: "holefill", args: ["serve"] });
});

test("a Python interpreter runs the module", () => {
  assert.deepEqual(serveCommand(launch({ pythonPath: "/venv/bin/python" })), {
    command: "/venv/bin/python",
    args: ["-m", "holefill.cli", "serve"],
  });
});

test("an explicit command wins over the interpreter; a trailing serve is tolerated", () => {
  const l = launch({ command: ["uvx", "holefill"], pythonPath: "/venv/bin/python", extraArgs: ["--threads", "2"] });
  assert.deepEqual(serveCommand(l), { command: "uvx", args: ["holefill", "serve", "--threads", "2"] });
  assert.deepEqual(cliBase(launch({ command: ["holefill", "serve"] })), ["holefill"]);
  assert.deepEqual(cliBase(launch({ command: ["serve"] })), ["serve"]);
});

test("resolve and context command lines", () => {
  const l = launch({ pythonPath: "python3" });
  assert.deepEqual(resolveCommand(l, "/w/a.py"), {
    command: "python3",
    args: ["-m", "holefill.cli", "resolve", "/w/a.py", "--write", "--json"],
  });
  assert.deepEqual(contextCommand(l, "/w/a.py:3:5", "/w"), {
    command: "python3",
    args: ["-m", "holefill.cli", "context", "/w/a.py:3:5", "--workspace", "/w"],
  });
  assert.deepEqual(contextCommand(launch(), "a.py:1:1").args, ["context", "a.py:1:1"]);
});

test("the environment adds server.env to the host's", () => {
  const env = processEnv({ PATH: "/bin", GONE: undefined }, launch({ env: { HOLEFILL_THREADS: "2", PATH: "/x" } }));
  assert.deepEqual(env, { PATH: "/x", HOLEFILL_THREADS: "2" });
});

test("display quotes what a shell would need quoted", () => {
  assert.equal(display({ command: "holefill", args: ["context", "/a b/c.py:1:2"] }), "holefill context '/a b/c.py:1:2'");
});

test("failures are explained", () => {
  const line = { command: "holefill", args: ["resolve", "a.py"] };
  assert.match(explainFailure(line, "resolve", { code: null, stderr: "", spawnError: "spawn holefill ENOENT" }), /was not found/);
  assert.match(
    explainFailure(line, "resolve", { code: 2, stderr: "holefill: error: argument command: invalid choice: 'resolve' (choose from ...)" }),
    /no `resolve` command yet/,
  );
  assert.match(
    explainFailure({ command: "/usr/bin/python3", args: [] }, "context", { code: 1, stderr: "/usr/bin/python3: No module named holefill" }),
    /has no holefill installed/,
  );
  assert.equal(
    explainFailure(line, "resolve", { code: 1, stderr: "Traceback...\nValueError: bad\n" }),
    "holefill resolve failed (exit 1): ValueError: bad",
  );
});
