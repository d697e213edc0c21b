"""KV sessions through edits: token invariants (property tests with the embedded model's
tokenizer) and cache invariants on a tiny random model with the same vocabulary."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig, LlamaForCausalLM

from holefill.completion.decoder import Decoder
from holefill.kvcache.session import KVSession
from holefill.kvcache.store import SessionStore
from holefill.kvcache.window import window_start

pytestmark = pytest.mark.slow

SOURCE = '''import os


class Store:
    """Keeps values — naïve cache ✓."""

    def __init__(self):
        self.items = {}

    def put(self, key, value):
        self.items[key] = value
        return len(self.items)
'''


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from holefill.completion.model import embedded_model_dir

    path, _ = embedded_model_dir(name="smollm2-135m")
    return AutoTokenizer.from_pretrained(str(path))


@pytest.fixture(scope="module")
def decoder(tok):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    return Decoder(LlamaForCausalLM(config).eval(), "float32")


def make_tokenize(tok):
    def tokenize(text):
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], [e for _, e in enc["offset_mapping"]]

    return tokenize


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def new_session(tok, decoder, mode="pie", capacity=400):
    return KVSession(
        decoder, make_tokenize(tok), capacity_tokens=capacity, scratch_tokens=32, mode=mode
    )


edit_text = st.text(alphabet="ab_ (),:=\n\t  x1é€😀", max_size=12)


@st.composite
def edit_stream(draw):
    length = len(SOURCE)
    edits = []
    for _ in range(draw(st.integers(1, 6))):
        start = draw(st.integers(0, length))
        end = draw(st.integers(start, min(length, start + 20)))
        text = draw(edit_text)
        edits.append((start, end, text))
        length += len(text) - (end - start)
    return edits


@settings(max_examples=80, deadline=None)
@given(edits=edit_stream())
def test_tokens_equal_the_tokenisation_of_the_document_after_every_edit(tok, decoder, edits):
    session = new_session(tok, decoder)
    session.reset(SOURCE, len(SOURCE))
    session.sync(len(session.tokens))
    doc = SOURCE
    for start, end, text in edits:
        doc = doc[:start] + text + doc[end:]
        session.apply_edit(start, end, text)
        assert session.doc == doc
        assert session.tokens == ids(tok, doc[session.start : session.end])
        assert session.encoded <= len(session.tokens)
        assert all(0 <= a < b <= session.encoded for a, b in session.dirty)


@pytest.mark.parametrize("doc", ["", "x", "é😀"])
def test_empty_and_tiny_documents(tok, decoder, doc):
    session = new_session(tok, decoder)
    session.reset(doc, len(doc))
    session.apply_edit(0, 0, "def f():\n")
    session.apply_edit(len(session.doc), len(session.doc), "    return 1\n")
    assert session.tokens == ids(tok, "def f():\n" + doc + "    return 1\n")


def cache_of(session):
    n = session.encoded
    return session.cache.k[:, :, :n].clone(), session.cache.v[:, :, :n].clone()


def fresh_cache(tok, decoder, doc):
    fresh = new_session(tok, decoder)
    fresh.reset(doc, len(doc))
    fresh.sync(len(fresh.tokens))
    return cache_of(fresh)


@pytest.mark.parametrize("mode", ["full", "prefix"])
@settings(max_examples=15, deadline=None)
@given(edits=edit_stream())
def test_exact_modes_equal_a_fresh_encode(tok, decoder, mode, edits):
    session = new_session(tok, decoder, mode)
    session.reset(SOURCE, len(SOURCE))
    session.sync(len(session.tokens))
    for start, end, text in edits:
        session.apply_edit(start, end, text)
    session.sync(len(session.tokens))
    k, v = cache_of(session)
    fk, fv = fresh_cache(tok, decoder, session.doc)
    assert k.shape == fk.shape
    assert (k - fk).abs().max().item() < 1e-4 and (v - fv).abs().max().item() < 1e-4


@settings(max_examples=25, deadline=None)
@given(edits=edit_stream())
def test_pie_cache_has_every_token_at_its_position(tok, decoder, edits):
    """Layer-0 keys and values depend only on the token and its position: after PIE edits they
    must equal a fresh encode exactly (later layers carry the stale context PIE accepts)."""
    session = new_session(tok, decoder, "pie")
    session.reset(SOURCE, len(SOURCE))
    session.sync(len(session.tokens))
    for start, end, text in edits:
        session.apply_edit(start, end, text)
    session.sync(len(session.tokens))
    assert not session.dirty and session.encoded == len(session.tokens)
    k, v = cache_of(session)
    fk, fv = fresh_cache(tok, decoder, session.doc)
    assert (k[0] - fk[0]).abs().max().item() < 1e-4
    assert (v[0] - fv[0]).abs().max().item() < 1e-5


def test_multi_place_edits_in_one_pass_equal_sequential_single_edits(tok, decoder):
    a = new_session(tok, decoder, "pie")
    b = new_session(tok, decoder, "pie")
    for s in (a, b):
        s.reset(SOURCE, len(SOURCE))
        s.sync(len(s.tokens))
    edits = [(10, 12, "sys"), (60, 60, "# note\n"), (120, 125, "")]
    for start, end, text in edits:  # left to right, each in the coordinates of the result
        a.apply_edit(start, end, text)
    a.sync(len(a.tokens))
    for start, end, text in edits:
        b.apply_edit(start, end, text)
        b.sync(len(b.tokens))
    ka, va = cache_of(a)
    kb, vb = cache_of(b)
    assert a.tokens == b.tokens
    assert (ka - kb).abs().max().item() < 1e-4 and (va - vb).abs().max().item() < 1e-4


def test_pie_edit_moves_the_suffix_and_encodes_only_the_new_tokens(tok, decoder):
    session = new_session(tok, decoder, "pie")
    session.reset(SOURCE, len(SOURCE))
    session.sync(len(session.tokens))
    n = session.encoded
    at = SOURCE.index("def put")
    result = session.apply_edit(at, at, "def size(self):\n        return 0\n\n    ")
    assert result.shifted > 0 and result.dropped == 0
    assert session.encoded == n + result.inserted - result.removed  # cache length n + delta
    session.sync(len(session.tokens))
    assert session.last_sync_tokens == result.inserted


def test_prefix_mode_re_encodes_everything_after_the_edit(tok, decoder):
    session = new_session(tok, decoder, "prefix")
    session.reset(SOURCE, len(SOURCE))
    session.sync(len(session.tokens))
    result = session.apply_edit(5, 7, "sys")
    session.sync(len(session.tokens))
    assert session.last_sync_tokens == len(session.tokens) - result.start


def test_drift_and_refresh(tok, decoder):
    session = new_session(tok, decoder, "pie")
    session.reset(SOURCE, len(SOURCE))
    session.sync(len(session.tokens))
    session.apply_edit(0, 0, "import sys\nimport re\n")
    session.sync(len(session.tokens))
    assert session.drift > 0
    assert session.refresh()
    assert session.drift == 0
    k, v = cache_of(session)
    fk, fv = fresh_cache(tok, decoder, session.doc)
    assert (k - fk).abs().max().item() < 1e-4


def test_refresh_can_be_interrupted_and_resumed(tok, decoder):
    session = new_session(tok, decoder, "pie", capacity=2000)
    doc = SOURCE * 8
    session.reset(doc, len(doc))
    session.sync(len(session.tokens))
    session.apply_edit(0, 0, "# header\n")
    assert not session.refresh(cancelled=lambda: True)
    assert session.refresh()
    assert session.refreshed_upto == session.encoded


def test_window_start_is_stable_while_typing():
    doc = "".join(f"line_{i} = {i}\n" for i in range(2000))
    cursor = len(doc) - 50
    start = window_start(doc, cursor, 3000)
    assert all(window_start(doc, c, 3000) == start for c in range(cursor, cursor + 40))
    assert 1500 <= cursor - start <= 3000 and doc[start - 1] == "\n"
    assert window_start(doc, 100, 3000) == 0


def test_store_evicts_least_recently_used_under_the_budget(tok, decoder):
    sessions = [new_session(tok, decoder, capacity=100) for _ in range(3)]
    store = SessionStore(budget_bytes=2 * sessions[0].nbytes())
    store.put("a", sessions[0])
    store.put("b", sessions[1])
    store.get("a")
    store.put("c", sessions[2])
    assert store.ids() == ["a", "c"]
    store.drop("a")
    assert store.ids() == ["c"]


def test_context_header_is_one_more_edit_at_the_front(tok, decoder):
    session = new_session(tok, decoder, "pie")
    session.reset(SOURCE, len(SOURCE))
    session.sync(len(session.tokens))
    result = session.set_header("# Expected type at the cursor: int\n")
    assert result.shifted > 0 and result.dropped == 0  # the window's cache moved, not dropped
    assert session.tokens == ids(tok, "# Expected type at the cursor: int\n" + SOURCE)
    session.apply_edit(10, 12, "sys")
    session.set_header("")
    assert session.tokens == ids(tok, session.doc)
    session.sync(len(session.tokens))
    k, v = cache_of(session)
    fk, fv = fresh_cache(tok, decoder, session.doc)
    assert (k[0] - fk[0]).abs().max().item() < 1e-4  # every token at its position
    state = session.prompt_at(len(session.doc))
    assert tok.decode(session.tokens[:state.k]) + state.heal == session.doc
