// A minimal stand-in for the `vscode` module: just what the extension touches, with hooks for
// the tests (settings, the active editor, recorded messages and commands).
/* eslint-disable @typescript-eslint/no-explicit-any */

type Listener<T> = (e: T) => any;

export class Disposable {
  constructor(private readonly fn: () => void = () => {}) {}
  dispose(): void {
    this.fn();
  }
}

export class EventEmitter<T> {
  private listeners: Listener<T>[] = [];
  event = (listener: Listener<T>): Disposable => {
    this.listeners.push(listener);
    return new Disposable(() => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    });
  };
  fire(value: T): void {
    for (const l of [...this.listeners]) {
      l(value);
    }
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class ThemeColor {
  constructor(public readonly id: string) {}
}

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}
export enum ConfigurationTarget {
  Global = 1,
  Workspace = 2,
  WorkspaceFolder = 3,
}
export enum ViewColumn {
  Active = -1,
  Beside = -2,
  One = 1,
}

export class Uri {
  private constructor(
    public readonly scheme: string,
    public readonly path: string,
  ) {}
  static file(p: string): Uri {
    return new Uri("file", p);
  }
  static from(parts: { scheme: string; path: string }): Uri {
    return new Uri(parts.scheme, parts.path);
  }
  get fsPath(): string {
    return this.path;
  }
  toString(): string {
    return `${this.scheme}://${this.path}`;
  }
}

export class Position {
  constructor(
    public readonly line: number,
    public readonly character: number,
  ) {}
}

export class Range {
  constructor(
    public readonly start: Position,
    public readonly end: Position,
  ) {}
}

export class CodeActionKind {
  static readonly QuickFix = new CodeActionKind("quickfix");
  constructor(public readonly value: string) {}
}

/** A text document over a string (tests create these). */
export class TextDocument {
  isDirty = false;
  saved = 0;
  constructor(
    public readonly uri: Uri,
    public languageId: string,
    public text: string,
  ) {}
  getText(): string {
    return this.text;
  }
  get lineCount(): number {
    return this.text.split("\n").length;
  }
  lineAt(line: number): { text: string; range: Range } {
    const text = this.text.split("\n")[line] ?? "";
    return { text, range: new Range(new Position(line, 0), new Position(line, text.length)) };
  }
  async save(): Promise<boolean> {
    this.saved += 1;
    this.isDirty = false;
    return true;
  }
}

// ---- test state ----------------------------------------------------------------------------
export const testState = {
  settings: {} as Record<string, any>,
  messages: [] as { level: string; text: string }[],
  executed: [] as { command: string; args: any[] }[],
  shownDocuments: [] as { uri: Uri; text: string }[],
  commands: new Map<string, (...args: any[]) => any>(),
  providers: new Map<string, any>(),
  statusItems: [] as any[],
  quickPickAnswer: undefined as any,
  /** What vscode.executeCodeActionProvider answers. */
  codeActions: [] as any[],
  appliedEdits: [] as any[],
  configListeners: new EventEmitter<any>(),
  editorListeners: new EventEmitter<any>(),
  reset(): void {
    this.settings = {};
    this.messages = [];
    this.executed = [];
    this.shownDocuments = [];
    this.commands.clear();
    this.providers.clear();
    this.statusItems = [];
    this.quickPickAnswer = undefined;
    this.codeActions = [];
    this.appliedEdits = [];
    this.configListeners = new EventEmitter<any>();
    this.editorListeners = new EventEmitter<any>();
    window.activeTextEditor = undefined;
    workspace.workspaceFolders = undefined;
  },
  /** Change settings ("holefill.model" style keys) and fire onDidChangeConfiguration. */
  async changeSettings(values: Record<string, any>): Promise<void> {
    Object.assign(this.settings, values);
    const keys = Object.keys(values);
    const event = {
      affectsConfiguration: (section: string) =>
        keys.some((k) => k === section || k.startsWith(`${section}.`)),
    };
    for (const l of (this.configListeners as any).listeners as Listener<any>[]) {
      await l(event);
    }
  },
  setEditor(doc: TextDocument | undefined, line = 0, character = 0): void {
    window.activeTextEditor = doc
      ? { document: doc, selection: { active: new Position(line, character) } }
      : undefined;
    this.editorListeners.fire(window.activeTextEditor);
  },
};

