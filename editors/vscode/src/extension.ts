// holefill for VS Code: starts `holefill serve`, ghost text through LSP inline completion
// (vscode-languageclient registers the provider; VS Code cycles through several items with
// Alt+] / Alt+[ and accepts a word / line with its inlineSuggest commands), a status bar item
// for model loading, and the "Resolve conflicts in file" / "Show hole context" commands.

import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as vscode from "vscode";
import {
  type CommandLine,
  contextCommand,
  display,
  explainFailure,
  processEnv,
  resolveCommand,
  serveCommand,
} from "./logic/commandLine";
import { formatLocation } from "./logic/location";
import { countConflicts, parseResolveOutput, summarizeCounts, summarizeResolve } from "./logic/resolve";
import {
  type ConfigReader,
  changeAction,
  didChangeConfigurationParams,
  enabledFor,
  initializationOptions,
  languages,
  serverLaunch,
  serverSettings,
  type ServerSettings,
  toggled,
} from "./logic/settings";
import { INITIAL, reduce, type Status, type StatusEvent, view } from "./logic/status";

export interface ProgressValue {
  kind: "begin" | "report" | "end";
  title?: string;
  message?: string;
  percentage?: number;
}

/** The part of a LanguageClient the extension uses (a fake one in unit tests). */
export interface ClientLike {
  start(): Promise<void>;
  stop(): Promise<void>;
  sendNotification(method: string, params: unknown): Promise<void>;
  onDidChangeState(listener: (state: "starting" | "running" | "stopped") => void): vscode.Disposable;
  isRunning(): boolean;
  /** Whether the running server offers textDocument/codeAction (merge-conflict quick fixes). */
  offersCodeActions(): boolean;
}

export interface ClientOptions {
  serve: CommandLine;
  env: Record<string, string>;
  cwd?: string;
  languages: string[];
  initializationOptions: ServerSettings;
  outputChannel: vscode.LogOutputChannel;
  inlineEnabled: (languageId: string) => boolean;
  pulledSettings: () => ServerSettings;
  onProgress: (value: ProgressValue) => void;
}

export type ClientFactory = (options: ClientOptions) => ClientLike;

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  spawnError?: string;
}

export type ProcessRunner = (
  line: CommandLine,
  options: { cwd?: string; env: Record<string, string>; timeoutMs: number },
) => Promise<RunResult>;

export interface Deps {
  createClient: ClientFactory;
  run: ProcessRunner;
}

export const CONTEXT_SCHEME = "holefill-context";
const CLI_TIMEOUT_MS = 120_000;

export const runProcess: ProcessRunner = (line, options) =>
  new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    let settled = false;
    const done = (result: RunResult) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(result);
      }
    };
    const child = spawn(line.command, line.args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const timer = setTimeout(() => {
      child.kill();
      done({ code: null, stdout, stderr, spawnError: `timed out after ${options.timeoutMs / 1000} s` });
    }, options.timeoutMs);
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    child.on("error", (err) => done({ code: null, stdout, stderr, spawnError: String(err.message ?? err) }));
    child.on("close", (code) => done({ code, stdout, stderr }));
  });

function config(): ConfigReader {
  const cfg = vscode.workspace.getConfiguration("holefill");
  return (key) => cfg.get(key);
}

/** Everything the extension holds while active; exported for the unit tests. */
export class Holefill implements vscode.Disposable {
  status: Status = INITIAL;
  /** The first start (activation does not wait for it). */
  starting: Promise<void> = Promise.resolve();
  client: ClientLike | undefined;
  readonly item: vscode.StatusBarItem;
  readonly output: vscode.LogOutputChannel;
  private readonly disposables: vscode.Disposable[] = [];
  private clientDisposables: vscode.Disposable[] = [];
  private readonly contexts = new Map<string, string>();
  private readonly contextChanged = new vscode.EventEmitter<vscode.Uri>();

