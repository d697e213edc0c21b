"""Line- and token-level three-way merge (diff3).

``merge3`` is the generic algorithm over sequences of strings: it aligns ``ours`` and ``theirs``
with ``base`` (minimal edit scripts, Myers), walks the base lines that both sides keep ("stable"
anchors) and classifies each chunk between anchors: changed on one side only or identically on
both sides -> clean, changed differently -> conflict.

Line level (``merge_lines``) follows ``git merge-file --diff3`` semantics (lines split on ``\\n``
only, identical changes on both sides are clean, conflicts are not trimmed).  Inside a line-level
conflict ``token_merge`` re-runs the same algorithm over a Python-ish token stream in which
whitespace and newlines are tokens, so ``"".join(tokenize(s)) == s`` for every string and a merged
result prints back exactly.  Strings and comments are split on whitespace and punctuation like
code, which lets edits to different words of a docstring merge.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Clean",
    "Conflict",
    "Region",
    "TokenMerge",
    "diff_matches",
    "merge3",
    "merge_lines",
    "split_lines",
    "token_merge",
    "tokenize",
]

_TOKEN_RE = re.compile(
    r"""
    \r\n | \n | \r                                  # line ends (one token each)
  | [ \t\f\v]+                                      # horizontal whitespace run
  | \w+                                             # identifiers, keywords, numbers, words
  | \*\*= | //= | >>= | <<= | \.\.\. | -> | := | \*\* | // | << | >> | <= | >= | == | !=
  | [-+*/%&|^@]=
  | .                                               # anything else, one character
    """,
    re.VERBOSE,
)

_LINE_RE = re.compile(r"[^\n]*\n|[^\n]+")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into tokens that concatenate back to exactly ``text``."""
    return _TOKEN_RE.findall(text)


def split_lines(text: str) -> list[str]:
    """Split on ``\\n`` only (as git does), keeping line ends; ``"".join`` restores ``text``."""
    return _LINE_RE.findall(text)


# --------------------------------------------------------------------------- two-way diff


def _myers(a: Sequence[int], b: Sequence[int], max_d: int) -> list[tuple[int, int]] | None:
    """Matched index pairs of a minimal edit script, or None when more than ``max_d`` edits."""
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return []
    off = n + m + 1
    v = [0] * (2 * off + 1)
    trace: list[list[int]] = []
    found_d = -1
    for d in range(min(max_d, n + m) + 1):
        trace.append(v[off - d - 1 : off + d + 2])
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and v[off + k - 1] < v[off + k + 1]):
                x = v[off + k + 1]
            else:
                x = v[off + k - 1] + 1
            y = x - k
            while x < n and y < m and a[x] == b[y]:
                x += 1
                y += 1
            v[off + k] = x
            if x >= n and y >= m:
                found_d = d
                break
        if found_d >= 0:
            break
    if found_d < 0:
        return None
    pairs: list[tuple[int, int]] = []
    x, y = n, m
    for d in range(found_d, 0, -1):
        vd = trace[d]  # v as it was before step d; index k -> vd[k + d + 1]
        k = x - y
        if k == -d or (k != d and vd[k - 1 + d + 1] < vd[k + 1 + d + 1]):
            prev_k = k + 1
        else:
            prev_k = k - 1
        prev_x = vd[prev_k + d + 1]
        prev_y = prev_x - prev_k
        while x > prev_x and y > prev_y:
            x -= 1
            y -= 1
            pairs.append((x, y))
        x, y = prev_x, prev_y
    while x > 0 and y > 0:
        x -= 1
        y -= 1
        pairs.append((x, y))
    pairs.reverse()
    return pairs


