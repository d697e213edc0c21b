// The extension's wiring under the `vscode` stub: a fake language client and a fake process
// runner stand in for `holefill serve` and the CLI.
import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";
import * as vscode from "vscode";
import { activate, type ClientLike, type ClientOptions, type Deps, type RunResult } from "../src/extension";
import type { CommandLine } from "../src/logic/commandLine";
import { testState, TextDocument, Uri } from "./stubs/vscode";

class FakeClient implements ClientLike {
  started = 0;
  stopped = 0;
  running = false;
  notifications: { method: string; params: any }[] = [];
  listeners: ((s: "starting" | "running" | "stopped") => void)[] = [];
  failWith?: string;
  codeActions = false;
  constructor(public readonly options: ClientOptions) {}
  async start() {
    this.started += 1;
    this.listeners.forEach((l) => l("starting"));
    if (this.failWith) {
      throw new Error(this.failWith);
    }
    this.running = true;
    this.listeners.forEach((l) => l("running"));
  }
  async stop() {
    this.stopped += 1;
    this.running = false;
    this.listeners.forEach((l) => l("stopped"));
  }
  async sendNotification(method: string, params: unknown) {
    this.notifications.push({ method, params });
  }
  onDidChangeState(listener: (s: "starting" | "running" | "stopped") => void) {
    this.listeners.push(listener);
    return new vscode.Disposable(() => {});
  }
  isRunning() {
    return this.running;
  }
  offersCodeActions() {
    return this.codeActions;
  }
}

let clients: FakeClient[];
let runs: { line: CommandLine; cwd?: string; env: Record<string, string> }[];
let answer: (line: CommandLine) => RunResult;
let failNextStart: string | undefined;

function deps(): Partial<Deps> {
  return {
    createClient: (options) => {
      const c = new FakeClient(options);
      c.failWith = failNextStart;
      failNextStart = undefined;
      clients.push(c);
      return c;
    },
    run: async (line, options) => {
      runs.push({ line, cwd: options.cwd, env: options.env });
      return answer(line);
    },
  };
}

async function start() {
  const context = { subscriptions: [] as { dispose(): unknown }[] };
  const h = await activate(context as any, deps());
  await h.starting;
  return { h, context };
}

beforeEach(() => {
  testState.reset();
  clients = [];
  runs = [];
  failNextStart = undefined;
  answer = () => ({ code: 0, stdout: "", stderr: "" });
});

test("activation starts the server with settings as initializationOptions", async () => {
  testState.settings = { "holefill.model": "/m", "holefill.maxNewTokens": 20, "holefill.server.pythonPath": "/venv/bin/python" };
  const { h } = await start();
  assert.equal(clients.length, 1);
  const o = clients[0].options;
  assert.deepEqual(o.serve, { command: "/venv/bin/python", args: ["-m", "holefill.cli", "serve"] });
  assert.equal(o.initializationOptions.model, "/m");
  assert.equal(o.initializationOptions.maxNewTokens, 20);
  assert.deepEqual(o.languages, ["python"]);
  for (const name of ["holefill.resolveConflicts", "holefill.showContext", "holefill.toggleLanguage", "holefill.restartServer"]) {
    assert.ok(testState.commands.has(name), name);
  }
  // running, the model not loaded yet
  assert.equal(h.status.phase, "loading");
  assert.equal(testState.statusItems[0].visible, true);
});

test("model loading progress drives the status bar item", async () => {
  const { h } = await start();
  const item = testState.statusItems[0];
  clients[0].options.onProgress({ kind: "begin", title: "holefill: loading model", message: "embedded" });
  assert.equal(item.text, "$(sync~spin) holefill");
  assert.match(item.tooltip, /loading model \(embedded\)/);
  clients[0].options.onProgress({ kind: "end", message: "ready: SmolLM2 on cpu (int8) in 0.5 s" });
  assert.equal(item.text, "$(check) holefill");
  assert.match(item.tooltip, /SmolLM2 on cpu/);
  assert.equal(item.backgroundColor, undefined);
  clients[0].options.onProgress({ kind: "begin", title: "holefill: loading model" });
  clients[0].options.onProgress({ kind: "end", message: "failed: out of memory" });
  assert.equal(item.text, "$(error) holefill");
  assert.equal(item.backgroundColor.id, "statusBarItem.errorBackground");
  assert.equal(h.status.error, "out of memory");
});

