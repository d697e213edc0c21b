"""Resolving files with conflict markers (holefill.merge.resolver, .lsp, .cli resolve)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holefill.merge import lsp
from holefill.merge.cli import main
from holefill.merge.diff3 import tokenize
from holefill.merge.resolver import (
    ConflictError,
    parse_conflicts,
    render_conflict,
    resolve_file,
    resolve_text,
)

RESOLVABLE = "import os\n\n\ndef load(path, mode):\n    return open(path, mode)\n\n\nx = 1\n"


def block(ours: str, base: str | None, theirs: str, size: int = 7, eol: str = "\n") -> str:
    return render_conflict(ours, base, theirs, size, ("HEAD", "base", "feature"), eol)


DIFF3_FILE = (
    "import os\n\n\n"
    + block(
        "def load_file(path, mode):\n",
        "def load(path, mode):\n",
        "def load(path, mode, encoding=None):\n",
    )
    + "    return open(path, mode)\n\n\n"
    + block(
        "def f():\n    x = compute()\n    return x + 1\n",
        "def f():\n    return 1\n",
        "def f():\n    log('f')\n    y = other()\n    return y * 2\n",
    )
    + "\nprint(1)\n"
)


# --------------------------------------------------------------------------- parsing


def test_parse_diff3_and_two_way_blocks() -> None:
    hunks = parse_conflicts(DIFF3_FILE)
    assert len(hunks) == 2
    h = hunks[0]
    assert (h.start_line, h.end_line) == (3, 9)
    assert h.ours == "def load_file(path, mode):\n" and h.base == "def load(path, mode):\n"
    assert (h.ours_label, h.base_label, h.theirs_label) == ("HEAD", "base", "feature")
    assert DIFF3_FILE[h.start : h.end].startswith("<<<<<<< HEAD\n")
    assert DIFF3_FILE[h.start : h.end].endswith(">>>>>>> feature\n")
    two = parse_conflicts("a\n" + block("x\n", None, "y\n") + "b\n")
    assert two[0].base is None and two[0].ours == "x\n" and two[0].theirs == "y\n"


def test_marker_size_detected_and_given() -> None:
    text = "a\n" + block("x = 1\n", "x = 0\n", "x = 2\n", size=9) + "=======\n"
    (h,) = parse_conflicts(text)
    assert h.marker_size == 9 and h.ours == "x = 1\n"
    (h,) = parse_conflicts(text, marker_size=9)
    assert h.base == "x = 0\n"
    with pytest.raises(ConflictError, match="size 9"):
        parse_conflicts(text, marker_size=7)


@pytest.mark.parametrize(
    "text,message",
    [
        ("<<<<<<< a\nx\n=======\ny\n", "not closed"),
        ("<<<<<<< a\nx\n<<<<<<< b\ny\n=======\nz\n>>>>>>> c\n", "nested"),
        ("<<<<<<< a\nx\n>>>>>>> b\n", "before the"),
        ("x\n>>>>>>> b\n", "outside a conflict"),
        ("x\n||||||| b\n", "outside a conflict"),
        ("<<<<<<< a\nx\n=======\ny\n>>>>>>>> b\n", "not closed"),
        ("<<<<<<< a\nx\n=======\ny\n=======\nz\n>>>>>>> b\n", "ambiguous"),
        ("<<<<<<< a\nx\n=======\ny\n>>>>>>> b\n<<<<<<<<< c\n", "size 9"),
    ],
)
def test_malformed_markers_raise_and_nothing_is_written(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConflictError, match=message):
        parse_conflicts(text)
    f = tmp_path / "bad.py"
    f.write_text(text)
    before = f.stat().st_mtime_ns
    with pytest.raises(ConflictError):
        resolve_file(f, write=True, min_confidence=0.0)
    assert f.read_text() == text and f.stat().st_mtime_ns == before


def test_rst_underlines_outside_blocks_are_content() -> None:
    text = '"""\nTitle\n=======\n\nSection\n==========\n"""\n'
    assert parse_conflicts(text) == []
    assert resolve_text(text).text == text


# --------------------------------------------------------------------------- resolving


@pytest.mark.parametrize(
    "pipeline,stage,pattern",
    [
        (("classifier",), "classifier", "TOKEN_MERGE"),
        # The name (ours) and the parameters (theirs) are different nodes of the def.
        (("structured", "classifier"), "structured", "disjoint-edits"),
    ],
)
def test_resolves_the_confident_hunk_and_keeps_the_other_byte_for_byte(
    pipeline: tuple[str, ...], stage: str, pattern: str
) -> None:
    res = resolve_text(DIFF3_FILE, min_confidence=0.5, use_git=False, pipeline=pipeline)
    first, second = res.hunks
    assert first.status == "resolved" and first.pattern == pattern and first.stage == stage
    assert first.text == "def load_file(path, mode, encoding=None):\n"
    assert second.status == "abstained"
    h2 = parse_conflicts(DIFF3_FILE)[1]
    assert DIFF3_FILE[h2.start : h2.end] in res.text
    assert res.text.startswith("import os\n\n\ndef load_file(path, mode, encoding=None):\n")
    assert res.text.endswith("\nprint(1)\n")


def test_nothing_resolved_above_certainty() -> None:
    # The threshold is the classifier's; the structured stage is not confidence-based.
    res = resolve_text(DIFF3_FILE, min_confidence=1.01, use_git=False, pipeline=("classifier",))
    assert res.text == DIFF3_FILE and res.resolved == 0 and res.remaining == 2
    assert all(h.reason.startswith("confidence") for h in res.hunks)


def test_candidate_that_breaks_the_file_is_rejected() -> None:
    # Only OURS parses here: the other side leaves an unclosed bracket.
    text = "x = [\n    1,\n" + block("]\n", "    2,\n]\n", "    2,\n    3,\n") + "y = 1\n"
    res = resolve_text(text, min_confidence=0.0, use_git=False)
    (h,) = res.hunks
    assert h.status == "resolved"
    compile_ok = True
    try:
        compile(res.text, "<t>", "exec", dont_inherit=True, flags=0x400)  # PyCF_ONLY_AST
    except SyntaxError:
        compile_ok = False
    assert compile_ok


def test_crlf_file_keeps_crlf() -> None:
    text = DIFF3_FILE.replace("\n", "\r\n")
    res = resolve_text(text, min_confidence=0.5, use_git=False)
    assert res.resolved == 1
    assert res.text.count("\n") == res.text.count("\r\n")
    assert res.text.startswith("import os\r\n\r\n\r\ndef load_file(path, mode, encoding=None):\r\n")


def test_two_way_markers_without_git_use_the_sides_only() -> None:
    text = "import os\n" + block("x = f(a, c)\n", None, "x = g(a)\n") + "y = 2\n"
    res = resolve_text(text, use_git=False)
    (h,) = res.hunks
    assert h.base_source == "two-way"
    assert h.status == "abstained" and res.text == text  # unknown base: never by default
    low = resolve_text(text, min_confidence=0.0, use_git=False)
    assert low.hunks[0].status == "resolved"


def test_file_without_conflicts_is_untouched(tmp_path: Path) -> None:
    f = tmp_path / "clean.py"
    f.write_bytes(b"x = 1\r\ny = '\xc3\xa9'\n")
    before = f.stat()
    res = resolve_file(f, write=True)
    assert res.hunks == () and f.read_bytes() == b"x = 1\r\ny = '\xc3\xa9'\n"
    assert f.stat().st_mtime_ns == before.st_mtime_ns and f.stat().st_ino == before.st_ino


def test_non_utf8_file_gives_a_clear_error_and_no_write(tmp_path: Path) -> None:
    f = tmp_path / "latin1.py"
    data = ("x = 'caf\xe9'\n" + block("a = 1\n", "a = 0\n", "a = 2\n")).encode("latin-1")
    f.write_bytes(data)
    with pytest.raises(ConflictError, match="not valid UTF-8"):
        resolve_file(f, write=True, min_confidence=0.0)
    assert f.read_bytes() == data


def test_write_is_atomic_and_keeps_the_mode(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text(DIFF3_FILE)
    os.chmod(f, 0o640)
    res = resolve_file(f, write=True, min_confidence=0.5, use_git=False)
    assert res.resolved == 1
    assert f.read_text() == res.text
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]


def test_bom_survives(tmp_path: Path) -> None:
    f = tmp_path / "bom.py"
    f.write_bytes(b"\xef\xbb\xbf" + DIFF3_FILE.encode())
    resolve_file(f, write=True, min_confidence=0.5, use_git=False)
    assert f.read_bytes().startswith(b"\xef\xbb\xbfimport os\n")


# --------------------------------------------------------------------------- properties

_POOL = ["x = 1", "y = f(x)", "import os", "z = [1, 2]", "", "# note", "w = x + y", "del x"]


@st.composite
def conflicted_files(draw: st.DrawFn) -> tuple[str, list[tuple[str, str | None]]]:
    """A file of clean chunks and conflict blocks; returns text and the (piece, block) list."""
    size = draw(st.sampled_from([7, 7, 9]))
    with_base = draw(st.booleans())

    def lines(min_size: int = 0) -> str:
        ls = draw(st.lists(st.sampled_from(_POOL), min_size=min_size, max_size=3))
        return "".join(x + draw(st.sampled_from(["\n", "\r\n"])) for x in ls)

    pieces: list[tuple[str, str | None]] = []
    for _ in range(draw(st.integers(1, 3))):
        pieces.append((lines(), None))
        ours, theirs = lines(), lines(1)
        base = lines() if with_base else None
        eol = draw(st.sampled_from(["\n", "\r\n"]))
        pieces.append((block(ours, base, theirs, size, eol), "conflict"))
    pieces.append((lines(), None))
    return "".join(p for p, _ in pieces), pieces


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(conflicted_files(), st.sampled_from([0.0, 0.6, 1.01]))
def test_property_only_hunks_change_and_only_with_side_text(
    data: tuple[str, list[tuple[str, str | None]]], threshold: float
) -> None:
    text, pieces = data
    res = resolve_text(text, min_confidence=threshold, use_git=False)
    blocks = [p for p, kind in pieces if kind]
    assert len(res.hunks) == len(blocks)
    expected: list[str] = []
    k = 0
    for piece, kind in pieces:
        if not kind:
            expected.append(piece)
            continue
        h = res.hunks[k]
        k += 1
        if h.status == "resolved":
            assert h.text is not None
            sides = h.hunk.ours + (h.hunk.base or "") + h.hunk.theirs
            assert set(tokenize(h.text)) <= set(tokenize(sides)) | {"\n", "\r\n"}
            expected.append(h.text)
        else:
            expected.append(piece)
    assert res.text == "".join(expected)
    if threshold > 1:
        assert res.text == text


# --------------------------------------------------------------------------- LSP API


def test_lsp_api() -> None:
    hunks = lsp.conflict_hunks(DIFF3_FILE)
    assert [(h.start_line, h.end_line) for h in hunks] == [(3, 9), (13, 25)]
    edit = lsp.resolve_hunk_edit(DIFF3_FILE, 0)
    assert edit is not None
    new_text, pattern, confidence, stage = edit
    assert new_text == "def load_file(path, mode, encoding=None):\n"
    assert (pattern, stage, confidence) == ("disjoint-edits", "structured", 0.683)
    assert lsp.action_title(pattern, confidence, stage) == (
        "Resolve conflict (structured: disjoint-edits, p=0.68)"
    )
    assert lsp.action_title("TOKEN_MERGE", 0.934) == (
        "Resolve conflict (classifier: TOKEN_MERGE, p=0.93)"
    )
    assert lsp.resolve_hunk_edit(DIFF3_FILE, 5) is None
    sugg = lsp.suggestions(DIFF3_FILE, 1, k=3)
    assert 1 <= len(sugg) <= 3 and len({s.text for s in sugg}) == len(sugg)
    lines = DIFF3_FILE.splitlines(keepends=True)
    h = hunks[0]
    applied = "".join(lines[: h.start_line]) + new_text + "".join(lines[h.end_line + 1 :])
    assert lsp.conflict_hunks(applied)[0].start_line == 7
    everything = lsp.resolve_all(DIFF3_FILE, min_confidence=0.0)
    assert lsp.conflict_hunks(everything) == []


# --------------------------------------------------------------------------- CLI


def test_cli_resolve_json_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "m.py"
    f.write_text(DIFF3_FILE)
    rc = main(["resolve", str(f), "--json", "--min-confidence", "0.5", "--no-git"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1  # one hunk is left
    assert [r["status"] for r in out] == ["resolved", "abstained"]
    assert set(out[0]) >= {"path", "hunk", "status", "stage", "pattern", "confidence", "text"}
    assert (out[0]["stage"], out[1]["stage"]) == ("structured", None)
    assert out[0]["path"] == str(f) and out[0]["hunk"] == 0
    assert f.read_text() == DIFF3_FILE  # no --write
    rc = main(["resolve", str(f), "--write", "--min-confidence", "0.5", "--no-git"])
    text_out = capsys.readouterr().out
    assert "resolved (structured: disjoint-edits, p=0.68)" in text_out and rc == 1
    assert f.read_text().count("<<<<<<<") == 1


def test_cli_resolve_errors_and_clean_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"\xff\xfe<<<<<<<\n")
    ok = tmp_path / "ok.py"
    ok.write_text("x = 1\n")
    assert main(["resolve", str(ok)]) == 0
    assert main(["resolve", str(bad), str(ok)]) == 2
    err = capsys.readouterr().err
    assert "not valid UTF-8" in err
    with pytest.raises(SystemExit):
        main(["resolve", str(ok), "--min-confidence", "2"])
