"""JSON-able reports of the typed-hole context, for `holefill context --json` and the LSP.

`context_report(text, offset, path, workspace)` returns one dict with everything; the
`*_response` helpers give the result of each custom LSP method (params: `TextDocumentPositionParams`;
`chatlsp/errorReport` also carries `completion: str`). Ranges are LSP ranges: 0-based lines and
0-based character columns (code points; the server converts to the negotiated encoding), `uri` is a
`file://` URI or null for an unsaved buffer.

`chatlsp/expectedType` -> `ExpectedTypeResponse`:
    {"type": str | null,            # annotation text, e.g. "Optional[Todo]"; null when unknown
     "source": str,                 # rule: param | keyword | default | annassign | assign |
                                    # element | return | yield | condition | compare | case | unknown
     "definitions": [str],          # qualified names of the types it names, e.g. ["models.Todo"]
     "callee": str | null,          # call rules: the called function, e.g. "models.make_todo"
     "param": str | null}           # call and default rules: the parameter name

`chatlsp/relevantTypes` -> `[RelevantType]`, breadth first from the expected type:
    {"name": str, "qualname": str,
     "kind": "class" | "dataclass" | "enum" | "typeddict" | "protocol" | "namedtuple" | "alias"
             | "newtype",
     "text": str,                   # compact Python stub
     "depth": int,                  # 0: named by the expected type; 1, 2: through fields/bases
     "uri": str | null, "range": Range}

`chatlsp/relevantHeaders` -> `[RelevantHeader]`, best first, at most 8:
    {"name": str, "kind": "function" | "param" | "variable",
     "signature": str,              # "def f(x: int) -> Todo: ..." or "model: Model"
     "returnType": str | null,      # return annotation (functions) or type (variables)
     "uri": str | null, "range": Range, "score": float}

`chatlsp/errorReport` (params also carry "completion": str) -> `ErrorReport`:
    {"parseErrors": [str],          # "line L: syntax error: ..."
     "typeErrors": [str],           # undefined names, unknown attributes, type mismatches
     "errors": [{"kind": "syntax" | "undefined-name" | "unknown-attribute" | "type-mismatch",
                 "message": str, "hint": str | null, "range": Range}]}

`context_report` -> {"expectedType": ExpectedTypeResponse, "relevantTypes": [...],
                     "relevantHeaders": [...], "contextBlock": str, "contextTokens": int,
                     "timings_ms": {"setup", "expected", "types", "headers", "total"}}
`contextBlock` is `prompt.context_block` under `budget_tokens` counted by `count_tokens` (default:
an estimate of one token per 3.5 characters; the engine passes its tokenizer's count).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from holefill.context import check as _check
from holefill.context import holes as _holes
from holefill.context.prompt import context_block

__all__ = [
    "context_report",
    "error_report",
    "estimate_tokens",
    "expected_type_response",
    "relevant_headers_response",
    "relevant_types_response",
]


def estimate_tokens(text: str) -> int:
    """Token estimate for code without a tokenizer: 1 token per 3.5 characters."""
    return (len(text) * 2 + 6) // 7


def _uri(path: str | None) -> str | None:
    return Path(path).resolve().as_uri() if path else None


def _range(start_line: int, end_line: int) -> dict[str, Any]:
    """LSP range of whole lines (1-based inclusive input)."""
    return {"start": {"line": max(0, start_line - 1), "character": 0},
            "end": {"line": max(0, end_line), "character": 0}}


def _expected_json(exp: _holes.ExpectedType) -> dict[str, Any]:
    return {"type": exp.type, "source": exp.source,
            "definitions": [r.qualname for r in exp.refs],
            "callee": exp.callee, "param": exp.param}


def _types_json(types: list[_holes.TypeDef]) -> list[dict[str, Any]]:
    return [{"name": t.name, "qualname": t.qualname, "kind": t.kind, "text": t.text,
             "depth": t.depth, "uri": _uri(t.path), "range": _range(t.line, t.end_line)}
            for t in types]


def _headers_json(headers: list[_holes.Header]) -> list[dict[str, Any]]:
    return [{"name": h.name, "kind": h.kind, "signature": h.signature,
             "returnType": h.return_type, "uri": _uri(h.path), "range": _range(h.line, h.line),
             "score": h.score} for h in headers]


def expected_type_response(text: str, offset: int, path: str | None = None,
                           workspace: str | None = None) -> dict[str, Any]:
    return _expected_json(_holes.expected_type_at(text, offset, path, workspace))


def relevant_types_response(text: str, offset: int, path: str | None = None,
                            workspace: str | None = None) -> list[dict[str, Any]]:
    return _types_json(_holes.relevant_types(text, offset, path, workspace))


def relevant_headers_response(text: str, offset: int, path: str | None = None,
                              workspace: str | None = None) -> list[dict[str, Any]]:
    return _headers_json(_holes.relevant_headers(text, offset, path, workspace))


def error_report(text: str, offset: int, completion: str, path: str | None = None,
                 workspace: str | None = None) -> dict[str, Any]:
    """Result of `chatlsp/errorReport`: the errors `completion` would cause at `offset`."""
    expected = _holes.expected_type_at(text, offset, path, workspace)
    errors = _check.check_suggestion(text, offset, completion, path, workspace, expected)
    parse = [f"line {e.line}: {e.message}" for e in errors if e.kind == "syntax"]
    typed = [f"line {e.line}: {e.message}" + (f" ({e.hint})" if e.hint else "")
             for e in errors if e.kind != "syntax"]
    return {"parseErrors": parse, "typeErrors": typed,
            "errors": [{"kind": e.kind, "message": e.message, "hint": e.hint,
                        "range": {"start": {"line": e.line - 1, "character": e.column},
                                  "end": {"line": e.line - 1, "character": e.column}}}
                       for e in errors]}


def context_report(text: str, offset: int, path: str | None = None,
                   workspace: str | None = None, budget_tokens: int = 512,
                   count_tokens: Callable[[str], int] | None = None) -> dict[str, Any]:
    """Everything about the hole at `offset`, JSON-able (see the module docstring)."""
    hole = _holes.hole_context(text, offset, path, workspace)
    count = count_tokens or estimate_tokens
    block = context_block(hole, budget_tokens, count)
    return {"expectedType": _expected_json(hole.expected),
            "relevantTypes": _types_json(hole.types),
            "relevantHeaders": _headers_json(hole.headers),
            "contextBlock": block,
            "contextTokens": count(block) if block else 0,
            "timings_ms": dict(hole.timings_ms)}