test("a server that cannot start shows an error", async () => {
  failNextStart = "spawn holefill ENOENT";
  const { h } = await start();
  assert.equal(h.status.phase, "error");
  assert.match(testState.statusItems[0].tooltip, /could not start: holefill serve: spawn holefill ENOENT/);
});

test("model settings changes are sent; launch changes restart the server", async () => {
  await start();
  await testState.changeSettings({ "holefill.maxNewTokens": 8 });
  assert.equal(clients.length, 1);
  assert.deepEqual(clients[0].notifications, [
    {
      method: "workspace/didChangeConfiguration",
      params: { settings: { holefill: { model: "embedded", device: "auto", dtype: "auto", drafts: 3, maxNewTokens: 8, logLevel: "info" } } },
    },
  ]);
  assert.equal(clients[0].options.pulledSettings().maxNewTokens, 8);
  await testState.changeSettings({ "holefill.server.command": ["/opt/holefill"] });
  assert.equal(clients[0].stopped, 1);
  assert.equal(clients.length, 2);
  assert.deepEqual(clients[1].options.serve, { command: "/opt/holefill", args: ["serve"] });
});

test("inline suggestions can be switched off per language", async () => {
  const { h } = await start();
  const doc = new TextDocument(Uri.file("/w/a.py"), "python", "x = 1\n");
  testState.setEditor(doc);
  assert.equal(clients[0].options.inlineEnabled("python"), true);
  await testState.commands.get("holefill.toggleLanguage")!();
  assert.deepEqual(testState.settings["holefill.enable"], { python: false });
  assert.equal(clients[0].options.inlineEnabled("python"), false);
  assert.equal(clients[0].options.inlineEnabled("cython"), true);
  assert.equal(h.status.disabledFor, "python");
  await testState.commands.get("holefill.toggleLanguage")!();
  assert.equal(clients[0].options.inlineEnabled("python"), true);
  assert.equal(h.status.disabledFor, undefined);
});

test("resolve conflicts saves, runs holefill resolve --write and reports", async () => {
  testState.settings = { "holefill.server.env": { HOLEFILL_X: "1" } };
  const { h } = await start();
  testState.setEditor(undefined);
  assert.equal(await h.resolveConflicts(), undefined);
  const untitled = new TextDocument(Uri.from({ scheme: "untitled", path: "Untitled-1" }), "python", "<<<<<<< a\n");
  testState.setEditor(untitled);
  assert.equal(await h.resolveConflicts(), undefined);
  assert.equal(testState.messages[0].level, "warning");

  workspaceFolder("/w");
  const doc = new TextDocument(Uri.file("/w/m.py"), "python", "<<<<<<< ours\n");
  doc.isDirty = true;
  testState.setEditor(doc);
  answer = () => ({
    code: 0,
    stdout: JSON.stringify([{ path: "/w/m.py", hunk: 0, status: "resolved", pattern: "OURS", confidence: 0.9, text: "x" }]),
    stderr: "",
  });
  const summary = await testState.commands.get("holefill.resolveConflicts")!();
  assert.equal(summary, "holefill: resolved 1 of 1 conflict");
  assert.equal(doc.saved, 1);
  assert.deepEqual(runs[0].line, { command: "holefill", args: ["resolve", "/w/m.py", "--write", "--json"] });
  assert.equal(runs[0].cwd, "/w");
  assert.equal(runs[0].env.HOLEFILL_X, "1");
  assert.ok(testState.executed.some((e) => e.command === "workbench.action.files.revert"));
  assert.deepEqual(testState.messages.at(-1), { level: "info", text: summary });
});

test("resolve reports a holefill without the resolve command", async () => {
  const { h } = await start();
  testState.setEditor(new TextDocument(Uri.file("/w/m.py"), "python", "<<<<<<< a\n"));
  answer = () => ({ code: 2, stdout: "", stderr: "holefill: error: argument command: invalid choice: 'resolve' (choose from 'serve')" });
  assert.equal(await h.resolveConflicts(), undefined);
  assert.match(testState.messages.at(-1)!.text, /no `resolve` command yet/);
});

test("resolve: exit 1 with JSON is a result (conflicts remain); a crash is an error", async () => {
  const { h } = await start();
  testState.setEditor(new TextDocument(Uri.file("/w/m.py"), "python", "<<<<<<< a\n"));
  answer = () => ({ code: 1, stdout: '[{"hunk": 0, "status": "abstained", "pattern": null}]', stderr: "" });
  assert.equal(await h.resolveConflicts(), "holefill: resolved 0 of 1 conflict; 1 left for you (the resolver abstained)");
  answer = () => ({ code: 1, stdout: "", stderr: "Traceback\nValueError: bad weights" });
  assert.equal(await h.resolveConflicts(), undefined);
  assert.match(testState.messages.at(-1)!.text, /resolve failed \(exit 1\): ValueError: bad weights/);
});