  constructor(private readonly deps: Deps) {
    this.output = vscode.window.createOutputChannel("holefill", { log: true });
    this.item = vscode.window.createStatusBarItem("holefill.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "holefill";
    this.item.command = "holefill.statusMenu";
    this.disposables.push(this.output, this.item, this.contextChanged);
    this.disposables.push(
      vscode.commands.registerCommand("holefill.resolveConflicts", () => this.resolveConflicts()),
      vscode.commands.registerCommand("holefill.showContext", () => this.showContext()),
      vscode.commands.registerCommand("holefill.toggleLanguage", () => this.toggleLanguage()),
      vscode.commands.registerCommand("holefill.restartServer", () => this.restart()),
      vscode.commands.registerCommand("holefill.showOutput", () => this.output.show(true)),
      vscode.commands.registerCommand("holefill.statusMenu", () => this.statusMenu()),
      vscode.workspace.registerTextDocumentContentProvider(CONTEXT_SCHEME, {
        onDidChange: this.contextChanged.event,
        provideTextDocumentContent: (uri) => this.contexts.get(uri.toString()) ?? "",
      }),
      vscode.workspace.onDidChangeConfiguration((e) => this.configurationChanged(e)),
      vscode.window.onDidChangeActiveTextEditor(() => this.languageChanged()),
    );
    this.languageChanged();
    this.render();
    this.item.show();
  }

  dispatch(event: StatusEvent): void {
    this.status = reduce(this.status, event);
    this.render();
  }

  private render(): void {
    const v = view(this.status);
    this.item.text = v.text;
    this.item.tooltip = `${v.tooltip}\nClick for holefill commands.`;
    this.item.backgroundColor =
      v.severity === "error"
        ? new vscode.ThemeColor("statusBarItem.errorBackground")
        : v.severity === "warning"
          ? new vscode.ThemeColor("statusBarItem.warningBackground")
          : undefined;
  }

  private languageChanged(): void {
    const doc = vscode.window.activeTextEditor?.document;
    if (!doc) {
      return;
    }
    const enabled = enabledFor(config()("enable"), doc.languageId);
    this.dispatch({ kind: "language", languageId: doc.languageId, enabled });
  }

  private workspaceDir(uri?: vscode.Uri): string | undefined {
    const folder = uri ? vscode.workspace.getWorkspaceFolder(uri) : vscode.workspace.workspaceFolders?.[0];
    return folder?.uri.scheme === "file" ? folder.uri.fsPath : undefined;
  }

  async start(): Promise<void> {
    const get = config();
    const launch = serverLaunch(get);
    const serve = serveCommand(launch);
    this.output.appendLine(`starting ${display(serve)}`);
    const client = this.deps.createClient({
      serve,
      env: processEnv(process.env, launch),
      cwd: this.workspaceDir(),
      languages: languages(get),
      initializationOptions: initializationOptions(get),
      outputChannel: this.output,
      inlineEnabled: (languageId) => enabledFor(config()("enable"), languageId),
      pulledSettings: () => serverSettings(config()),
      onProgress: (value) => this.progress(value),
    });
    this.client = client;
    this.clientDisposables.push(
      client.onDidChangeState((state) => {
        if (this.client === client) {
          this.dispatch({ kind: state });
        }
      }),
    );
    this.dispatch({ kind: "starting" });
    try {
      await client.start();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.dispatch({ kind: "startFailed", message: `${display(serve)}: ${message}` });
      this.output.appendLine(`the server could not start: ${message}`);
    }
  }

  progress(value: ProgressValue): void {
    if (value.kind === "begin") {
      this.dispatch({ kind: "progressBegin", title: value.title ?? "", message: value.message, percentage: value.percentage });
    } else if (value.kind === "report") {
      this.dispatch({ kind: "progressReport", message: value.message, percentage: value.percentage });
    } else {
      this.dispatch({ kind: "progressEnd", message: value.message });
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    for (const d of this.clientDisposables) {
      d.dispose();
    }
    this.clientDisposables = [];
    if (client) {
      try {
        await client.stop();
      } catch {
        // already stopped or never started
      }
    }
    this.dispatch({ kind: "stopped" });
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async configurationChanged(e: vscode.ConfigurationChangeEvent): Promise<void> {
    const action = changeAction((section) => e.affectsConfiguration(section));
    if (action === "restart") {
      await this.restart();
    } else if (action === "notify") {
      if (this.client?.isRunning()) {
        await this.client.sendNotification(
          "workspace/didChangeConfiguration",
          didChangeConfigurationParams(config()),
        );
      }
    } else if (action === "local") {
      this.languageChanged();
    }
  }

  async toggleLanguage(): Promise<void> {
    const doc = vscode.window.activeTextEditor?.document;
    if (!doc) {
      return;
    }
    const cfg = vscode.workspace.getConfiguration("holefill");
    const next = toggled(cfg.get("enable"), doc.languageId);
    await cfg.update("enable", next, vscode.ConfigurationTarget.Global);
    this.dispatch({ kind: "language", languageId: doc.languageId, enabled: next[doc.languageId] });
  }

  private async runCli(
    line: CommandLine,
    subcommand: string,
    cwd?: string,
    okCodes: number[] = [0],
  ): Promise<RunResult | undefined> {
    const launch = serverLaunch(config());
    this.output.appendLine(`running ${display(line)}`);
    const result = await this.deps.run(line, {
      cwd,
      env: processEnv(process.env, launch),
      timeoutMs: CLI_TIMEOUT_MS,
    });
    if (result.spawnError || result.code === null || !okCodes.includes(result.code)) {
      if (result.stderr) {
        this.output.appendLine(result.stderr.trimEnd());
      }
      void vscode.window.showErrorMessage(explainFailure(line, subcommand, result));
      return undefined;
    }
    return result;
  }

  /** "holefill: Resolve conflicts in file": the server's "Resolve all conflicts" code action
   * (works on unsaved text, one undo step), else `holefill resolve FILE --write`. */
  async resolveConflicts(): Promise<string | undefined> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      return undefined;
    }
    const doc = editor.document;
    const before = countConflicts(doc.getText());
    if (before === 0) {
      const msg = summarizeCounts(0, 0);
      void vscode.window.showInformationMessage(msg);
      return msg;
    }
    if (this.client?.isRunning() && this.client.offersCodeActions()) {
      const whole = new vscode.Range(new vscode.Position(0, 0), doc.lineAt(doc.lineCount - 1).range.end);
      const actions =
        (await vscode.commands.executeCommand<(vscode.CodeAction | vscode.Command)[]>(
          "vscode.executeCodeActionProvider",
          doc.uri,
          whole,
          vscode.CodeActionKind.QuickFix.value,
        )) ?? [];
      const all = actions.find(
        (a): a is vscode.CodeAction => "edit" in a && !!a.edit && /^resolve all conflicts/i.test(a.title),
      );
      if (all?.edit) {
        await vscode.workspace.applyEdit(all.edit);
      }
      const msg = summarizeCounts(before, countConflicts(doc.getText()));
      void (all ? vscode.window.showInformationMessage(msg) : vscode.window.showWarningMessage(msg));
      return msg;
    }
    return this.resolveWithCli(doc);
  }

  private async resolveWithCli(doc: vscode.TextDocument): Promise<string | undefined> {
    if (doc.uri.scheme !== "file") {
      void vscode.window.showWarningMessage("holefill: save the file to resolve its conflicts.");
      return undefined;
    }
    if (doc.isDirty && !(await doc.save())) {
      void vscode.window.showWarningMessage("holefill: save the file first.");
      return undefined;
    }
    const file = doc.uri.fsPath;
    const line = resolveCommand(serverLaunch(config()), file);
    // Exit 1 means "conflicts remain": the JSON still says what was done.
    const result = await this.runCli(line, "resolve", this.workspaceDir(doc.uri) ?? path.dirname(file), [0, 1]);
    if (!result) {
      return undefined;
    }
    const hunks = parseResolveOutput(result.stdout);
    if (hunks === null || (result.code !== 0 && result.stdout.trim() === "")) {
      void vscode.window.showErrorMessage(explainFailure(line, "resolve", result));
      return undefined;
    }
    const summary = summarizeResolve(hunks);
    // The file changed on disk; make sure the editor shows it.
    if (vscode.window.activeTextEditor?.document === doc && !doc.isDirty) {
      await vscode.commands.executeCommand("workbench.action.files.revert");
    }
    void vscode.window.showInformationMessage(summary);
    return summary;
  }

  async showContext(): Promise<string | undefined> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      return undefined;
    }
    const doc = editor.document;
    const pos = editor.selection.active;
    // The CLI reads the file from disk: unsaved text goes through a temporary copy.
    let file = doc.uri.fsPath;
    let tmpDir: string | undefined;
    if (doc.uri.scheme !== "file" || doc.isDirty) {
      tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "holefill-context-"));
      file = path.join(tmpDir, path.basename(doc.uri.path) || "untitled.py");
      fs.writeFileSync(file, doc.getText(), "utf8");
    }
    const location = formatLocation(file, pos.line, pos.character, doc.lineAt(pos.line).text);
    const workspace = this.workspaceDir(doc.uri);
    const line = contextCommand(serverLaunch(config()), location, workspace);
    try {
      const result = await this.runCli(line, "context", workspace ?? path.dirname(file));
      if (!result) {
        return undefined;
      }
      const header = `# holefill context ${formatLocation(doc.uri.fsPath, pos.line, pos.character, doc.lineAt(pos.line).text)}${tmpDir ? " (unsaved text)" : ""}\n\n`;
      const uri = vscode.Uri.from({
        scheme: CONTEXT_SCHEME,
        path: `/${path.basename(doc.uri.path)}.context.txt`,
      });
      this.contexts.set(uri.toString(), header + result.stdout);
      this.contextChanged.fire(uri);
      const shown = await vscode.workspace.openTextDocument(uri);
      await vscode.window.showTextDocument(shown, { viewColumn: vscode.ViewColumn.Beside, preview: true, preserveFocus: true });
      return header + result.stdout;
    } finally {
      if (tmpDir) {
        fs.rmSync(tmpDir, { recursive: true, force: true });
      }
    }
  }

  private async statusMenu(): Promise<void> {
    const doc = vscode.window.activeTextEditor?.document;
    const items: (vscode.QuickPickItem & { command: string })[] = [];
    if (doc) {
      const on = enabledFor(config()("enable"), doc.languageId);
      items.push({ label: `${on ? "Disable" : "Enable"} inline suggestions for ${doc.languageId}`, command: "holefill.toggleLanguage" });
    }
    items.push(
      { label: "Resolve conflicts in file", command: "holefill.resolveConflicts" },
      { label: "Show hole context", command: "holefill.showContext" },
      { label: "Show output", command: "holefill.showOutput" },
      { label: "Restart language server", command: "holefill.restartServer" },
      { label: "Settings", command: "workbench.action.openSettings" },
    );
    const picked = await vscode.window.showQuickPick(items, { title: view(this.status).tooltip });
    if (picked) {
      await vscode.commands.executeCommand(picked.command, ...(picked.command === "workbench.action.openSettings" ? ["holefill"] : []));
    }
  }

  dispose(): void {
    void this.stop();
    for (const d of this.disposables) {
      d.dispose();
    }
  }
}

let active: Holefill | undefined;

export async function activate(context: vscode.ExtensionContext, deps: Partial<Deps> = {}): Promise<Holefill> {
  const createClient: ClientFactory =
    deps.createClient ?? ((options) => (require("./client") as typeof import("./client")).createLanguageClient(options));
  const holefill = new Holefill({ createClient, run: deps.run ?? runProcess });
  active = holefill;
  context.subscriptions.push(holefill);
  // Not awaited: activation finishes at once; the status bar item follows the start.
  holefill.starting = holefill.start();
  return holefill;
}

export async function deactivate(): Promise<void> {
  const holefill = active;
  active = undefined;
  await holefill?.stop();
}
