"""Line- and token-level diff3 (holefill.merge.diff3)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holefill.merge.diff3 import (
    Clean,
    Conflict,
    diff_matches,
    merge3,
    merge_lines,
    split_lines,
    token_merge,
    tokenize,
)
from holefill.merge.resolver import render_conflict


def _lcs_len(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


@given(st.text())
def test_tokenize_round_trips(text: str) -> None:
    assert "".join(tokenize(text)) == text


@given(st.text(alphabet="ab \t\r\n=#'\"\\x\u00e9\u2028\x0c"))
def test_tokenize_and_split_lines_round_trip_on_awkward_characters(text: str) -> None:
    assert "".join(tokenize(text)) == text
    assert "".join(split_lines(text)) == text
    assert all(line.endswith("\n") for line in split_lines(text)[:-1])


def test_tokens_keep_whitespace_and_newlines() -> None:
    toks = tokenize('def f(a, b="x y"):\r\n    return a**2  # hi\n')
    assert toks[:4] == ["def", " ", "f", "("]
    assert "\r\n" in toks and "    " in toks and "**" in toks and "  " in toks
    assert tokenize("x += 1") == ["x", " ", "+=", " ", "1"]


def test_split_lines_uses_newline_only() -> None:
    assert split_lines("a\r\nb\x0cc\u2028d\ne") == ["a\r\n", "b\x0cc\u2028d\n", "e"]


@settings(max_examples=200)
@given(st.lists(st.sampled_from("abc"), max_size=14), st.lists(st.sampled_from("abc"), max_size=14))
def test_diff_matches_is_a_longest_common_subsequence(a: list[str], b: list[str]) -> None:
    pairs = diff_matches(a, b)
    assert all(a[i] == b[j] for i, j in pairs)
    assert all(p[0] < q[0] and p[1] < q[1] for p, q in zip(pairs, pairs[1:], strict=False))
    assert len(pairs) == _lcs_len(a, b)


def test_diff_matches_falls_back_when_too_different() -> None:
    a = [str(i) for i in range(300)]
    b = [str(i) for i in range(300) if i % 3] + ["x"] * 50
    pairs = diff_matches(a, b, max_d=5)
    assert all(a[i] == b[j] for i, j in pairs) and len(pairs) > 150


def test_merge3_clean_and_conflict() -> None:
    base = ["a\n", "b\n", "c\n", "d\n", "e\n"]
    ours = ["a\n", "B\n", "c\n", "d\n", "e\n"]
    theirs = ["a\n", "b\n", "c\n", "D\n", "e\n"]
    assert merge3(base, ours, theirs) == [Clean(("a\n", "B\n", "c\n", "D\n", "e\n"))]
    theirs2 = ["a\n", "X\n", "c\n", "d\n", "e\n"]
    regions = merge3(base, ours, theirs2)
    assert regions == [
        Clean(("a\n",)),
        Conflict(("B\n",), ("b\n",), ("X\n",)),
        Clean(("c\n", "d\n", "e\n")),
    ]


def test_merge3_identical_changes_and_one_sided_changes_are_clean() -> None:
    base = ["x\n", "y\n"]
    assert merge3(base, ["x\n", "z\n"], ["x\n", "z\n"]) == [Clean(("x\n", "z\n"))]
    assert merge3(base, base, ["q\n"]) == [Clean(("q\n",))]
    assert merge3(base, ["q\n"], base) == [Clean(("q\n",))]
    assert merge3([], ["a\n"], ["b\n"]) == [Conflict(("a\n",), (), ("b\n",))]


@given(
    st.lists(st.sampled_from(["a\n", "b\n", "c\n"]), max_size=8),
    st.lists(st.sampled_from(["a\n", "b\n", "d\n"]), max_size=8),
)
def test_merge3_with_unchanged_side_takes_the_other(base: list[str], other: list[str]) -> None:
    assert "".join(r.text for r in merge3(base, base, other)) == "".join(other)  # type: ignore[union-attr]
    assert "".join(r.text for r in merge3(base, other, base)) == "".join(other)  # type: ignore[union-attr]


def test_token_merge_of_a_line_conflict() -> None:
    base = "def f(a, b):\n    return g(a, b)\n"
    ours = "def f(a, b):\n    return g(a, c)\n"
    theirs = "def f(a, b):\n    return h(a, b)\n"
    assert merge_lines(base, ours, theirs)[1:] == [
        Conflict(("    return g(a, c)\n",), ("    return g(a, b)\n",), ("    return h(a, b)\n",))
    ]
    tm = token_merge("    return g(a, b)\n", "    return g(a, c)\n", "    return h(a, b)\n")
    assert tm.clean and tm.text == "    return h(a, c)\n"


def test_token_merge_keeps_crlf() -> None:
    tm = token_merge(
        "x = f(a, b)\r\ny = 1\r\n", "x = f(a, c)\r\ny = 1\r\n", "x = g(a, b)\r\ny = 2\r\n"
    )
    assert tm.clean and tm.text == "x = g(a, c)\r\ny = 2\r\n"


def test_paper_figure_one_pattern() -> None:
    """MergeBERT Fig. 1, in Python: a keyword added on one side, arguments changed on both."""
    base = "def f(a, b):\n"
    ours = "async def f(a, b, c):\n"
    theirs = "def f(a, b, d):\n"
    tm = token_merge(base, ours, theirs)
    assert not tm.clean
    (conflict,) = tm.conflicts
    assert conflict.ours_text.strip(", ") == "c" and conflict.theirs_text.strip(", ") == "d"
    assert tm.regions[0] == Clean(("async", " ", "def", " ", "f", "(", "a", ",", " ", "b"))


@settings(max_examples=100)
@given(
    st.lists(st.sampled_from(["x", " ", "=", "1", "\n", "y", "(", ")"]), max_size=12),
    st.lists(st.sampled_from(["x", " ", "=", "2", "\n", "z", "(", ")"]), max_size=12),
    st.lists(st.sampled_from(["x", " ", "=", "3", "\n", "w", "(", ")"]), max_size=12),
)
def test_token_merge_uses_only_side_tokens(o: list[str], a: list[str], b: list[str]) -> None:
    base, ours, theirs = "".join(o), "".join(a), "".join(b)
    tm = token_merge(base, ours, theirs)
    side_tokens = set(tokenize(base)) | set(tokenize(ours)) | set(tokenize(theirs))
    for region in tm.regions:
        items = region.items if isinstance(region, Clean) else region.ours + region.theirs
        assert set(items) <= side_tokens
    if ours == base:
        assert tm.clean and tm.text == theirs
    if theirs == base:
        assert tm.clean and tm.text == ours


GOLDEN = [
    (
        "a\nb\nc\nd\ne\nf\n",
        "a\nB\nc\nd\ne\nF\n",
        "a\nb2\nc\nd\ne\nf\n",
    ),
    (
        "import os\nimport sys\n\n\ndef f():\n    return 1\n",
        "import os\nimport re\nimport sys\n\n\ndef f():\n    return 2\n",
        "import os\nimport json\nimport sys\n\n\ndef f():\n    return 1\n",
    ),
    (
        "x = 1\ny = 2\nz = 3\n",
        "x = 1\nz = 3\n",
        "x = 1\ny = 20\nz = 3\n",
    ),
    ("", "a\n", "b\n"),
    ("one\ntwo\n", "one\ntwo\nthree\n", "zero\none\ntwo\n"),
]


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
@pytest.mark.parametrize("base,ours,theirs", GOLDEN)
def test_line_level_merge_matches_git_merge_file(
    tmp_path: Path, base: str, ours: str, theirs: str
) -> None:
    for name, text in (("base", base), ("ours", ours), ("theirs", theirs)):
        (tmp_path / name).write_text(text)
    proc = subprocess.run(
        ["git", "merge-file", "-p", "--diff3", "-L", "ours", "-L", "base", "-L", "theirs",
         "ours", "base", "theirs"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    mine = "".join(
        r.text if isinstance(r, Clean) else render_conflict(r.ours_text, r.base_text, r.theirs_text)
        for r in merge_lines(base, ours, theirs)
    )
    assert mine == proc.stdout
