"""Superposed decoding: weights, greedy equivalence at k = 1, distinct sorted drafts, one forward
per position, n-gram penalty, cache hygiene; on a tiny random-weight Llama (tensor logic) and on
the real embedded model (slow)."""

from __future__ import annotations

import asyncio
import math

import pytest
import torch
from conftest import SMALL_MODEL
from lsprotocol import types
from transformers import LlamaConfig, LlamaForCausalLM

from holefill.completion import superposed
from holefill.completion.engine import CompletionEngine, CompletionRequest
from holefill.completion.model import LoadedModel, ModelInfo
from holefill.completion.ngram import NgramTable, TokenizerMismatch
from holefill.completion.postprocess import analyze_cursor
from holefill.config import Settings
from holefill.context.check import check_suggestion

PROMPT = "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius * rad"
STACK = '''class Stack:
    """A last-in first-out stack."""

    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def pop(self):
        '''


def test_same_last_token_gives_one_hot_weights():
    ids, w = superposed.superpose_weights([7, 7, 7], [-0.1, -2.0, -5.0])
    assert ids.tolist() == [7] and w.tolist() == [1.0]


def test_weights_are_the_softmax_of_cumulative_scores_summed_per_token():
    scores = [-0.5, -1.0, -3.0]
    ids, w = superposed.superpose_weights([4, 9, 4], scores)
    soft = torch.softmax(torch.tensor(scores, dtype=torch.float64), 0)
    assert ids.tolist() == [4, 9]
    assert w[0].item() == pytest.approx((soft[0] + soft[2]).item())
    assert w[1].item() == pytest.approx(soft[1].item())


def test_bad_parameters_are_clear_errors():
    with pytest.raises(ValueError, match="drafts"):
        superposed.SPDParams(k=0)
    with pytest.raises(ValueError, match="n-gram weight"):
        superposed.SPDParams(alpha=1.5)
    assert superposed.SPDParams(k=5, n_token_sample=2).n_token_sample == 5


# -- tiny random-weight Llama with the real tokenizer ---------------------------------------

@pytest.fixture(scope="module")
def tokenizer(embedded_tokenizer):
    return embedded_tokenizer


@pytest.fixture(scope="module")
def tiny(tokenizer) -> CompletionEngine:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=96,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # random init is near-uniform: sharpen so the drafts' scores differ
        model.lm_head.weight.mul_(8.0)
    info = ModelInfo("tiny-llama", "random", "", "LlamaForCausalLM", "cpu", "float32",
                     "transformers", 0.0)
    settings = Settings(dtype="float32", drafts=1, check_suggestions=False, cache_mode="prefix")
    return CompletionEngine(LoadedModel(model, tokenizer, info), settings)


def prefill(engine: CompletionEngine, text: str, heal: bool = True):
    """What CompletionEngine._complete does before decoding: returns the session and the
    arguments of a decode. heal=False feeds the cursor's token too (an unconstrained start)."""
    session = engine.new_session()
    offset = len(text)
    session.reset(text, offset)
    state = session.prompt_at(offset)
    assert state.k > 1 and engine.vocab.allowed(state.heal).numel()
    visible, pending, position = state.k - 1, session.tokens[state.k - 1], state.k - 1
    feed = [pending] if heal else [pending, session.tokens[state.k]]
    assert session.sync(visible)
    hide = session.begin_scratch(visible)
    logits = session.scratch_forward(feed, position, hide)[-1]
    ctx = analyze_cursor(text, offset)
    prompt = session.tokens[:visible] + feed
    return session, dict(logits=logits, position=position + len(feed), hide=hide,
                         heal=state.heal if heal else "", ctx=ctx), prompt


def spd(engine, session, args, k, ngram=None, alpha=0.0, max_new=12, context=None):
    session.cache.length = session.encoded + 1  # back to right after the prefill's first slot
    return superposed.decode(engine, session, args["logits"], args["position"], args["hide"],
                             args["heal"], max_new, args["ctx"], lambda: False,
                             superposed.SPDParams(k=k, alpha=alpha), ngram, context)


def greedy(engine, session, args, max_new=12):
    session.cache.length = session.encoded + 1
    return engine._decode(session, args["logits"], args["position"], args["hide"], args["heal"],
                          max_new, args["ctx"], lambda: False)


def text_of(engine, ids, heal):
    text = engine.tokenizer.decode(ids, skip_special_tokens=True)
    return text[len(heal):] if text.startswith(heal) else text


