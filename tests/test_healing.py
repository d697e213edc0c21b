"""Token healing with the embedded model's tokenizer (slow: resolves the embedded model)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holefill.completion import healing

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from holefill.completion.model import embedded_model_dir

    path, _ = embedded_model_dir()
    return AutoTokenizer.from_pretrained(str(path))


@pytest.fixture(scope="module")
def vocab(tok):
    return healing.TokenTexts(tok)


def ids_of(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize(
    "prompt, removed",
    [
        ("def f(x):\n        ", "\n        "),  # indentation of a new line is one token
    ],
)
def test_back_off_removes_the_token_the_cursor_is_in(tok, vocab, prompt, removed):
    ids, heal = healing.back_off(ids_of(tok, prompt), vocab)
    assert heal == removed
    assert tok.decode(ids) + heal == prompt


def test_allowed_tokens_respell_the_removed_text(tok, vocab):
    allowed = vocab.allowed("\n        ")
    texts = {vocab.text(int(i)) for i in allowed}
    assert "\n" in texts  # a shorter token that is a prefix
    assert all(t.startswith("\n        ") or "\n        ".startswith(t) for t in texts)
    # The way real code continues: newline + 7 spaces, then " self" is reachable.
    seven = ids_of(tok, "\n        self")[0]
    assert vocab.text(seven) in texts


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcxyz_ ()=:.\n\t'\"0123", min_size=2, max_size=40))
def test_backed_off_prompt_plus_heal_is_the_original_text(tok, vocab, text):
    ids, heal = healing.back_off(ids_of(tok, text), vocab)
    assert tok.decode(ids) + heal == text
    if heal:
        assert len(vocab.allowed(heal)) > 0


def test_nothing_to_heal_in_a_one_token_prompt(tok, vocab):
    ids = ids_of(tok, "x")
    assert healing.back_off(ids, vocab) == (ids, "")
