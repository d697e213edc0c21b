"""Resolve files with conflict markers; abstain when unsure; never touch bytes outside hunks.

Each hunk goes through named stages in order (``PIPELINE``); the first stage that resolves it
wins, and the stage's name is recorded on the result:

* ``structured`` (``structured.py``): a syntax-tree merge of the three sides in their file
  context; it produces a merge only when the two sides' changes touch different nodes or
  commute.  Its confidence is the training-repository precision of the merge's rule class
  (``structured.CLASS_CONFIDENCE``); by default it must reach ``STRUCTURED_MIN_CONFIDENCE``, an
  explicit ``min_confidence`` replaces that.  It needs a real base (diff3 markers or git's index),
  never a pseudo-base.
* ``classifier``: MergeBERT-style candidates ranked by the classifier.  The stages compete: a
  structured merge that passed its gate still loses to a classifier candidate with a different
  text and a higher confidence (at least the classifier's threshold).

A hunk is replaced by a candidate only when

1. its confidence is at least its stage's threshold, and
2. the file parses with the candidate in place (``ast``; the other hunks hold their already chosen
   resolution, or their "ours" side).  When the file does not parse even with the sides (a fragment,
   or a file broken elsewhere), tree-sitter decides: the candidate must not add syntax errors
   compared with the better of the two sides.

Otherwise the hunk is kept byte for byte, markers included.  Text outside hunks is copied from the
input slices, so it cannot change.  Writes are atomic (temporary file in the same directory,
``os.replace``, mode preserved).  Nothing here imports or runs user code.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .classifier import MergeClassifier, ScoredCandidate, featurize, load_default
from .diff3 import diff_matches, split_lines, token_merge, tokenize
from .patterns import Hunk, normalize
from .structured import merge_hunk, profile_for_path
from .syntax import ast_parses, ts_error_count

__all__ = [
    "CONTEXT_LINES",
    "ConflictError",
    "ConflictHunk",
    "FileResolution",
    "HunkResult",
    "PIPELINE",
    "STRUCTURED_MIN_CONFIDENCE",
    "atomic_write",
    "decode_source",
    "git_index_base",
    "parse_conflicts",
    "render_conflict",
    "resolve_file",
    "resolve_text",
]

CONTEXT_LINES = 5  # lines of context the classifier sees on each side (as in the training data)
PIPELINE: tuple[str, ...] = ("structured", "classifier")  # stage names, tried in this order
# By default a structured merge is taken only when its rule class reached this precision on the
# training repositories (structured.CLASS_CONFIDENCE); an explicit min_confidence replaces it.
STRUCTURED_MIN_CONFIDENCE = 0.9
DEFAULT_MARKER_SIZE = 7


class ConflictError(ValueError):
    """Malformed conflict markers or an unreadable file; nothing is written."""


@dataclass(frozen=True)
class ConflictHunk:
    """One conflict block as found in a file.

    ``start_line``/``end_line`` are 0-based and inclusive (the ``<<<<<<<`` and ``>>>>>>>`` lines);
    ``start``/``end`` are character offsets, ``text[start:end]`` being the whole block including
    the end marker's line end.  ``base`` is None for two-way markers (no ``|||||||`` section).
    """

    index: int
    start_line: int
    end_line: int
    start: int
    end: int
    ours: str
    base: str | None
    theirs: str
    marker_size: int
    ours_label: str = ""
    base_label: str = ""
    theirs_label: str = ""


@dataclass(frozen=True)
class HunkResult:
    """What the resolver decided for one hunk."""

    hunk: ConflictHunk
    status: str  # "resolved" | "abstained"
    pattern: str | None  # pattern of the chosen (or best rejected) candidate
    confidence: float | None
    text: str | None  # the resolution (resolved) or the best candidate (abstained), if any
    reason: str = ""
    base_source: str = "markers"  # markers | git-index | two-way | given
    alternatives: tuple[ScoredCandidate, ...] = ()
    stage: str | None = None  # the stage that resolved it ("structured" | "classifier")
    structured_ms: float | None = None  # time the structured stage took on this hunk
    sites: tuple[tuple[str, str], ...] = ()  # structured: (rule, context) of each merge step


@dataclass(frozen=True)
class FileResolution:
    """Result of resolving one text: per-hunk decisions and the new text."""

    text: str  # the input text with resolved hunks substituted
    hunks: tuple[HunkResult, ...] = field(default_factory=tuple)

    @property
    def resolved(self) -> int:
        return sum(h.status == "resolved" for h in self.hunks)

    @property
    def remaining(self) -> int:
        return sum(h.status != "resolved" for h in self.hunks)


# --------------------------------------------------------------------------- marker parsing


def _strip_eol(line: str) -> str:
    if line.endswith("\r\n"):
        return line[:-2]
    if line.endswith("\n"):
        return line[:-1]
    return line


_MARKER_RE = re.compile(r"([<|>])\1{6,}(?= |$)")


def _marker(line: str) -> tuple[str, int, str] | None:
    """(kind, size, label) for a ``<``/``|``/``>`` marker line (size >= 7), else None."""
    body = _strip_eol(line)
    m = _MARKER_RE.match(body)
    if m is None:
        return None
    size = m.end()
    return m.group(1), size, body[size + 1 :] if len(body) > size else ""


def parse_conflicts(text: str, marker_size: int | None = None) -> list[ConflictHunk]:
    """Find conflict blocks.  ``marker_size`` None: detect it from the first ``<`` marker.

    Raises ConflictError for unclosed or nested blocks, a missing ``=`` separator, stray end or
    base markers, and marker lines of a different size than the file's (or the given) size.
    """
    lines = split_lines(text)
    offsets = [0]
    for ln in lines:
        offsets.append(offsets[-1] + len(ln))
    size = marker_size
    hunks: list[ConflictHunk] = []
    i = 0
    n = len(lines)
    while i < n:
        mk = _marker(lines[i])
        if mk is None:
            i += 1
            continue
        kind, msize, label = mk
        if size is None and kind == "<":
            size = msize
        if size is not None and msize != size:
            raise ConflictError(
                f"line {i + 1}: conflict marker of size {msize}, expected size {size}"
            )
        if kind != "<":
            raise ConflictError(f"line {i + 1}: {kind * msize} marker outside a conflict block")
        start = i
        ours_label = label
        sections: dict[str, list[str]] = {"ours": [], "base": [], "theirs": []}
        labels = {"base": "", "theirs": ""}
        saw_base = False
        state = "ours"
        i += 1
        closed = False
        while i < n:
            line = lines[i]
            body = _strip_eol(line)
            mk = _marker(line)
            if mk is not None and mk[1] == size:
                kind, _, label = mk
                if kind == "<":
                    raise ConflictError(
                        f"line {i + 1}: nested conflict block (block opened on line {start + 1})"
                    )
                if kind == "|":
                    if state != "ours":
                        raise ConflictError(f"line {i + 1}: unexpected {'|' * size} marker")
                    state = "base"
                    saw_base = True
                    labels["base"] = label
                    i += 1
                    continue
                if kind == ">":
                    if state != "theirs":
                        raise ConflictError(
                            f"line {i + 1}: {'>' * size} marker before the {'=' * size} separator"
                        )
                    labels["theirs"] = label
                    closed = True
                    break
            if body == "=" * size:
                if state == "theirs":
                    raise ConflictError(
                        f"line {i + 1}: second {'=' * size} line in the block opened on line "
                        f"{start + 1}; the separator is ambiguous"
                    )
                state = "theirs"
                i += 1
                continue
            sections[state].append(line)
            i += 1
        if not closed:
            raise ConflictError(f"line {start + 1}: conflict block is not closed")
        hunks.append(
            ConflictHunk(
                index=len(hunks),
                start_line=start,
                end_line=i,
                start=offsets[start],
                end=offsets[i + 1],
                ours="".join(sections["ours"]),
                base="".join(sections["base"]) if saw_base else None,
                theirs="".join(sections["theirs"]),
                marker_size=size,
                ours_label=ours_label,
                base_label=labels["base"],
                theirs_label=labels["theirs"],
            )
        )
        i += 1
    return hunks


def render_conflict(
    ours: str,
    base: str | None,
    theirs: str,
    marker_size: int = DEFAULT_MARKER_SIZE,
    labels: tuple[str, str, str] = ("ours", "base", "theirs"),
    eol: str = "\n",
) -> str:
    """Conflict block text, git style (``base`` None: two-way markers)."""

    def section(s: str) -> str:
        return s if not s or s.endswith("\n") else s + eol

    def mark(ch: str, label: str) -> str:
        return ch * marker_size + (" " + label if label else "") + eol

    out = mark("<", labels[0]) + section(ours)
    if base is not None:
        out += mark("|", labels[1]) + section(base)
    out += "=" * marker_size + eol + section(theirs) + mark(">", labels[2])
    return out


# --------------------------------------------------------------------------- bases


def decode_source(data: bytes, path: str | os.PathLike[str] | None = None) -> str:
    """Strict UTF-8 decode (a BOM is kept as U+FEFF so the bytes round-trip)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"{path}: " if path is not None else ""
        raise ConflictError(
            f"{where}not valid UTF-8 (byte {exc.start}); refusing to resolve or write it"
        ) from exc


