"""Token healing with the embedded model's tokenizer (slow: resolves the embedded model)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holefill.completion import healing
from holefill.kvcache.session import KVSession

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from holefill.completion.model import embedded_model_dir

    path, _ = embedded_model_dir(name="smollm2-135m")
    return AutoTokenizer.from_pretrained(str(path))


@pytest.fixture(scope="module")
def vocab(tok):
    return healing.TokenTexts(tok)


def ids_of(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


class NoModel:  # prompt_at needs tokens only; no cache is written here
    device = "cpu"

    def new_cache(self, capacity):
        return None


def prompt_state(tok, text, cursor):
    def tokenize(t):
        enc = tok(t, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], [e for _, e in enc["offset_mapping"]]

    session = KVSession(NoModel(), tokenize, capacity_tokens=4000, scratch_tokens=0)
    session.reset(text, cursor)
    return session, session.prompt_at(cursor)


@pytest.mark.parametrize("doc, heal", [
    ("def f(x):\n        ", "\n        "),  # indentation of a new line is one token
    ("x = self.ite", "ite"),  # mid-identifier
    ("def f(x):\n    return x +", " +"),  # after an operator
])
def test_prompt_ends_before_the_token_the_cursor_is_in(tok, doc, heal):
    session, state = prompt_state(tok, doc, len(doc))
    assert state.heal == heal
    assert tok.decode(session.tokens[:state.k]) + state.heal == doc


def test_allowed_tokens_respell_the_removed_text(tok, vocab):
    allowed = vocab.allowed("\n        ")
    texts = {vocab.text(int(i)) for i in allowed}
    assert "\n" in texts  # a shorter token that is a prefix
    assert all(t.startswith("\n        ") or "\n        ".startswith(t) for t in texts)
    # The way real code continues: newline + 7 spaces, then " self" is reachable.
    seven = ids_of(tok, "\n        self")[0]
    assert vocab.text(seven) in texts


def test_partial_utf8_tokens_are_never_allowed(tok, vocab):
    assert all("\ufffd" not in vocab.text(int(i)) for i in vocab.allowed("é"))


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet="abcxyz_ ()=:.\n\t'\"0123é€", min_size=1, max_size=40),
       data=st.data())
def test_prompt_plus_heal_is_the_text_before_the_cursor(tok, text, data):
    cursor = data.draw(st.integers(0, len(text)))
    session, state = prompt_state(tok, text, cursor)
    assert tok.decode(session.tokens[:state.k]) + state.heal == text[:cursor]
