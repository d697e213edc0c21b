"""The edits benchmark: git history -> editor edits (no model needed); the FIM walks (code model)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holefill.benchmarks.edits import cases_from_repo, make_case, make_fixture_repo


def words(text: str) -> list[str]:  # a stand-in tokenizer for window sizes
    return text.split()


def apply(old: str, edits: list[tuple[int, int, str]]) -> str:
    for a, b, text in edits:
        old = old[:a] + text + old[b:]
    return old


def test_fixture_history_replays_into_cases_of_every_kind(tmp_path):
    repo = make_fixture_repo(tmp_path / "repo", seed=1, commits_per_file=4)
    cases = cases_from_repo(repo, words, window_tokens=2000, max_commits=100)
    assert len(cases) >= 12
    assert {c.kind for c in cases} >= {"insertion", "deletion", "replacement", "multi-place"}
    for case in cases:
        assert apply(case.old, case.edits) == case.new
        assert 0 <= case.cursor <= len(case.new)
        assert 0 <= case.position <= 1


lines = st.lists(st.sampled_from(["a = 1\n", "b = 2\n", "def f():\n", "    return 3\n", "\n"]),
                 max_size=30)


@settings(max_examples=200, deadline=None)
@given(old=lines, new=lines)
def test_edits_transform_the_window_of_the_old_file_into_the_new(old, new):
    case = make_case("".join(old), "".join(new), words, window_tokens=10_000)
    if "".join(old) == "".join(new):
        assert case is None
    else:
        assert case is not None and apply(case.old, case.edits) == case.new
        # The window is a run of whole lines of the old file; the rest stays as it was.
        old_full, new_full = "".join(old), "".join(new)
        assert any(
            old_full[i:i + len(case.old)] == case.old
            and old_full[:i] + case.new + old_full[i + len(case.old):] == new_full
            for i in range(len(old_full) + 1)
        )


@pytest.mark.slow
def test_fim_walks_keep_the_next_token_of_a_fresh_encode(code_model):
    """The FIM session after typing and line moves against a fresh encode of the same prompt.
    A wrong rotation or a stale segment gives KL of several nats; int4 decode steps against the
    bf16 prefill of the fresh encode differ by ~0.01-0.06."""
    from holefill.benchmarks.edits import fim_walks
    from holefill.completion.engine import CompletionEngine
    from holefill.config import Settings

    engine = CompletionEngine.load(Settings().updated({"model": code_model, "fim": "on",
                                                       "max_prompt_tokens": 512}))
    result = fim_walks(engine, 1, seed=3)
    assert set(result) == {"type", "next_line", "jump_down", "jump_up"}
    for kind, row in result.items():
        assert row["n"] == 1
        assert row["kl_median"] < 0.5, (kind, row)