test("resolve uses the server's code action when it offers one (unsaved text, no CLI)", async () => {
  const { h } = await start();
  clients[0].codeActions = true;
  const conflicted = "x = 1\n<<<<<<< ours\na\n||||||| base\na\n=======\nb\n>>>>>>> theirs\n";
  const doc = new TextDocument(Uri.file("/w/m.py"), "python", conflicted);
  doc.isDirty = true;
  testState.setEditor(doc);
  testState.codeActions = [
    { title: "Take theirs (0.93)", edit: { doc, text: "x = 1\nb\n" } },
    { title: "Resolve all conflicts", edit: { doc, text: "x = 1\nb\n" } },
    { title: "Pylance: something", command: "x" },
  ];
  assert.equal(await h.resolveConflicts(), "holefill: resolved 1 of 1 conflict");
  assert.equal(doc.text, "x = 1\nb\n");
  assert.equal(testState.appliedEdits.length, 1);
  assert.equal(runs.length, 0);
  assert.equal(doc.saved, 0);
  const call = testState.executed.find((e) => e.command === "vscode.executeCodeActionProvider")!;
  assert.equal(call.args[2], "quickfix");
  assert.deepEqual([call.args[1].start.line, call.args[1].end.line], [0, 8]);

  // Nothing resolvable: said so, buffer untouched.
  const doc2 = new TextDocument(Uri.file("/w/n.py"), "python", conflicted);
  testState.setEditor(doc2);
  testState.codeActions = [];
  assert.equal(await h.resolveConflicts(), "holefill: resolved 0 of 1 conflict; 1 left for you (the resolver abstained)");
  assert.equal(testState.messages.at(-1)!.level, "warning");
  assert.equal(doc2.text, conflicted);

  // No conflicts at all.
  testState.setEditor(new TextDocument(Uri.file("/w/o.py"), "python", "x = 1\n"));
  assert.equal(await h.resolveConflicts(), "holefill: no merge conflicts in this file");
});

test("show context runs holefill context at the cursor and shows its output", async () => {
  const { h } = await start();
  workspaceFolder("/w");
  const doc = new TextDocument(Uri.file("/w/m.py"), "python", "import os\ns = '😀' + os.pa\n");
  testState.setEditor(doc, 1, 15);
  answer = () => ({ code: 0, stdout: "mode: 'line'\n--- prompt ---\nimport os\n", stderr: "" });
  const shown = await h.showContext();
  assert.deepEqual(runs[0].line, { command: "holefill", args: ["context", "/w/m.py:2:15", "--workspace", "/w"] });
  assert.match(shown!, /^# holefill context \/w\/m.py:2:15\n/);
  assert.equal(testState.shownDocuments.length, 1);
  assert.equal(testState.shownDocuments[0].uri.scheme, "holefill-context");
  assert.match(testState.shownDocuments[0].text, /--- prompt ---/);
});

test("show context of unsaved text goes through a temporary copy", async () => {
  const { h } = await start();
  const doc = new TextDocument(Uri.file("/w/m.py"), "python", "x = 1\n");
  doc.isDirty = true;
  testState.setEditor(doc, 0, 3);
  let copied = "";
  answer = (line) => {
    const file = line.args[1].replace(/:\d+:\d+$/, "");
    copied = require("node:fs").readFileSync(file, "utf8");
    return { code: 0, stdout: "ok\n", stderr: "" };
  };
  const shown = await h.showContext();
  assert.equal(copied, "x = 1\n");
  assert.match(runs[0].line.args[1], /holefill-context-.*\/m\.py:1:4$/);
  assert.match(shown!, /\(unsaved text\)/);
  assert.equal(require("node:fs").existsSync(runs[0].line.args[1].replace(/:\d+:\d+$/, "")), false);
});

test("deactivation stops the server", async () => {
  const { context } = await start();
  for (const d of context.subscriptions) {
    d.dispose();
  }
  await new Promise((r) => setImmediate(r));
  assert.equal(clients[0].stopped, 1);
  assert.equal(testState.commands.size, 0);
});

function workspaceFolder(dir: string) {
  (vscode.workspace as any).workspaceFolders = [{ uri: Uri.file(dir) }];
}