@pytest.mark.parametrize("heal", [True, False])
def test_k1_without_ngram_is_greedy_token_for_token(tiny, heal):
    session, args, prompt = prefill(tiny, PROMPT, heal=heal)
    text, logprobs, _, _ = greedy(tiny, session, args)
    out = spd(tiny, session, args, k=1)
    assert len(out.drafts) == 1
    draft = out.drafts[0]
    assert text_of(tiny, draft.ids, args["heal"]) == text
    assert draft.logprobs == pytest.approx(logprobs, abs=1e-5)
    if not heal:  # unconstrained: also transformers' own greedy generate
        with torch.inference_mode():
            ref = tiny.hf_model.generate(torch.tensor([prompt]), do_sample=False,
                                         max_new_tokens=len(draft.ids), min_new_tokens=1)
        assert draft.ids == ref[0, len(prompt):].tolist()[: len(draft.ids)]


def test_k_drafts_are_distinct_sorted_and_cost_one_forward_per_position(tiny, monkeypatch):
    session, args, _ = prefill(tiny, PROMPT)
    calls = []
    forward = tiny.decoder.forward

    def counting(*a, **kw):
        calls.append(kw.get("embeds") is not None)
        return forward(*a, **kw)

    monkeypatch.setattr(tiny.decoder, "forward", counting)
    out = spd(tiny, session, args, k=3, max_new=10)
    assert len(out.drafts) == 3
    assert len({tuple(d.ids) for d in out.drafts}) == 3
    scores = [d.score for d in out.drafts]
    assert scores == sorted(scores, reverse=True)
    assert all(math.isfinite(s) for s in scores)
    longest = max(len(d.ids) for d in out.drafts)
    assert len(calls) == out.forwards and all(calls)  # every step: one superposed input
    assert longest - 1 <= out.forwards <= longest
    for d in out.drafts:  # every draft re-spells the characters before the cursor first
        assert engine_text(tiny, d.ids).startswith(args["heal"])


def engine_text(engine, ids):
    return engine.tokenizer.decode(ids, skip_special_tokens=True)


def test_drafts_without_ngram_support_get_the_penalty_not_nan(tiny):
    session, args, prompt = prefill(tiny, PROMPT)
    table = NgramTable(tiny.tokenizer)
    table.update_file("other.py", "while True:\n    pass\n")  # shares no context with PROMPT
    out = spd(tiny, session, args, k=2, ngram=table, alpha=0.54, max_new=4, context=prompt[-5:])
    assert out.drafts
    for d in out.drafts:
        assert math.isfinite(d.score)
        assert d.score <= -superposed.PENALTY * (len(d.ids) - 1)


def test_ngram_support_filters_the_model_candidates(tiny):
    session, args, prompt = prefill(tiny, PROMPT, heal=False)
    plain = spd(tiny, session, args, k=1, max_new=3)
    # A workspace in which the prompt's last tokens are followed by the model's k-th choice
    # (not its first): the n-gram filter must pick that one.
    ranked = torch.topk(args["logits"], 9).indices.tolist()
    context = prompt[-5:]
    for choice in ranked[1:]:
        ws_text = tiny.tokenizer.decode(context + [choice])
        if tiny.tokenizer(ws_text, add_special_tokens=False)["input_ids"] == context + [choice]:
            break
    else:
        pytest.skip("no candidate survives re-tokenisation")
    table = NgramTable(tiny.tokenizer)
    table.update_file("ws.py", ws_text)
    steered = spd(tiny, session, args, k=1, ngram=table, alpha=0.54, max_new=3, context=context)
    assert plain.drafts[0].ids[0] == ranked[0]
    assert steered.drafts[0].ids[0] == choice


def same_cache_as_a_fresh_encode(engine, session, atol=1e-5) -> None:
    assert session.cache.length == session.encoded  # no scratch slot left behind
    n = session.encoded
    fresh = engine.new_session()
    fresh.reset(session.doc, len(session.doc))
    assert fresh.sync(n)
    assert fresh.tokens[:n] == session.tokens[:n]
    assert torch.allclose(session.cache.k[:, :, :n], fresh.cache.k[:, :, :n], atol=atol)
    assert torch.allclose(session.cache.v[:, :, :n], fresh.cache.v[:, :, :n], atol=atol)


def test_scratch_entries_never_leak_into_the_document_cache(tiny):
    tiny.settings = tiny.settings.updated({"drafts": 3})
    try:
        result = tiny.complete(CompletionRequest(text=PROMPT, offset=len(PROMPT), doc_id="d",
                                                   max_new_tokens=8))
        assert not result.cancelled
        same_cache_as_a_fresh_encode(tiny, tiny.store.get("d"))
        # The user accepts a draft: its real tokens reach the cache through the edit, and the
        # next request sees exactly what a fresh encode of the new text gives.
        accepted = result.items[-1].text if result.items else "ius ** 2"
        tiny.edit("d", len(PROMPT), len(PROMPT), accepted)
        doc = PROMPT + accepted + "\n"
        again = tiny.complete(CompletionRequest(text=doc, offset=len(doc), doc_id="d",
                                                  max_new_tokens=8))
        assert not again.cancelled
        same_cache_as_a_fresh_encode(tiny, tiny.store.get("d"))
    finally:
        tiny.settings = tiny.settings.updated({"drafts": 1})