// ---- namespaces ----------------------------------------------------------------------------
export const workspace = {
  workspaceFolders: undefined as { uri: Uri }[] | undefined,
  getConfiguration(section: string) {
    return {
      get: (key: string, fallback?: any) => {
        const value = testState.settings[`${section}.${key}`];
        return value === undefined ? fallback : value;
      },
      update: async (key: string, value: any) => {
        await testState.changeSettings({ [`${section}.${key}`]: value });
      },
    };
  },
  onDidChangeConfiguration: (l: Listener<any>) => testState.configListeners.event(l),
  getWorkspaceFolder: (_uri: Uri) => workspace.workspaceFolders?.[0],
  registerTextDocumentContentProvider(scheme: string, provider: any): Disposable {
    testState.providers.set(scheme, provider);
    return new Disposable(() => testState.providers.delete(scheme));
  },
  /** Test edits are {doc, text}: the document's new text. */
  async applyEdit(edit: any): Promise<boolean> {
    testState.appliedEdits.push(edit);
    edit.doc.text = edit.text;
    edit.doc.isDirty = true;
    return true;
  },
  async openTextDocument(uri: Uri): Promise<TextDocument> {
    const provider = testState.providers.get(uri.scheme);
    return new TextDocument(uri, "plaintext", provider ? provider.provideTextDocumentContent(uri) : "");
  },
};

function message(level: string) {
  return async (text: string) => {
    testState.messages.push({ level, text });
    return undefined;
  };
}

export const window = {
  activeTextEditor: undefined as any,
  createOutputChannel(name: string) {
    const lines: string[] = [];
    return {
      name,
      lines,
      appendLine: (s: string) => lines.push(s),
      append: (s: string) => lines.push(s),
      info: (s: string) => lines.push(s),
      warn: (s: string) => lines.push(s),
      error: (s: string) => lines.push(String(s)),
      debug: (s: string) => lines.push(s),
      trace: (s: string) => lines.push(s),
      show: () => {},
      clear: () => lines.splice(0),
      dispose: () => {},
    };
  },
  createStatusBarItem(id: string, alignment: StatusBarAlignment, priority: number) {
    const item: any = { id, alignment, priority, text: "", tooltip: "", visible: false };
    item.show = () => (item.visible = true);
    item.hide = () => (item.visible = false);
    item.dispose = () => (item.visible = false);
    testState.statusItems.push(item);
    return item;
  },
  onDidChangeActiveTextEditor: (l: Listener<any>) => testState.editorListeners.event(l),
  showErrorMessage: message("error"),
  showWarningMessage: message("warning"),
  showInformationMessage: message("info"),
  async showQuickPick(items: any[]) {
    testState.executed.push({ command: "<quickPick>", args: items.map((i) => i.label) });
    return testState.quickPickAnswer ? items.find((i) => i.label === testState.quickPickAnswer) : undefined;
  },
  async showTextDocument(doc: TextDocument) {
    testState.shownDocuments.push({ uri: doc.uri, text: doc.getText() });
    return {};
  },
};

export const commands = {
  registerCommand(name: string, fn: (...args: any[]) => any): Disposable {
    testState.commands.set(name, fn);
    return new Disposable(() => testState.commands.delete(name));
  },
  async executeCommand(command: string, ...args: any[]): Promise<any> {
    testState.executed.push({ command, args });
    if (command === "vscode.executeCodeActionProvider") {
      return testState.codeActions;
    }
    const fn = testState.commands.get(command);
    return fn ? fn(...args) : undefined;
  },
};
