"""Primitive merge patterns and candidate resolutions for one conflict hunk.

A hunk is a line-level conflict ``(ours, base, theirs)``.  Candidates come in two levels:

* line level, applied to the whole hunk text: ``OURS``, ``THEIRS``, ``BASE``, ``OURS_THEN_THEIRS``,
  ``THEIRS_THEN_OURS``, ``EMPTY`` and the base-removed variants ``*_MINUS_BASE``;
* token level (MergeBERT): the token diff3 of the hunk merges what it can; when no token-level
  conflict remains the candidate is ``TOKEN_MERGE``, otherwise ``TOKEN_<P>`` applies the primitive
  pattern ``P`` to every token-level conflict and keeps the merged tokens between them.

"minus base" (``x - o``) removes from ``x`` the tokens (or lines) that a minimal alignment of ``x``
with ``o`` matches, i.e. multiset semantics by alignment, the same function for labelling and for
inference.  Every candidate is built only from text of the three sides: nothing is invented.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .diff3 import (
    Clean,
    Conflict,
    TokenMerge,
    diff_matches,
    split_lines,
    token_merge,
    tokenize,
)

__all__ = [
    "LINE_PATTERNS",
    "PRIMITIVES",
    "TOKEN_PATTERNS",
    "ALL_PATTERNS",
    "PATTERN_PREFERENCE",
    "Candidate",
    "Hunk",
    "apply_primitive",
    "candidates",
    "minus_base",
    "normalize",
]

# The nine MergeBERT primitives, plus EMPTY.
PRIMITIVES: tuple[str, ...] = (
    "OURS",
    "THEIRS",
    "BASE",
    "OURS_THEN_THEIRS",
    "THEIRS_THEN_OURS",
    "OURS_MINUS_BASE",
    "THEIRS_MINUS_BASE",
    "OURS_THEN_THEIRS_MINUS_BASE",
    "THEIRS_THEN_OURS_MINUS_BASE",
    "EMPTY",
)
LINE_PATTERNS: tuple[str, ...] = PRIMITIVES
TOKEN_PATTERNS: tuple[str, ...] = ("TOKEN_MERGE",) + tuple(
    "TOKEN_" + p for p in PRIMITIVES if p != "EMPTY"
)
ALL_PATTERNS: tuple[str, ...] = LINE_PATTERNS + TOKEN_PATTERNS
# Simplest description first: when several patterns give the same text, this one names it.
PATTERN_PREFERENCE: tuple[str, ...] = (
    "OURS",
    "THEIRS",
    "BASE",
    "EMPTY",
    "OURS_THEN_THEIRS",
    "THEIRS_THEN_OURS",
    "TOKEN_MERGE",
    "OURS_MINUS_BASE",
    "THEIRS_MINUS_BASE",
    "OURS_THEN_THEIRS_MINUS_BASE",
    "THEIRS_THEN_OURS_MINUS_BASE",
) + tuple(p for p in TOKEN_PATTERNS if p != "TOKEN_MERGE")


@dataclass(frozen=True)
class Hunk:
    """One line-level conflict: the three sides' texts (each normally ends with a line end)."""

    ours: str
    base: str
    theirs: str


@dataclass(frozen=True)
class Candidate:
    """A candidate resolution of a hunk."""

    pattern: str
    text: str


def normalize(text: str) -> str:
    """Whitespace-normalised form used to compare resolutions (as in MergeBERT's evaluation)."""
    return " ".join(text.split())


def minus_base(items: Sequence[str], base: Sequence[str]) -> list[str]:
    """``items`` without the elements that a minimal alignment matches with ``base``."""
    matched = {j for _, j in diff_matches(base, items)}
    return [x for j, x in enumerate(items) if j not in matched]