def _git(args: Sequence[str], cwd: str) -> bytes | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_index_base(path: str | os.PathLike[str]) -> tuple[str, str, str] | None:
    """(base, ours, theirs) texts from git's index stages 1-3 for an unmerged ``path``, else None.

    A missing stage 1 (both sides added the file) gives an empty base.
    """
    p = Path(path).resolve()
    cwd = str(p.parent)
    listing = _git(["ls-files", "-u", "-z", "--", p.name], cwd)
    if not listing:
        return None
    stages: set[str] = set()
    for entry in listing.split(b"\0"):
        if entry:
            meta = entry.split(b"\t", 1)[0].split()
            if len(meta) == 3:
                stages.add(meta[2].decode())
    if not {"2", "3"} <= stages:
        return None
    texts = []
    for st in ("1", "2", "3"):
        if st not in stages:
            texts.append("")
            continue
        blob = _git(["show", f":{st}:./{p.name}"], cwd)
        if blob is None:
            return None
        try:
            texts.append(blob.decode("utf-8"))
        except UnicodeDecodeError:
            return None
    return texts[0], texts[1], texts[2]


def _locate(needle: Sequence[str], hay: Sequence[str], expected: int) -> int | None:
    """Start index of ``needle`` (non-empty) in ``hay``; the occurrence closest to ``expected``."""
    k = len(needle)
    best: int | None = None
    for s in range(len(hay) - k + 1):
        if hay[s] == needle[0] and list(hay[s : s + k]) == list(needle):
            if best is None or abs(s - expected) < abs(best - expected):
                best = s
    return best


