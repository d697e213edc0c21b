// Command lines for `holefill serve | resolve | context`. No `vscode` import.

import type { ServerLaunch } from "./settings";

export interface CommandLine {
  command: string;
  args: string[];
}

/** The holefill CLI without a subcommand: `server.command` (a trailing "serve" is dropped, so a
 * full server command line works too), else `PYTHON -m holefill.cli`, else `holefill`. */
export function cliBase(launch: ServerLaunch): string[] {
  if (launch.command.length > 0) {
    const base = [...launch.command];
    if (base.length > 1 && base[base.length - 1] === "serve") {
      base.pop();
    }
    return base;
  }
  if (launch.pythonPath !== "") {
    return [launch.pythonPath, "-m", "holefill.cli"];
  }
  return ["holefill"];
}

function split(parts: string[]): CommandLine {
  return { command: parts[0], args: parts.slice(1) };
}

export function serveCommand(launch: ServerLaunch): CommandLine {
  return split([...cliBase(launch), "serve", ...launch.extraArgs]);
}

export function resolveCommand(launch: ServerLaunch, file: string): CommandLine {
  return split([...cliBase(launch), "resolve", file, "--write", "--json"]);
}

export function contextCommand(
  launch: ServerLaunch,
  location: string,
  workspace?: string,
): CommandLine {
  const parts = [...cliBase(launch), "context", location];
  if (workspace) {
    parts.push("--workspace", workspace);
  }
  return split(parts);
}

/** The environment for the server and CLI runs: the extension host's plus `server.env`. */
export function processEnv(
  base: Record<string, string | undefined>,
  launch: ServerLaunch,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (v !== undefined) {
      env[k] = v;
    }
  }
  return { ...env, ...launch.env };
}

/** A command line as a user would type it in a shell (for messages and logs). */
export function display(line: CommandLine): string {
  const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return [line.command, ...line.args].map(quote).join(" ");
}

/** A human explanation of a failed CLI run (spawn error or non-zero exit). */
export function explainFailure(
  line: CommandLine,
  subcommand: string,
  result: { code: number | null; stderr: string; spawnError?: string },
): string {
  if (result.spawnError) {
    if (/ENOENT/.test(result.spawnError)) {
      return (
        `holefill: \`${line.command}\` was not found. Install holefill (pip install holefill) or ` +
        `set "holefill.server.pythonPath" / "holefill.server.command".`
      );
    }
    return `holefill: could not run \`${display(line)}\`: ${result.spawnError}`;
  }
  if (new RegExp(`invalid choice: '${subcommand}'`).test(result.stderr)) {
    return `holefill: this holefill has no \`${subcommand}\` command yet; update holefill.`;
  }
  if (/No module named holefill/.test(result.stderr)) {
    return `holefill: the Python interpreter \`${line.command}\` has no holefill installed.`;
  }
  const lastLine = result.stderr.trim().split(/\r?\n/).filter(Boolean).pop() ?? "";
  return `holefill ${subcommand} failed (exit ${result.code})${lastLine ? `: ${lastLine}` : ""}`;
}
