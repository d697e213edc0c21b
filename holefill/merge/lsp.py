"""Plain-data API for the language server: conflict diagnostics and code actions.

No pygls here.  Lines are 0-based; a hunk spans ``start_line``..``end_line`` inclusive (the
``<<<<<<<`` and ``>>>>>>>`` lines), so the edit range for a code action is
``(start_line, 0)``..``(end_line + 1, 0)`` (or the end of the document when the end marker is the
last line without a line end).  Titles name the stage that produced the edit:
``Resolve conflict (structured: disjoint-edits, p=0.68)`` or ``Resolve conflict (classifier: OURS,
p=0.93)`` per hunk, and ``Resolve all conflicts`` for the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass

from .resolver import (
    ConflictError,
    ConflictHunk,
    HunkResult,
    parse_conflicts,
    resolve_text,
)

__all__ = [
    "ConflictError",
    "ConflictHunk",
    "HunkSuggestion",
    "action_title",
    "conflict_hunks",
    "resolve_all",
    "resolve_hunk_edit",
    "suggestions",
]


@dataclass(frozen=True)
class HunkSuggestion:
    """One ranked candidate for a hunk (for a list of code actions)."""

    text: str
    pattern: str
    confidence: float
    stage: str = "classifier"


def conflict_hunks(text: str, marker_size: int | None = None) -> list[ConflictHunk]:
    """Conflict blocks of ``text`` with 0-based line ranges.  Raises ConflictError if malformed."""
    return parse_conflicts(text, marker_size)


def _resolve_one(
    text: str, hunk_index: int, path: str | None, min_confidence: float
) -> HunkResult | None:
    hunks = parse_conflicts(text)
    if not 0 <= hunk_index < len(hunks):
        return None
    res = resolve_text(
        text,
        path=path,
        min_confidence=min_confidence,
        only=lambda i: i == hunk_index,
        hunks=hunks,
    )
    return res.hunks[hunk_index]


def resolve_hunk_edit(
    text: str, hunk_index: int, path: str | None = None, min_confidence: float = 0.0
) -> tuple[str, str, float, str] | None:
    """``(new_hunk_text, pattern, confidence, stage)`` to replace hunk ``hunk_index``, or None.

    The user asks for it explicitly, so by default any confidence is offered (the title shows
    it); the candidate must still keep the file parseable.  ``path`` lets a two-way block take its
    base from git's index stages.
    """
    r = _resolve_one(text, hunk_index, path, min_confidence)
    if r is None or r.status != "resolved" or r.text is None or r.pattern is None:
        return None
    return r.text, r.pattern, float(r.confidence or 0.0), r.stage or "classifier"


def suggestions(
    text: str, hunk_index: int, path: str | None = None, k: int = 3
) -> list[HunkSuggestion]:
    """Up to ``k`` ranked candidates for a hunk (the first is what ``resolve_hunk_edit`` gives).

    Only the first one is checked to parse; the others are the classifier's runners-up.
    """
    r = _resolve_one(text, hunk_index, path, 0.0)
    if r is None:
        return []
    out: list[HunkSuggestion] = []
    if r.status == "resolved" and r.text is not None and r.pattern is not None:
        out.append(
            HunkSuggestion(r.text, r.pattern, float(r.confidence or 0.0), r.stage or "classifier")
        )
    for alt in r.alternatives:
        if len(out) >= k:
            break
        if all(alt.text != s.text for s in out):
            out.append(HunkSuggestion(alt.text, alt.pattern, alt.confidence))
    return out


def resolve_all(text: str, path: str | None = None, min_confidence: float | None = None) -> str:
    """``text`` with every confidently resolvable hunk resolved (default threshold); others kept."""
    return resolve_text(text, path=path, min_confidence=min_confidence).text


def action_title(pattern: str, confidence: float, stage: str = "classifier") -> str:
    """The code-action title for a hunk resolution; it names the stage that produced it and its
    confidence (a structured merge's is the training precision of its rule class)."""
    return f"Resolve conflict ({stage}: {pattern}, p={confidence:.2f})"