def _base_region(
    side_lines: Sequence[str], side_file: Sequence[str], base_file: Sequence[str], expected: int
) -> tuple[int, int] | None:
    """Base line range that diff3 would pair with ``side_lines`` located in ``side_file``."""
    if not side_lines:
        return None
    s = _locate(side_lines, side_file, expected)
    if s is None:
        return None
    e = s + len(side_lines)
    lo, hi = 0, len(base_file)
    for bi, si in diff_matches(base_file, side_file):
        if si < s:
            lo = bi + 1
        elif si >= e:
            hi = bi
            break
    return (lo, hi) if lo <= hi else None


def _nl(s: str) -> str:
    return s.replace("\r\n", "\n")


def base_from_stages(
    hunk: ConflictHunk, stages: tuple[str, str, str], expected_line: int
) -> str | None:
    """The base text of a two-way ``hunk`` from the three index stages, when it can be located."""
    base_f, ours_f, theirs_f = (split_lines(_nl(s)) for s in stages)
    ours_l, theirs_l = split_lines(_nl(hunk.ours)), split_lines(_nl(hunk.theirs))
    regions = [
        r
        for r in (
            _base_region(ours_l, ours_f, base_f, expected_line),
            _base_region(theirs_l, theirs_f, base_f, expected_line),
        )
        if r is not None
    ]
    if not regions:
        return None
    lo = min(r[0] for r in regions)
    hi = max(r[1] for r in regions)
    base = "".join(base_f[lo:hi])
    if "\r\n" in hunk.ours or "\r\n" in hunk.theirs:
        base = base.replace("\n", "\r\n")
    return base


def pseudo_base(ours: str, theirs: str) -> str:
    """Two-way fallback: the tokens both sides share (their LCS) stand in for the base."""
    ta, tb = tokenize(ours), tokenize(theirs)
    return "".join(ta[i] for i, _ in diff_matches(ta, tb))


# --------------------------------------------------------------------------- resolving


def _last_lines(text: str, k: int) -> str:
    return "".join(split_lines(text)[-k:]) if k else ""


def _first_lines(text: str, k: int) -> str:
    return "".join(split_lines(text)[:k]) if k else ""


def _parses(text: str) -> bool:
    return ast_parses(text[1:] if text.startswith("\ufeff") else text)


