// Merge-conflict results: `holefill resolve --json` output and marker counts. No `vscode` import.

export interface HunkResult {
  path?: string;
  hunk?: number;
  status?: string;
  pattern?: string | null;
  confidence?: number | null;
}

function collectHunks(value: unknown, out: HunkResult[]): void {
  if (Array.isArray(value)) {
    for (const item of value) {
      collectHunks(item, out);
    }
  } else if (value && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    if (typeof obj.status === "string" && ("hunk" in obj || "pattern" in obj)) {
      out.push(obj as HunkResult);
      return;
    }
    for (const child of Object.values(obj)) {
      collectHunks(child, out);
    }
  }
}

/** Per-hunk results of `holefill resolve --json`, whatever the nesting (a list of hunks, or
 * files holding hunks); null when the output is not JSON. */
export function parseResolveOutput(stdout: string): HunkResult[] | null {
  const text = stdout.trim();
  if (text === "") {
    return [];
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    // JSON lines
    try {
      data = text.split(/\r?\n/).filter(Boolean).map((l) => JSON.parse(l));
    } catch {
      return null;
    }
  }
  const hunks: HunkResult[] = [];
  collectHunks(data, hunks);
  return hunks;
}

/** One line for a notification: "resolved 2 of 3 conflicts; 1 left as is". */
export function summarizeResolve(hunks: HunkResult[]): string {
  if (hunks.length === 0) {
    return "holefill: no merge conflicts in this file";
  }
  const resolved = hunks.filter((h) => h.status === "resolved").length;
  const left = hunks.length - resolved;
  const noun = hunks.length === 1 ? "conflict" : "conflicts";
  let text = `holefill: resolved ${resolved} of ${hunks.length} ${noun}`;
  if (left > 0) {
    text += `; ${left} left for you (the resolver abstained)`;
  }
  return text;
}

/** Conflict blocks in a text (lines starting with seven "<"). */
export function countConflicts(text: string): number {
  let n = 0;
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith("<<<<<<<")) {
      n += 1;
    }
  }
  return n;
}

/** The same one-line summary from conflict counts before and after a resolution. */
export function summarizeCounts(before: number, after: number): string {
  if (before === 0) {
    return "holefill: no merge conflicts in this file";
  }
  const resolved = Math.max(0, before - after);
  return summarizeResolve([
    ...Array.from({ length: resolved }, () => ({ status: "resolved" })),
    ...Array.from({ length: before - resolved }, () => ({ status: "abstained" })),
  ]);
}