def test_engine_refuses_a_table_of_another_tokenizer(tiny):
    import copy

    other = copy.deepcopy(tiny.tokenizer)
    other.add_tokens(["<holefill_other_vocab>"])
    with pytest.raises(TokenizerMismatch):
        tiny.set_ngrams(NgramTable(other))
    good = NgramTable(tiny.tokenizer)
    tiny.set_ngrams(good)
    assert tiny.ngrams is good
    tiny.set_ngrams(None)


def test_a_bad_drafts_setting_fails_at_engine_load(tiny):
    info = tiny.info
    with pytest.raises(ValueError, match="drafts"):
        CompletionEngine(LoadedModel(tiny.hf_model, tiny.tokenizer, info), Settings(drafts=0))


# -- the real embedded model ----------------------------------------------------------------

@pytest.fixture(scope="module")
def engine() -> CompletionEngine:
    return CompletionEngine.load(Settings(model=SMALL_MODEL, max_new_tokens=24, drafts=3,
                                          ngram=False))


@pytest.mark.slow
def test_real_model_k1_is_greedy_token_for_token(engine):
    session, args, _ = prefill(engine, STACK)
    text, logprobs, _, _ = greedy(engine, session, args, max_new=10)
    out = spd(engine, session, args, k=1, max_new=10)
    assert text_of(engine, out.drafts[0].ids, args["heal"]) == text
    assert out.drafts[0].logprobs == pytest.approx(logprobs, abs=1e-4)
    session.end_scratch()


@pytest.mark.slow
def test_real_model_returns_distinct_checked_drafts_and_a_clean_cache(engine):
    text = "def mean(values):\n    total = sum(values)\n    return "
    result = engine.complete(CompletionRequest(text=text, offset=len(text), doc_id="mean"))
    assert 1 <= len(result.items) <= 3
    texts = [d.text for d in result.items]
    assert len({" ".join(t.split()) for t in texts}) == len(texts)
    scores = [d.score for d in result.items]
    assert scores == sorted(scores, reverse=True)
    for t in texts:
        assert check_suggestion(text, len(text), t, None, None) == []
    # int8 weights take other kernels for long and short chunks: the cache is compared
    # exactly on the float32 tiny model; here, no scratch slot is left behind.
    session = engine.store.get("mean")
    assert session.cache.length == session.encoded


# -- the language server: n-grams from the workspace, every draft an inline item -------------

@pytest.mark.slow
async def test_server_builds_workspace_ngrams_and_sends_every_draft(lsp, tmp_path, engine):
    import shutil
    from pathlib import Path

    from holefill.completion.ngram import NgramTable

    vector = Path(__file__).parent / "data" / "vector.py"
    shutil.copy(vector, tmp_path / "vector.py")
    (tmp_path / "util.py").write_text(A_UTIL)
    # The API context (another technique) is off: the in-process engine below has no API index.
    options = {"drafts": 3, "ngram": True, "maxNewTokens": 16, "apiContext": False,
               "constrainApiNames": False}
    client = await lsp.start(command=lsp.real_server, options=options, root=tmp_path)
    assert (await lsp.wait_model(client, timeout=TIMEOUT)).startswith("ready")
    message = await lsp.wait_until(
        lambda: next((m.message for m in client.log_messages if "n-grams ready" in m.message),
                     None), TIMEOUT, "the workspace n-grams")
    assert "2 files" in message, message
    source = vector.read_text()
    text = source[: source.rindex("return self.") + len("return self.")]
    uri = (tmp_path / "vector.py").as_uri()
    lsp.open(client, uri, text)
    lines = text.split("\n")
    params = types.InlineCompletionParams(
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=len(lines) - 1, character=len(lines[-1])))
    answer = await asyncio.wait_for(client.text_document_inline_completion_async(params), TIMEOUT)
    items = [i.insert_text for i in answer.items]
    # The same request in-process, with a table of the same workspace: the server sends every
    # draft the engine returns, in order.
    table = NgramTable(engine.tokenizer)
    table.add_workspace(tmp_path)
    engine.settings = engine.settings.updated({"ngram": True, "max_new_tokens": 16})
    engine.set_ngrams(table)
    try:
        result = engine.complete(CompletionRequest(
            text=text, offset=len(text), path=str(tmp_path / "vector.py"),
            workspace=str(tmp_path), max_new_tokens=16))
    finally:
        engine.set_ngrams(None)
        engine.settings = engine.settings.updated({"ngram": False, "max_new_tokens": 24})
    assert items == [d.text for d in result.items if d.text.strip()]
    assert 1 <= len(items) <= 3 and len(set(items)) == len(items)


TIMEOUT = 240  # loading and the first prefill on a busy 2-core machine
A_UTIL = "def clamp(value, low, high):\n    return max(low, min(value, high))\n"