_SPLIT = "\0holefill-split\0"
# Two-way blocks whose base is unknown (no diff3 section, no git index): the sides' common tokens
# stand in for the base.  Measured on the dev repositories this is right only 34-51% of the time
# even at p >= 0.95 (vs 89% with a base), so by default such blocks are never resolved; an
# explicit min_confidence (CLI --min-confidence, LSP code actions) still offers the candidates.
TWO_WAY_MIN = 1.01
MAX_PARSE_FAILURES = 6


def _first_valid(
    ranked: Sequence[ScoredCandidate],
    assemble: Callable[[str], str],
    ours: str,
    theirs: str,
) -> ScoredCandidate | None:
    """The most confident candidate that keeps the file syntactically valid (see module doc)."""
    whole_ok = _parses(assemble(ours)) or _parses(assemble(theirs))
    ref_err: int | None = None
    failures = 0
    for cand in ranked:
        full = assemble(cand.text)
        if whole_ok:
            ok = _parses(full)
        else:
            if ref_err is None:
                ref_err = min(ts_error_count(assemble(ours)), ts_error_count(assemble(theirs)))
            ok = ts_error_count(full) <= ref_err
        if ok:
            return cand
        failures += 1
        if failures >= MAX_PARSE_FAILURES:
            return None
    return None


