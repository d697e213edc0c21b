// The real language client (vscode-languageclient). Loaded lazily by extension.ts so that unit
// tests can run the extension against a stubbed `vscode` module and a fake client.

import {
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  type StaticFeature,
  State,
  TransportKind,
  WorkDoneProgress,
  WorkDoneProgressCreateRequest,
  type FeatureState,
} from "vscode-languageclient/node";
import type { ClientFactory, ClientLike, ProgressValue } from "./extension";
import { isModelProgress } from "./logic/status";
import { makeMiddleware } from "./middleware";

/** Replaces the client's default progress UI for the server's work-done progress (model
 * loading) with the extension's status bar item. Registered after the built-in features, so its
 * window/workDoneProgress/create handler is the one in effect. */
class StatusProgressFeature implements StaticFeature {
  constructor(
    private readonly client: LanguageClient,
    private readonly onProgress: (value: ProgressValue) => void,
  ) {}

  fillClientCapabilities(capabilities: { window?: { workDoneProgress?: boolean } }): void {
    capabilities.window = capabilities.window ?? {};
    capabilities.window.workDoneProgress = true;
  }

  getState(): FeatureState {
    return { kind: "static" };
  }

  initialize(): void {
    this.client.onRequest(WorkDoneProgressCreateRequest.type, (params) => {
      if (!isModelProgress(params.token)) {
        return; // e.g. the workspace index: the status bar shows the model's state only
      }
      const disposable = this.client.onProgress(WorkDoneProgress.type, params.token, (value) => {
        this.onProgress(value as ProgressValue);
        if (value.kind === "end") {
          disposable.dispose();
        }
      });
    });
  }

  clear(): void {}
}

export const createLanguageClient: ClientFactory = (options) => {
  const serverOptions: ServerOptions = {
    command: options.serve.command,
    args: options.serve.args,
    transport: TransportKind.stdio,
    options: { env: options.env, cwd: options.cwd },
  };
  const selector = options.languages.flatMap((language) => [
    { scheme: "file", language },
    { scheme: "untitled", language },
  ]);
  const middleware = makeMiddleware(options);
  const clientOptions: LanguageClientOptions = {
    documentSelector: selector,
    initializationOptions: options.initializationOptions,
    outputChannel: options.outputChannel,
    middleware: {
      provideInlineCompletionItems: (document, position, context, token, next) =>
        middleware.provideInlineCompletionItems(document, position, context, token, next),
      workspace: {
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        configuration: (params, token, next) => middleware.workspace.configuration(params, token, next) as any,
      },
    },
  };
  const client = new LanguageClient("holefill", "holefill", serverOptions, clientOptions);
  client.registerFeature(new StatusProgressFeature(client, options.onProgress));
  const like: ClientLike = {
    start: () => client.start(),
    stop: () => client.stop(),
    sendNotification: (method, params) => client.sendNotification(method, params),
    onDidChangeState: (listener) =>
      client.onDidChangeState((e) =>
        listener(
          e.newState === State.Running ? "running" : e.newState === State.Starting ? "starting" : "stopped",
        ),
      ),
    isRunning: () => client.isRunning(),
    offersCodeActions: () => !!client.initializeResult?.capabilities.codeActionProvider,
  };
  return like;
};
