"""Workspace n-gram tables for superposed decoding: build, update on save, memory cap, tokenizer
tag. Uses the embedded model's real tokenizer (no weights)."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import pytest

from holefill.completion.ngram import NgramTable, TokenizerMismatch, python_files

A = "def area(radius):\n    return 3.14159 * radius * radius\n"
B = "def perimeter(radius):\n    return 2 * 3.14159 * radius\n"
C = "import os\n\n\ndef home():\n    return os.path.expanduser('~')\n"


@pytest.fixture(scope="module")
def tok(embedded_tokenizer):
    return embedded_tokenizer


def counts(tok, texts: list[str], n: int) -> dict:
    """Reference counts for context length n, computed directly."""
    out: dict = {}
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        for i in range(n, len(ids)):
            out.setdefault(tuple(ids[i - n:i]), Counter())[ids[i]] += 1
    return {ctx: dict(c) for ctx, c in out.items()}


def test_counts_and_probabilities_match_a_direct_count(tok):
    table = NgramTable(tok)
    table.update_file("a.py", A)
    table.update_file("b.py", B)
    for n in table.context_lengths:
        assert table.tables[n] == counts(tok, [A, B], n)
    ids = tok(A, add_special_tokens=False)["input_ids"]
    ctx, nxt = ids[:6], ids[6]
    ref = counts(tok, [A, B], 1)[(ctx[-1],)]
    expected_bigram = 0.01 * ref.get(nxt, 0) / sum(ref.values())
    assert table.prob(ctx, nxt) > expected_bigram  # longer contexts add their share
    assert table.probs(ctx, [nxt]) == [pytest.approx(table.prob(ctx, nxt))]
    unseen = tok(" zebra_quux", add_special_tokens=False)["input_ids"][0]
    assert table.prob(ctx, unseen) == 0.0
    assert table.prob([], nxt) == 0.0  # no context: nothing matches (no backoff smoothing)


def test_saving_a_file_replaces_its_counts(tok):
    table = NgramTable(tok)
    table.update_file("a.py", A)
    table.update_file("b.py", B)
    table.update_file("a.py", C)  # the user rewrote a.py and saved
    fresh = NgramTable(tok)
    fresh.update_file("b.py", B)
    fresh.update_file("a.py", C)
    assert table.tables == fresh.tables and table.totals == fresh.totals
    assert table.entries == fresh.entries and table.tokens == fresh.tokens
    table.update_file("a.py", None)  # deleted
    only_b = NgramTable(tok)
    only_b.update_file("b.py", B)
    assert table.tables == only_b.tables and table.entries == only_b.entries


def test_workspace_walk_skips_vcs_virtualenvs_and_huge_files(tok, tmp_path: Path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "geo.py").write_text(A)
    (tmp_path / "pkg" / "notes.txt").write_text(B)
    for skipped in (".git", ".venv", "node_modules", "__pycache__"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "x.py").write_text(C)
    (tmp_path / "big.py").write_text("x = 1\n" * 200_000)
    assert [p.name for p in python_files(tmp_path)] == ["geo.py"]
    table = NgramTable(tok)
    assert table.add_workspace(tmp_path) == 1
    assert table.tables[1] == counts(tok, [A], 1)
    assert table.add_workspace(tmp_path, cancelled=lambda: True) == 0


def test_memory_cap_prunes_long_context_singletons_first_then_refuses(tok, tmp_path: Path):
    source = Path(copy.__file__).read_text(encoding="utf-8")
    full = NgramTable(tok)
    full.update_file("copy.py", source)
    cap = int(full.approx_bytes * 0.7)
    capped = NgramTable(tok, max_bytes=cap)
    assert capped.update_file("copy.py", source)
    assert capped.approx_bytes <= cap
    assert capped.pruned > 0
    # The 6-gram table lost its singletons before the bigram table lost anything.
    assert capped.tables[1] == full.tables[1]
    assert all(c > 1 for row in capped.tables[5].values() for c in row.values())
    tiny = NgramTable(tok, max_bytes=1000)
    assert not tiny.update_file("copy.py", source)
    assert tiny.refused == 1 and tiny.approx_bytes <= 1000
    with pytest.raises(ValueError):
        NgramTable(tok, max_bytes=0)


def test_a_table_refuses_another_tokenizer(tok):
    table = NgramTable(tok)
    table.update_file("a.py", A)
    table.check(tok)  # same tokenizer: fine
    table.check(copy.deepcopy(tok))  # an equal copy has the same hash
    other = copy.deepcopy(tok)
    other.add_tokens(["<holefill_other_vocab>"])
    with pytest.raises(TokenizerMismatch):
        table.check(other)
