// Settings of the extension -> what the server gets (initializationOptions and
// workspace/didChangeConfiguration). No `vscode` import: unit-tested under plain node.

/** What `vscode.workspace.getConfiguration("holefill").get(key)` answers, by key. */
export type ConfigReader = (key: string) => unknown;

/** Settings the server understands (camelCase; the server also takes snake_case). */
export interface ServerSettings {
  model: string;
  device: string;
  dtype: string;
  drafts: number;
  maxNewTokens: number;
  logLevel: string;
}

export interface ServerLaunch {
  command: string[];
  pythonPath: string;
  extraArgs: string[];
  env: Record<string, string>;
}

export const DEFAULTS: ServerSettings = {
  model: "embedded",
  device: "auto",
  dtype: "auto",
  drafts: 3,
  maxNewTokens: 48,
  logLevel: "info",
};

const DEVICE = /^(auto|cpu|cuda(:\d+)?)$/;
const DTYPES = ["auto", "float32", "bfloat16", "int8"];
const LOG_LEVELS = ["debug", "info", "warning", "error"];

function str(value: unknown, fallback: string): string {
  return typeof value === "string" && value.trim() !== "" ? value.trim() : fallback;
}

function int(value: unknown, fallback: number, min: number, max: number): number {
  const n = typeof value === "string" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isFinite(n)) {
    return fallback;
  }
  return Math.min(max, Math.max(min, Math.round(n)));
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/** The server's settings from the extension's; invalid values fall back to the defaults. */
export function serverSettings(get: ConfigReader): ServerSettings {
  const device = str(get("device"), DEFAULTS.device);
  const dtype = str(get("dtype"), DEFAULTS.dtype);
  const logLevel = str(get("logLevel"), DEFAULTS.logLevel).toLowerCase();
  return {
    model: str(get("model"), DEFAULTS.model),
    device: DEVICE.test(device) ? device : DEFAULTS.device,
    dtype: DTYPES.includes(dtype) ? dtype : DEFAULTS.dtype,
    drafts: int(get("drafts"), DEFAULTS.drafts, 1, 8),
    maxNewTokens: int(get("maxNewTokens"), DEFAULTS.maxNewTokens, 1, 1024),
    logLevel: LOG_LEVELS.includes(logLevel) ? logLevel : DEFAULTS.logLevel,
  };
}

/** initializationOptions: the server settings at the top level. */
export function initializationOptions(get: ConfigReader): ServerSettings {
  return serverSettings(get);
}

/** workspace/didChangeConfiguration params: settings under the "holefill" section. */
export function didChangeConfigurationParams(get: ConfigReader): {
  settings: { holefill: ServerSettings };
} {
  return { settings: { holefill: serverSettings(get) } };
}

export function serverLaunch(get: ConfigReader): ServerLaunch {
  const env: Record<string, string> = {};
  const raw = get("server.env");
  if (raw && typeof raw === "object" && !Array.isArray(raw)) {
    for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
      if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") {
        env[k] = String(v);
      }
    }
  }
  return {
    command: strings(get("server.command")).filter((s) => s !== ""),
    pythonPath: str(get("server.pythonPath"), ""),
    extraArgs: strings(get("server.extraArgs")),
    env,
  };
}

/** Languages sent to the server (document selector). */
export function languages(get: ConfigReader): string[] {
  const list = strings(get("languages")).filter((s) => s.trim() !== "");
  return list.length > 0 ? list : ["python"];
}

/** Whether inline suggestions are on for a language id: `holefill.enable[lang]`, else
 * `holefill.enable["*"]`, else true. */
export function enabledFor(enable: unknown, languageId: string): boolean {
  if (!enable || typeof enable !== "object" || Array.isArray(enable)) {
    return true;
  }
  const table = enable as Record<string, unknown>;
  if (typeof table[languageId] === "boolean") {
    return table[languageId] as boolean;
  }
  if (typeof table["*"] === "boolean") {
    return table["*"] as boolean;
  }
  return true;
}

/** `holefill.enable` with one language toggled (a new object; the old one is untouched). */
export function toggled(enable: unknown, languageId: string): Record<string, boolean> {
  const table: Record<string, boolean> = {};
  if (enable && typeof enable === "object" && !Array.isArray(enable)) {
    for (const [k, v] of Object.entries(enable as Record<string, unknown>)) {
      if (typeof v === "boolean") {
        table[k] = v;
      }
    }
  }
  table[languageId] = !enabledFor(enable, languageId);
  return table;
}

/** What a configuration change means: a restart (launch or languages changed), a settings
 * notification to the running server, or only a local update (enable table). */
export type ChangeAction = "restart" | "notify" | "local" | "none";

export function changeAction(affects: (section: string) => boolean): ChangeAction {
  if (affects("holefill.server") || affects("holefill.languages")) {
    return "restart";
  }
  for (const key of ["model", "device", "dtype", "drafts", "maxNewTokens", "logLevel"]) {
    if (affects(`holefill.${key}`)) {
      return "notify";
    }
  }
  if (affects("holefill.enable")) {
    return "local";
  }
  return "none";
}