def apply_primitive(
    pattern: str, ours: Sequence[str], base: Sequence[str], theirs: Sequence[str]
) -> list[str]:
    """Apply a primitive pattern to aligned item sequences (tokens or lines)."""
    a, o, b = list(ours), list(base), list(theirs)
    if pattern == "OURS":
        return a
    if pattern == "THEIRS":
        return b
    if pattern == "BASE":
        return o
    if pattern == "EMPTY":
        return []
    if pattern == "OURS_THEN_THEIRS":
        return a + b
    if pattern == "THEIRS_THEN_OURS":
        return b + a
    if pattern == "OURS_MINUS_BASE":
        return minus_base(a, o)
    if pattern == "THEIRS_MINUS_BASE":
        return minus_base(b, o)
    if pattern == "OURS_THEN_THEIRS_MINUS_BASE":
        return minus_base(a + b, o)
    if pattern == "THEIRS_THEN_OURS_MINUS_BASE":
        return minus_base(b + a, o)
    raise ValueError(f"unknown pattern {pattern!r}")


def _lines_for_concat(text: str) -> list[str]:
    """Lines of a side; a last line without a line end gets one so concatenations stay lines."""
    lines = split_lines(text)
    if lines and not lines[-1].endswith("\n"):
        eol = "\r\n" if any(x.endswith("\r\n") for x in lines[:-1]) else "\n"
        lines[-1] = lines[-1] + eol
    return lines


def token_candidate(merge: TokenMerge, primitive: str) -> str:
    """Text of the token-level merge with ``primitive`` applied to each token conflict."""
    parts: list[str] = []
    for region in merge.regions:
        if isinstance(region, Clean):
            parts.append(region.text)
        else:
            assert isinstance(region, Conflict)
            parts.extend(apply_primitive(primitive, region.ours, region.base, region.theirs))
    return "".join(parts)


def candidates(hunk: Hunk, merge: TokenMerge | None = None) -> list[Candidate]:
    """All candidate resolutions of ``hunk``, de-duplicated by exact text (first pattern wins).

    Order: TOKEN_MERGE (when clean) first, then the line-level patterns, then token patterns.
    """
    texts = candidate_texts(hunk, merge)
    out: list[Candidate] = []
    seen: set[str] = set()
    order = (
        ("TOKEN_MERGE",) + LINE_PATTERNS + tuple(p for p in TOKEN_PATTERNS if p != "TOKEN_MERGE")
    )
    for p in order:
        text = texts.get(p)
        if text is not None and text not in seen:
            seen.add(text)
            out.append(Candidate(p, text))
    return out


def candidate_texts(hunk: Hunk, merge: TokenMerge | None = None) -> dict[str, str]:
    """Every available pattern's text (no de-duplication), for labelling and features.

    A composed candidate (concatenation, minus-base, token level) whose re-tokenisation yields a
    token that none of the sides has (``x`` + ``2`` glued into ``x2``) is not available: a
    candidate may only rearrange the sides' text, never invent a token.
    """
    if merge is None:
        merge = token_merge(hunk.base, hunk.ours, hunk.theirs)
    a = _lines_for_concat(hunk.ours)
    o = _lines_for_concat(hunk.base)
    b = _lines_for_concat(hunk.theirs)
    allowed: set[str] | None = None

    def keep(text: str) -> bool:
        nonlocal allowed
        if allowed is None:
            allowed = {"\n", "\r\n"}
            for side in (hunk.ours, hunk.base, hunk.theirs):
                allowed.update(tokenize(side))
        return all(t in allowed for t in tokenize(text))

    out: dict[str, str] = {}
    for p in LINE_PATTERNS:
        if p in ("OURS", "THEIRS", "BASE"):
            out[p] = {"OURS": hunk.ours, "THEIRS": hunk.theirs, "BASE": hunk.base}[p]
        else:
            out[p] = "".join(apply_primitive(p, a, o, b))
    if merge.clean:
        out["TOKEN_MERGE"] = merge.text or ""
    else:
        for p in PRIMITIVES:
            if p != "EMPTY":
                out["TOKEN_" + p] = token_candidate(merge, p)
    return {p: t for p, t in out.items() if p in ("OURS", "THEIRS", "BASE") or keep(t)}
