"""Prompt assembly for typed holes: a context block placed before the file text.

Layout (cache-stable: the block depends only on the hole's context, never on timings or the exact
cursor column, so the same hole gives byte-identical text and a KV cache keeps its prefix):

    # Context from the language server for the code below.
    # Expected type at the cursor: Model
    # Definitions from models.py:
    @dataclass
    class Model:
        todos: list[Todo] = field(default_factory=list)
    # In scope with a fitting type:
    def add_todo(model: Model, text: str) -> Model: ...
    # model: Model
    # End of context.

Definitions the prompt already shows (the same file, shortly above the cursor) are left out.
Under the token budget, items are taken in a fixed priority order: the expected type, types named
by it (depth 0), the 3 best headers, types at depth 1, the other headers, types at depth 2, up to
the first item that does not fit (so a smaller budget always gives a subset). The chosen items are
then laid out in the order above (types in breadth-first order, headers by rank).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from holefill.context.holes import Header, HoleContext, TypeDef, hole_context

__all__ = ["ContextHeader", "api_snippet", "context_block", "context_header", "error_feedback",
           "hole_snippets"]

log = logging.getLogger(__name__)

OPEN = "# Context from the language server for the code below."
CLOSE = "# End of context."


def _module_label(path: str | None) -> str:
    return os.path.basename(path) if path else "this file"


def _render(hole: HoleContext, types: list[TypeDef], headers: list[Header],
            with_expected: bool) -> str:
    lines = [OPEN]
    if with_expected and hole.expected.type:
        lines.append(f"# Expected type at the cursor: {hole.expected.type}")
    current = None
    for td in types:
        label = _module_label(td.path)
        if label != current:
            lines.append(f"# Definitions from {label}:")
            current = label
        lines.append(td.text)
    if headers:
        lines.append("# In scope with a fitting type:")
        for h in headers:
            lines.append(h.signature if h.kind == "function" else f"# {h.signature}")
    lines.append(CLOSE)
    return "\n".join(lines) + "\n"


def _choose(hole: HoleContext, budget_tokens: int, count_tokens: Callable[[str], int]
            ) -> tuple[list[TypeDef], list[Header]] | None:
    """The types and headers the context block shows within the budget, or None when the
    block would say nothing (see context_block)."""
    types = [t for t in hole.types if not t.visible]
    headers = [h for h in hole.headers if not h.visible]
    # priority order of the optional items
    order: list[tuple[str, int]] = []
    order += [("t", i) for i, t in enumerate(types) if t.depth == 0]
    order += [("h", i) for i in range(min(3, len(headers)))]
    order += [("t", i) for i, t in enumerate(types) if t.depth == 1]
    order += [("h", i) for i in range(3, len(headers))]
    order += [("t", i) for i, t in enumerate(types) if t.depth >= 2]
    chosen_t: set[int] = set()
    chosen_h: set[int] = set()
    if not hole.expected.type and not types:
        return None
    if count_tokens(_render(hole, [], [], True)) > budget_tokens:
        return None
    for kind, i in order:
        trial_t = chosen_t | {i} if kind == "t" else chosen_t
        trial_h = chosen_h | {i} if kind == "h" else chosen_h
        text = _render(hole, [types[j] for j in sorted(trial_t)],
                       [headers[j] for j in sorted(trial_h)], True)
        if count_tokens(text) > budget_tokens:
            break  # truncation drops the lowest-priority items first, never a middle one
        chosen_t, chosen_h = trial_t, trial_h
    if not chosen_t and not chosen_h and (not hole.expected.type or (
            hole.expected.type == "bool" and hole.expected.source == "condition")):
        return None  # nothing fits, or "bool" in a condition: nothing the model cannot see
    return [types[j] for j in sorted(chosen_t)], [headers[j] for j in sorted(chosen_h)]


def context_block(hole: HoleContext, budget_tokens: int,
                  count_tokens: Callable[[str], int]) -> str:
    """The context block for `hole` within `budget_tokens` (as counted by `count_tokens`), or ""
    when there is nothing to say or not even the expected type fits."""
    chosen = _choose(hole, budget_tokens, count_tokens)
    return "" if chosen is None else _render(hole, chosen[0], chosen[1], True)


def error_feedback(errors: Sequence[object]) -> str:
    """Comment lines describing why the previous suggestion was rejected (for an error round);
    "" when there are no errors. Accepts `CheckError`s or plain strings."""
    items: list[str] = []
    for err in errors:
        if isinstance(err, str):
            items.append(err)
            continue
        message = getattr(err, "message", str(err))
        hint = getattr(err, "hint", None)
        items.append(message + (f" ({hint})" if hint else ""))
    if not items:
        return ""
    lines = ["# The previous suggestion for the cursor was rejected:"]
    lines += [f"# - {' '.join(item.split())}" for item in items]
    lines.append("# Write a corrected version.")
    return "\n".join(lines) + "\n"


@dataclass
class ContextHeader:
    """What goes before the file text, and the analyses it came from. `files` holds the same
    blocks as snippets of the files they come from, (path, text), for a fill-in-the-middle
    model's repository format (completion/fim.py) instead of comments."""
    text: str
    hole: HoleContext | None = None
    correlation: Any = None  # context.api.Correlation after `recv.`, else None
    files: list[tuple[str, str]] = field(default_factory=list)


