// Cursor positions -> the CLI's FILE:LINE:COL, and summaries of CLI output. No `vscode` import.

/** 1-based column in characters (Unicode code points, as Python counts them) of a VS Code
 * position, whose `character` counts UTF-16 code units. */
export function cliColumn(lineText: string, utf16Character: number): number {
  const before = lineText.slice(0, Math.max(0, Math.min(utf16Character, lineText.length)));
  let count = 0;
  for (const _ of before) {
    count += 1;
  }
  return count + 1;
}

/** FILE:LINE:COL (1-based line and column, in characters) for a 0-based VS Code position. */
export function formatLocation(
  path: string,
  line0: number,
  utf16Character: number,
  lineText: string,
): string {
  return `${path}:${line0 + 1}:${cliColumn(lineText, utf16Character)}`;
}