def resolve_text(
    text: str,
    path: str | os.PathLike[str] | None = None,
    min_confidence: float | None = None,
    marker_size: int | None = None,
    classifier: MergeClassifier | None = None,
    stages: tuple[str, str, str] | None = None,
    use_git: bool = True,
    only: Callable[[int], bool] | None = None,
    hunks: Sequence[ConflictHunk] | None = None,
    pipeline: Sequence[str] = PIPELINE,
) -> FileResolution:
    """Resolve the conflict blocks of ``text``.

    ``min_confidence`` None uses the classifier's shipped threshold.  Two-way blocks take their
    base from ``stages`` (base, ours, theirs texts) or, when ``use_git`` and ``path`` is in a git
    repository with an unmerged index, from git's index stages; else from the two sides only.
    ``only(i)`` limits resolving to some hunks (the others are kept as they are).  ``hunks``: the
    blocks when the caller already knows them (the merge driver), else they are parsed from text.
    ``pipeline``: the stages to run, in order (``("classifier",)`` is the resolver before the
    structured stage existed).
    """
    unknown = set(pipeline) - set(PIPELINE)
    if unknown:
        raise ValueError(f"unknown resolver stage(s): {sorted(unknown)}")
    if hunks is None:
        hunks = parse_conflicts(text, marker_size)
    if not hunks:
        return FileResolution(text, ())
    profile = profile_for_path(None if path is None else str(path))
    clf = classifier or load_default()
    threshold = clf.threshold if min_confidence is None else float(min_confidence)
    structured_threshold = (
        max(clf.threshold, STRUCTURED_MIN_CONFIDENCE)
        if min_confidence is None
        else float(min_confidence)
    )
    if stages is None and use_git and path is not None and any(h.base is None for h in hunks):
        stages = git_index_base(path)

    # Pieces outside hunks, verbatim.
    outside = [text[: hunks[0].start]]
    for a, b in zip(hunks, hunks[1:], strict=False):
        outside.append(text[a.end : b.start])
    outside.append(text[hunks[-1].end :])

    chosen: list[str | None] = [None] * len(hunks)

    def assemble(i: int, candidate: str) -> str:
        """The file with ``candidate`` for hunk i, chosen texts or the ours side elsewhere."""
        parts = [outside[0]]
        for j, h in enumerate(hunks):
            if j == i:
                parts.append(candidate)
            elif chosen[j] is not None:
                parts.append(chosen[j])  # type: ignore[arg-type]
            else:
                parts.append(h.ours)
            parts.append(outside[j + 1])
        return "".join(parts)

    results: list[HunkResult] = []
    for i, h in enumerate(hunks):
        if only is not None and not only(i):
            results.append(HunkResult(h, "abstained", None, None, None, "not requested"))
            continue
        base = h.base
        source = "markers"
        if base is None:
            expected = h.start_line - sum(
                (x.end_line - x.start_line + 1) - len(split_lines(x.ours)) for x in hunks[:i]
            )
            if stages is not None:
                base = base_from_stages(h, stages, expected)
                source = "git-index" if base is not None else source
            if base is None:
                base = pseudo_base(h.ours, h.theirs)
                source = "two-way"
        hunk = Hunk(h.ours, base, h.theirs)
        before, after = assemble(i, _SPLIT).split(_SPLIT, 1)
        structured_ms: float | None = None
        structured_reason = ""
        structured: ScoredCandidate | None = None  # a structured merge that passed its gate
        sites: tuple[tuple[str, str], ...] = ()
        # A pseudo-base (two-way markers, no index) is not what the sides were edited from, so
        # the structured stage would see invented deletions: it only runs with a real base.
        if "structured" in pipeline and source != "two-way":
            t0 = time.perf_counter()
            merged = merge_hunk(before, base, h.ours, h.theirs, after, profile)
            structured_ms = (time.perf_counter() - t0) * 1000.0
            if merged.text is not None:
                cand = ScoredCandidate(merged.rule or "structured", merged.text, merged.confidence)
                if merged.confidence < structured_threshold:
                    structured_reason = (
                        f"structured ({cand.pattern}): confidence {merged.confidence:.2f} < "
                        f"{structured_threshold:.2f}"
                    )
                elif _first_valid([cand], lambda t, i=i: assemble(i, t), h.ours, h.theirs):
                    structured, sites = cand, merged.sites
                else:
                    structured_reason = "structured: the merge does not parse"
            else:
                structured_reason = f"structured: {merged.reason}"
        if "classifier" not in pipeline:
            if structured is not None:
                chosen[i] = structured.text
            results.append(
                HunkResult(
                    h,
                    "resolved" if structured is not None else "abstained",
                    structured.pattern if structured is not None else None,
                    structured.confidence if structured is not None else None,
                    structured.text if structured is not None else None,
                    structured_reason,
                    source,
                    (),
                    "structured" if structured is not None else None,
                    structured_ms,
                    sites,
                )
            )
            continue
        feats = featurize(
            hunk,
            _last_lines(before, CONTEXT_LINES),
            _first_lines(after, CONTEXT_LINES),
            token_merge(hunk.base, hunk.ours, hunk.theirs),
        )
        ranked = clf.rank(feats)
        eff_threshold = threshold
        if source == "two-way" and min_confidence is None:
            eff_threshold = max(threshold, TWO_WAY_MIN)
        best = _first_valid(
            ranked,
            lambda t, i=i: assemble(i, t),  # type: ignore[misc]
            h.ours,
            h.theirs,
        )
        alternatives = tuple(ranked[:3])
        if structured is not None and not (
            # The stages compete: a classifier more confident in a different text wins.
            best is not None
            and best.confidence >= eff_threshold
            and best.confidence > structured.confidence
            and normalize(best.text) != normalize(structured.text)
        ):
            chosen[i] = structured.text
            results.append(
                HunkResult(
                    h,
                    "resolved",
                    structured.pattern,
                    structured.confidence,
                    structured.text,
                    "",
                    source,
                    alternatives,
                    "structured",
                    structured_ms,
                    sites,
                )
            )
            continue
        if structured is not None:
            structured_reason = (
                f"structured ({structured.pattern}, p={structured.confidence:.2f}) lost to the "
                "classifier"
            )
        prefix = f"{structured_reason}; classifier: " if structured_reason else ""
        if best is None:
            decision = HunkResult(
                h,
                "abstained",
                None,
                None,
                None,
                prefix + "no candidate parses",
                source,
                alternatives,
                structured_ms=structured_ms,
            )
        elif best.confidence >= eff_threshold:
            chosen[i] = best.text
            decision = HunkResult(
                h,
                "resolved",
                best.pattern,
                best.confidence,
                best.text,
                prefix.removesuffix("; classifier: "),
                source,
                alternatives,
                "classifier",
                structured_ms,
            )
        else:
            reason = f"confidence {best.confidence:.2f} < {eff_threshold:.2f}"
            decision = HunkResult(
                h,
                "abstained",
                best.pattern,
                best.confidence,
                best.text,
                prefix + reason,
                source,
                alternatives,
                structured_ms=structured_ms,
            )
        results.append(decision)

    parts = [outside[0]]
    for j, h in enumerate(hunks):
        parts.append(chosen[j] if chosen[j] is not None else text[h.start : h.end])
        parts.append(outside[j + 1])
    return FileResolution("".join(parts), tuple(results))


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically, keeping its permission bits (follows symlinks)."""
    real = os.path.realpath(path)
    directory = os.path.dirname(real) or "."
    try:
        mode: int | None = stat.S_IMODE(os.stat(real).st_mode)
    except FileNotFoundError:
        mode = None
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix="." + os.path.basename(real) + ".", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def resolve_file(
    path: str | os.PathLike[str],
    write: bool = False,
    min_confidence: float | None = None,
    marker_size: int | None = None,
    classifier: MergeClassifier | None = None,
    use_git: bool = True,
) -> FileResolution:
    """Resolve ``path``; with ``write`` (and something resolved) replace it atomically.

    Raises ConflictError (nothing written) for non-UTF-8 content or malformed markers.
    """
    data = Path(path).read_bytes()
    text = decode_source(data, path)
    result = resolve_text(text, path, min_confidence, marker_size, classifier, use_git=use_git)
    if write and result.resolved and result.text != text:
        atomic_write(path, result.text.encode("utf-8"))
    return result


def _eol_of(text: str) -> str:
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def is_python_path(path: str | None) -> bool:
    """Python source by name (unknown paths count as Python: the driver is configured per type)."""
    return path is None or path.endswith((".py", ".pyi", ".pyw"))


@dataclass(frozen=True)
class MergeResult:
    """Outcome of a three-way file merge."""

    text: str
    conflicts: int  # conflict blocks left in ``text``
    resolved: int  # line-level conflicts resolved (by the structured stage or the classifier)
    hunks: tuple[HunkResult, ...] = ()


def merge_texts(
    base: str,
    ours: str,
    theirs: str,
    marker_size: int = DEFAULT_MARKER_SIZE,
    path: str | None = None,
    labels: tuple[str, str, str] = ("ours", "base", "theirs"),
    style: str = "diff3",
    min_confidence: float | None = None,
    classifier: MergeClassifier | None = None,
) -> MergeResult:
    """Line-level diff3 of three texts, then resolve each conflict (Python files only).

    Remaining conflicts are written with markers of ``marker_size``: ``style`` "diff3" (with the
    base section) or "merge" (two-way).
    """
    from .diff3 import Conflict, merge_lines

    eol = _eol_of(ours)
    regions = merge_lines(base, ours, theirs)
    pieces: list[str] = []
    hunks: list[ConflictHunk] = []
    offset = line = 0
    for region in regions:
        if isinstance(region, Conflict):
            block = render_conflict(
                region.ours_text, region.base_text, region.theirs_text, marker_size, labels, eol
            )
            nlines = len(split_lines(block))
            hunks.append(
                ConflictHunk(
                    index=len(hunks),
                    start_line=line,
                    end_line=line + nlines - 1,
                    start=offset,
                    end=offset + len(block),
                    ours=_with_eol(region.ours_text, eol),
                    base=_with_eol(region.base_text, eol),
                    theirs=_with_eol(region.theirs_text, eol),
                    marker_size=marker_size,
                    ours_label=labels[0],
                    base_label=labels[1],
                    theirs_label=labels[2],
                )
            )
        else:
            block = region.text
            nlines = len(split_lines(block))
        pieces.append(block)
        offset += len(block)
        line += nlines
    text = "".join(pieces)
    if not hunks:
        return MergeResult(text, 0, 0)
    results: tuple[HunkResult, ...] = ()
    if is_python_path(path):
        res = resolve_text(
            text,
            path=path,
            min_confidence=min_confidence,
            classifier=classifier,
            use_git=False,
            hunks=hunks,
        )
        results = res.hunks
        parts = []
        pos = 0
        for h, r in zip(hunks, res.hunks, strict=True):
            parts.append(text[pos : h.start])
            if r.status == "resolved":
                parts.append(r.text or "")
            elif style == "diff3":
                parts.append(text[h.start : h.end])
            else:
                parts.append(render_conflict(h.ours, None, h.theirs, marker_size, labels, eol))
            pos = h.end
        parts.append(text[pos:])
        text = "".join(parts)
    elif style != "diff3":
        parts, pos = [], 0
        for h in hunks:
            parts.append(text[pos : h.start])
            parts.append(render_conflict(h.ours, None, h.theirs, marker_size, labels, eol))
            pos = h.end
        parts.append(text[pos:])
        text = "".join(parts)
    resolved = sum(r.status == "resolved" for r in results)
    return MergeResult(text, len(hunks) - resolved, resolved, results)


def _with_eol(s: str, eol: str) -> str:
    return s if not s or s.endswith("\n") else s + eol
