// Loaded with `node --require`: makes `require("vscode")` resolve to the small stub in
// test/stubs/vscode.ts, so the extension runs under plain node without downloading VS Code.
import Module = require("node:module");
import * as path from "node:path";

const stub = path.join(__dirname, "stubs", "vscode.js");
const mod = Module as unknown as {
  _resolveFilename: (request: string, ...rest: unknown[]) => string;
};
const original = mod._resolveFilename;
mod._resolveFilename = function (request: string, ...rest: unknown[]): string {
  if (request === "vscode") {
    return stub;
  }
  return original.call(this, request, ...rest);
};
