"""Primitive patterns and candidate generation (holefill.merge.patterns)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holefill.merge.diff3 import token_merge, tokenize
from holefill.merge.patterns import (
    ALL_PATTERNS,
    PRIMITIVES,
    Hunk,
    apply_primitive,
    candidate_texts,
    candidates,
    minus_base,
    normalize,
)

DATA = Path(__file__).resolve().parents[2] / "shared/data/merge/conflicts_train.jsonl"

# Toy triple: a = "x y", o = "y", b = "y z" (tokens).
OURS_T, BASE_T, THEIRS_T = ["x", "y"], ["y"], ["y", "z"]


@pytest.mark.parametrize(
    "pattern,expected",
    [
        ("OURS", ["x", "y"]),
        ("THEIRS", ["y", "z"]),
        ("BASE", ["y"]),
        ("OURS_THEN_THEIRS", ["x", "y", "y", "z"]),
        ("THEIRS_THEN_OURS", ["y", "z", "x", "y"]),
        ("OURS_MINUS_BASE", ["x"]),
        ("THEIRS_MINUS_BASE", ["z"]),
        ("OURS_THEN_THEIRS_MINUS_BASE", ["x", "y", "z"]),
        ("THEIRS_THEN_OURS_MINUS_BASE", ["z", "x", "y"]),
        ("EMPTY", []),
    ],
)
def test_all_primitives_on_a_toy_triple(pattern: str, expected: list[str]) -> None:
    assert apply_primitive(pattern, OURS_T, BASE_T, THEIRS_T) == expected


def test_minus_base_is_by_alignment_multiset() -> None:
    # Only as many "y" as the base has are removed, the first aligned ones.
    assert minus_base(["y", "a", "y"], ["y"]) == ["a", "y"]
    assert minus_base(["a", "b"], []) == ["a", "b"]
    assert minus_base([], ["a"]) == []
    with pytest.raises(ValueError):
        apply_primitive("NOPE", OURS_T, BASE_T, THEIRS_T)


def test_candidates_of_a_clean_token_merge() -> None:
    hunk = Hunk("    return g(a, c)\n", "    return g(a, b)\n", "    return h(a, b)\n")
    cands = candidates(hunk)
    assert cands[0].pattern == "TOKEN_MERGE" and cands[0].text == "    return h(a, c)\n"
    patterns = [c.pattern for c in cands]
    assert "OURS" in patterns and "THEIRS" in patterns and "EMPTY" in patterns
    assert not any(p.startswith("TOKEN_") and p != "TOKEN_MERGE" for p in patterns)
    texts = [c.text for c in cands]
    assert len(texts) == len(set(texts))  # de-duplicated


def test_candidates_of_a_token_conflict() -> None:
    hunk = Hunk("async def f(a, b, c):\n", "def f(a, b):\n", "def f(a, b, d):\n")
    texts = candidate_texts(hunk)
    assert "TOKEN_MERGE" not in texts
    assert texts["TOKEN_OURS_THEN_THEIRS"] == "async def f(a, b, c, d):\n"
    assert texts["TOKEN_THEIRS"] == "async def f(a, b, d):\n"
    assert texts["OURS_THEN_THEIRS"] == "async def f(a, b, c):\ndef f(a, b, d):\n"
    assert set(texts) <= set(ALL_PATTERNS)


def test_line_concatenation_adds_a_missing_final_newline() -> None:
    texts = candidate_texts(Hunk("a = 1", "", "b = 2\r\n"))
    assert texts["OURS_THEN_THEIRS"] == "a = 1\nb = 2\r\n"
    assert texts["OURS"] == "a = 1"


_LINES = ["x = 1\n", "y = 2\n", "import os\n", "\n", "    pass\n", "z = f(x, y)\n", "# c\n"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(_LINES), max_size=5),
    st.lists(st.sampled_from(_LINES), max_size=5),
    st.lists(st.sampled_from(_LINES), max_size=5),
)
def test_candidates_invent_no_tokens(o: list[str], a: list[str], b: list[str]) -> None:
    hunk = Hunk("".join(a), "".join(o), "".join(b))
    allowed = Counter(tokenize(hunk.ours)) + Counter(tokenize(hunk.base))
    allowed += Counter(tokenize(hunk.theirs))
    for cand in candidates(hunk):
        assert set(tokenize(cand.text)) <= set(allowed) | {"\n"}


def _records(k: int) -> list[dict]:
    if not DATA.exists():
        pytest.skip("shared merge data not available")
    with DATA.open(encoding="utf-8") as f:
        recs = [json.loads(line) for line in f]
    random.Random(0).shuffle(recs)
    return recs[:k]


def test_data_labels_agree_with_line_patterns() -> None:
    """The data's line-level labels are reproduced by our patterns (label round trip)."""
    agree = total = 0
    for rec in _records(400):
        if rec["label"] not in PRIMITIVES:
            continue
        total += 1
        texts = candidate_texts(Hunk(rec["ours"], rec["base"], rec["theirs"]))
        agree += normalize(texts[rec["label"]]) == normalize(rec["resolution"])
    assert total > 150
    assert agree / total > 0.97


def test_token_merge_expresses_many_other_hunks() -> None:
    """Many OTHER hunks (no line-level label) are token-level merges of both sides."""
    hits = n = 0
    for rec in _records(600):
        if rec["label"] != "OTHER":
            continue
        n += 1
        tm = token_merge(rec["base"], rec["ours"], rec["theirs"])
        hits += tm.clean and normalize(tm.text or "") == normalize(rec["resolution"])
    assert n > 100 and hits / n > 0.25
