// The status bar item's state from server life-cycle and work-done progress events.
// No `vscode` import: the extension maps `StatusView` onto a StatusBarItem.

export type Phase = "stopped" | "starting" | "loading" | "ready" | "failed" | "error";

export interface Status {
  phase: Phase;
  /** Title of the running progress ("holefill: loading model"). */
  title?: string;
  /** Last progress message (model name while loading; "ready: ..." details when ready). */
  detail?: string;
  percentage?: number;
  /** Error text for "failed" (model could not load) and "error" (server could not start). */
  error?: string;
  /** Inline suggestions switched off for the active editor's language. */
  disabledFor?: string;
}

export type StatusEvent =
  | { kind: "starting" }
  | { kind: "running" }
  | { kind: "stopped" }
  | { kind: "startFailed"; message: string }
  | { kind: "progressBegin"; title: string; message?: string; percentage?: number }
  | { kind: "progressReport"; message?: string; percentage?: number }
  | { kind: "progressEnd"; message?: string }
  | { kind: "language"; languageId?: string; enabled: boolean };

export const INITIAL: Status = { phase: "stopped" };

/** The server's model-load progress tokens start with this; other progress (the workspace API
 * index) must not move the status bar away from "ready". */
export const MODEL_PROGRESS_PREFIX = "holefill/load/";

export function isModelProgress(token: string | number): boolean {
  return String(token).startsWith(MODEL_PROGRESS_PREFIX);
}

const READY = /^ready\b:?\s*/i;
const FAILED = /^failed\b:?\s*/i;

/** Next status after an event. Progress end messages follow the server's convention:
 * "ready: <model> on <device> (<dtype>) in <s> s", "failed: <reason>", anything else
 * (e.g. "superseded by a newer configuration") keeps waiting for the next load. */
export function reduce(state: Status, event: StatusEvent): Status {
  switch (event.kind) {
    case "starting":
      return { phase: "starting", disabledFor: state.disabledFor };
    case "running":
      // The server runs; the model loads next (its progress arrives right after initialize).
      return state.phase === "starting" ? { ...state, phase: "loading" } : state;
    case "stopped":
      return state.phase === "error" ? state : { phase: "stopped", disabledFor: state.disabledFor };
    case "startFailed":
      return { phase: "error", error: event.message, disabledFor: state.disabledFor };
    case "progressBegin":
      return {
        phase: "loading",
        title: event.title,
        detail: event.message,
        percentage: event.percentage,
        disabledFor: state.disabledFor,
      };
    case "progressReport":
      return {
        ...state,
        phase: "loading",
        detail: event.message ?? state.detail,
        percentage: event.percentage ?? state.percentage,
      };
    case "progressEnd": {
      const message = event.message ?? "";
      if (READY.test(message)) {
        return { phase: "ready", detail: message.replace(READY, ""), disabledFor: state.disabledFor };
      }
      if (FAILED.test(message)) {
        return { phase: "failed", error: message.replace(FAILED, ""), disabledFor: state.disabledFor };
      }
      if (message === "") {
        return { phase: "ready", disabledFor: state.disabledFor };
      }
      return { ...state, phase: "loading", percentage: undefined, detail: message };
    }
    case "language":
      return { ...state, disabledFor: event.enabled ? undefined : event.languageId };
  }
}

export interface StatusView {
  text: string;
  tooltip: string;
  /** "error" and "warning" map onto the status bar's error/warning background. */
  severity: "none" | "warning" | "error";
}

/** Text (with codicons), tooltip and colour of the status bar item. */
export function view(state: Status): StatusView {
  const off = state.disabledFor ? ` (off for ${state.disabledFor})` : "";
  switch (state.phase) {
    case "stopped":
      return { text: "$(circle-slash) holefill", tooltip: "holefill: server stopped", severity: "none" };
    case "starting":
      return { text: "$(sync~spin) holefill", tooltip: "holefill: starting the server", severity: "none" };
    case "loading": {
      const pct = typeof state.percentage === "number" ? ` ${Math.round(state.percentage)}%` : "";
      const what = state.title ?? "holefill: loading model";
      return {
        text: `$(sync~spin) holefill${pct}`,
        tooltip: `${what}${state.detail ? ` (${state.detail})` : ""}`,
        severity: "none",
      };
    }
    case "ready":
      return {
        text: off ? `$(circle-slash) holefill` : "$(check) holefill",
        tooltip: `holefill: ${state.detail ? `model ${state.detail}` : "model ready"}${off}`,
        severity: "none",
      };
    case "failed":
      return {
        text: "$(error) holefill",
        tooltip: `holefill: the model could not be loaded: ${state.error ?? "unknown error"}`,
        severity: "error",
      };
    case "error":
      return {
        text: "$(error) holefill",
        tooltip: `holefill: the server could not start: ${state.error ?? "unknown error"}`,
        severity: "error",
      };
  }
}
