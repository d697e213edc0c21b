import assert from "node:assert/strict";
import { test } from "node:test";
import { cliColumn, formatLocation } from "../src/logic/location";
import { countConflicts, parseResolveOutput, summarizeCounts, summarizeResolve } from "../src/logic/resolve";

test("1-based line and column", () => {
  assert.equal(formatLocation("/w/a.py", 0, 0, "import os"), "/w/a.py:1:1");
  assert.equal(formatLocation("/w/a.py", 32, 8, "        return x"), "/w/a.py:33:9");
});

test("columns count characters, not UTF-16 units", () => {
  const line = "s = '😀é' + os";
  // VS Code: the emoji is two UTF-16 units; Python counts one character.
  const utf16 = line.indexOf("+");
  assert.equal(utf16, 10);
  // "+" is the 10th character: 1-based column 10 (a UTF-16 count would say 11).
  assert.equal(cliColumn(line, utf16), 10);
  assert.equal(cliColumn("x", 99), 2);
  assert.equal(cliColumn("x", -1), 1);
});

test("windows-like and colon paths are kept whole (the CLI splits from the right)", () => {
  assert.equal(formatLocation("C:\\w\\a.py", 1, 2, "abc"), "C:\\w\\a.py:2:3");
});

test("resolve output: list, nested files, JSON lines, garbage", () => {
  const hunks = [
    { path: "a.py", hunk: 0, status: "resolved", pattern: "OURS", confidence: 0.9, text: "x" },
    { path: "a.py", hunk: 1, status: "abstained", pattern: null, confidence: 0.2, text: null },
  ];
  assert.equal(parseResolveOutput(JSON.stringify(hunks))?.length, 2);
  assert.equal(parseResolveOutput(JSON.stringify({ files: [{ path: "a.py", hunks }] }))?.length, 2);
  assert.equal(parseResolveOutput(hunks.map((h) => JSON.stringify(h)).join("\n"))?.length, 2);
  assert.deepEqual(parseResolveOutput(""), []);
  assert.equal(parseResolveOutput("resolved 2 hunks"), null);
  assert.equal(summarizeResolve(hunks), "holefill: resolved 1 of 2 conflicts; 1 left for you (the resolver abstained)");
  assert.equal(summarizeResolve([hunks[0]]), "holefill: resolved 1 of 1 conflict");
  assert.equal(summarizeResolve([]), "holefill: no merge conflicts in this file");
});

test("conflict counts and their summary", () => {
  const text = "a\n<<<<<<< ours\nx\n=======\ny\n>>>>>>> theirs\n<<<<<<<< longer marker\n";
  assert.equal(countConflicts(text), 2);
  assert.equal(countConflicts("a <<<<<<< b\r\n"), 0);
  assert.equal(summarizeCounts(2, 0), "holefill: resolved 2 of 2 conflicts");
  assert.equal(summarizeCounts(2, 1), "holefill: resolved 1 of 2 conflicts; 1 left for you (the resolver abstained)");
  assert.equal(summarizeCounts(0, 0), "holefill: no merge conflicts in this file");
});