def diff_matches(a: Sequence[str], b: Sequence[str], max_d: int = 2000) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)`` with ``a[i] == b[j]`` of a longest common subsequence.

    Common prefix and suffix are matched first; the middle uses Myers' O(ND) algorithm and falls back
    to ``difflib`` (autojunk off) when the sequences differ by more than ``max_d`` edits.
    Deterministic.
    """
    n, m = len(a), len(b)
    pre = 0
    while pre < n and pre < m and a[pre] == b[pre]:
        pre += 1
    suf = 0
    while suf < n - pre and suf < m - pre and a[n - 1 - suf] == b[m - 1 - suf]:
        suf += 1
    pairs = [(i, i) for i in range(pre)]
    mid_a, mid_b = a[pre : n - suf], b[pre : m - suf]
    if mid_a and mid_b:
        ids: dict[str, int] = {}
        ia = [ids.setdefault(t, len(ids)) for t in mid_a]
        ib = [ids.setdefault(t, len(ids)) for t in mid_b]
        mid = _myers(ia, ib, max_d)
        if mid is None:
            sm = difflib.SequenceMatcher(None, ia, ib, autojunk=False)
            mid = [
                (blk.a + t, blk.b + t) for blk in sm.get_matching_blocks() for t in range(blk.size)
            ]
        pairs.extend((i + pre, j + pre) for i, j in mid)
    pairs.extend((n - suf + t, m - suf + t) for t in range(suf))
    return pairs


# --------------------------------------------------------------------------- three-way merge


@dataclass(frozen=True)
class Clean:
    """A region every side agrees on after merging (items: lines or tokens)."""

    items: tuple[str, ...]

    @property
    def text(self) -> str:
        return "".join(self.items)


@dataclass(frozen=True)
class Conflict:
    """A region that ``ours`` and ``theirs`` changed differently relative to ``base``."""

    ours: tuple[str, ...]
    base: tuple[str, ...]
    theirs: tuple[str, ...]

    @property
    def ours_text(self) -> str:
        return "".join(self.ours)

    @property
    def base_text(self) -> str:
        return "".join(self.base)

    @property
    def theirs_text(self) -> str:
        return "".join(self.theirs)


Region = Clean | Conflict


def merge3(base: Sequence[str], ours: Sequence[str], theirs: Sequence[str]) -> list[Region]:
    """Three-way merge of item sequences; adjacent clean regions are joined."""
    ma = dict(diff_matches(base, ours))
    mb = dict(diff_matches(base, theirs))
    out: list[Region] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            out.append(Clean(tuple(pending)))
            pending.clear()

    io = ia = ib = 0
    nb = len(base)
    while True:
        o = io
        while o < nb and not (o in ma and o in mb):
            o += 1
        if o == nb:
            a_end, b_end = len(ours), len(theirs)
        else:
            a_end, b_end = ma[o], mb[o]
        if o > io or a_end > ia or b_end > ib:
            oc, ac, bc = tuple(base[io:o]), tuple(ours[ia:a_end]), tuple(theirs[ib:b_end])
            if ac == oc:
                pending.extend(bc)
            elif bc == oc or ac == bc:
                pending.extend(ac)
            else:
                flush()
                out.append(Conflict(ac, oc, bc))
        if o == nb:
            break
        pending.append(base[o])
        io, ia, ib = o + 1, a_end + 1, b_end + 1
    flush()
    return out


def merge_lines(base: str, ours: str, theirs: str) -> list[Region]:
    """Line-level diff3 of three texts (regions hold lines with their line ends)."""
    return merge3(split_lines(base), split_lines(ours), split_lines(theirs))


@dataclass(frozen=True)
class TokenMerge:
    """Result of the token-level diff3 inside one line-level conflict."""

    regions: tuple[Region, ...]

    @property
    def conflicts(self) -> list[Conflict]:
        return [r for r in self.regions if isinstance(r, Conflict)]

    @property
    def clean(self) -> bool:
        return not any(isinstance(r, Conflict) for r in self.regions)

    @property
    def text(self) -> str | None:
        """The merged text when there is no token-level conflict, else None."""
        if not self.clean:
            return None
        return "".join(r.text for r in self.regions if isinstance(r, Clean))


def token_merge(base: str, ours: str, theirs: str) -> TokenMerge:
    """Token-level diff3 of one conflict's three sides."""
    return TokenMerge(tuple(merge3(tokenize(base), tokenize(ours), tokenize(theirs))))