def _relative(path: str | None, workspace: str | None) -> str:
    if not path:
        return "snippet.py"
    if workspace:
        try:
            rel = os.path.relpath(path, workspace)
            if not rel.startswith(".."):
                return rel.replace(os.sep, "/")
        except ValueError:  # another drive (Windows)
            pass
    return os.path.basename(path)


def _stub_line(sym: Any) -> str:
    """A member as a stub line: `def name(self, a: int) -> str: ...` or `name: T`."""
    sig = sym.signature.split(".", 1)[1] if "." in sym.signature.split("(")[0] else sym.signature
    if sym.kind in ("method", "property", "function") and "(" in sig:
        name, rest = sig.split("(", 1)
        if sym.kind != "function":
            rest = "self, " + rest if not rest.startswith(")") else "self" + rest
        line = f"def {name}({rest}: ..."
    else:
        line = sig
    return line + (f"  # {sym.doc[:60]}" if sym.doc and sym.kind != "attribute" else "")


def api_snippet(correlation: Any, budget_tokens: int, count_tokens: Callable[[str], int],
                workspace: str | None) -> tuple[str, str] | None:
    """The receiver's members as a stub of its class (or module) in the file that defines it,
    best first within the budget; None when none fit."""
    if correlation is None or budget_tokens <= 0:
        return None
    owner = correlation.owner
    cls = owner.kind == "class"
    lines = [f"class {owner.name}:"] if cls else []
    used = count_tokens("\n".join(lines) + "\n") if lines else 0
    count = 0
    for sym in correlation.ranked:
        if sym.name.startswith("__") or count >= 40:
            continue
        line = ("    " if cls else "") + _stub_line(sym)
        cost = count_tokens(line + "\n")
        if used + cost > budget_tokens:
            break
        lines.append(line)
        used += cost
        count += 1
    if not count:
        return None
    return _relative(owner.path, workspace), "\n".join(lines) + "\n"


def hole_snippets(hole: HoleContext, budget_tokens: int, count_tokens: Callable[[str], int],
                  workspace: str | None) -> list[tuple[str, str]]:
    """The typed hole's type definitions and fitting functions (the context block's choice
    within the budget) grouped by the file that defines them."""
    chosen = _choose(hole, budget_tokens, count_tokens)
    if chosen is None:
        return []
    by_file: dict[str, list[str]] = {}
    for td in chosen[0]:
        by_file.setdefault(_relative(td.path, workspace), []).append(td.text)
    for h in chosen[1]:
        if h.kind == "function":  # parameters and variables are in the file the model sees
            by_file.setdefault(_relative(h.path, workspace), []).append(h.signature)
    return [(path, "\n\n".join(parts) + "\n") for path, parts in by_file.items()]


def context_header(text: str, offset: int, settings: Any, count_tokens: Callable[[str], int],
                   path: str | None = None, workspace: str | None = None,
                   api_index: Any = None, feedback: str = "",
                   correlate: bool = False) -> ContextHeader:
    """The header of a prompt, in the cache-stable order every backend uses: the API signature
    block (LANCE, after `recv.`, when `settings.api_context`), the typed-hole block (when
    `settings.typed_holes`), then the error-round `feedback`; as comment blocks in `text` and
    as file snippets in `files`. The receiver is also correlated when `correlate` (the caller
    constrains names with it). Analyses that fail are logged and left out: they must never
    break completion."""
    from holefill.context import api as api_context  # api imports the index: only when used

    header = ContextHeader("")
    if api_index is not None and (settings.api_context or correlate):
        try:
            header.correlation = api_context.correlate(api_index, text, offset, path, workspace)
        except Exception as exc:
            log.warning("API correlation failed: %s", type(exc).__name__)
        if header.correlation is not None and settings.api_context:
            block = api_context.signature_block(header.correlation, settings.api_budget_tokens,
                                                count_tokens)
            header.text += block + "\n" if block else ""
            snippet = api_snippet(header.correlation, settings.api_budget_tokens, count_tokens,
                                  workspace)
            header.files += [snippet] if snippet else []
    if settings.typed_holes:
        try:
            header.hole = hole_context(text, offset, path, workspace)
        except Exception as exc:
            log.warning("typed-hole context failed: %s", type(exc).__name__)
        block = "" if header.hole is None else context_block(
            header.hole, settings.context_budget_tokens, count_tokens)
        header.text += block + "\n" if block else ""
        if block and header.hole is not None:
            header.files += hole_snippets(header.hole, settings.context_budget_tokens,
                                          count_tokens, workspace)
    header.text += feedback
    return header
