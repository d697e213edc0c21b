"""Prompt-lookup drafts (completion/lookup.py) verified by the full model through
early_exit.Stepper: the matcher, output and cache identical to plain greedy (tiny random-weight
models, float32 and int8), and the embedded model end to end. The row-exact verify pass itself
is tested in test_early_exit.py."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from holefill.completion.decoder import Decoder
from holefill.completion.early_exit import ExitHeads, Stepper
from holefill.completion.lookup import PromptLookup

N_LAYERS = 3


def tiny_model(vocab: int = 40):
    # a small vocabulary: greedy decoding soon repeats itself, so lookup drafts get accepted
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=96,
                         num_hidden_layers=N_LAYERS, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module", params=["float32", "int8", "int4"])
def dec(request):
    return Decoder(tiny_model(), request.param)


PROMPT = torch.randint(0, 40, (30,), generator=torch.Generator().manual_seed(3))


def same(a: torch.Tensor, b: torch.Tensor, dec: Decoder) -> bool:
    """Bit for bit with int8 weights (the CPU default: int8 GEMV rows do not depend on the
    row count); float32 GEMM rounds a few rows differently from GEMV (~1e-7)."""
    if dec.layers[0].qkv.fmt in ("int8", "int4"):
        return torch.equal(a, b)
    return torch.allclose(a, b, atol=1e-5, rtol=1e-5)


# -- the matcher ---------------------------------------------------------------------------

def test_no_earlier_occurrence_no_draft():
    lk = PromptLookup([1, 2, 3])
    assert lk.match() == (0, 0) and lk.draft(3) == []
    assert PromptLookup([]).draft(3) == [] and PromptLookup([5]).draft(3) == []


def test_longest_suffix_wins_over_a_later_shorter_one():
    #            0  1  2  3  4  5  6  7  8  9
    lk = PromptLookup([7, 8, 9, 1, 5, 9, 2, 6, 8, 9])
    # suffix (8, 9) occurred at 1-2 (continuation 1); (9) alone also at 5 (continuation 2)
    assert lk.match() == (3, 2)
    assert lk.draft(5) == [1, 5]  # as many tokens as the match is long


def test_latest_occurrence_among_equally_long_matches_and_limit():
    lk = PromptLookup([4, 1, 2, 3, 4, 1, 5, 6, 4, 1], max_ngram=2)
    assert lk.match() == (6, 2)  # (4, 1) at 4-5 beats (4, 1) at 0-1
    assert lk.draft(1) == [5] and lk.draft(0) == []


def test_match_capped_at_max_ngram_and_push_extends():
    lk = PromptLookup([1, 2, 3, 4, 9, 9, 1, 2, 3], max_ngram=3)
    assert lk.match() == (3, 3) and lk.draft(3) == [4, 9, 9]
    lk.push(4)  # (2, 3, 4) now ends the context; its continuation is 9, 9, 1
    assert lk.draft(3) == [9, 9, 1]


def test_continuation_may_run_into_the_suffix():
    lk = PromptLookup([3, 3, 3])
    assert lk.match() == (2, 2) and lk.draft(3) == [3]  # only what is known is proposed


def test_bad_max_ngram_is_a_clear_error():
    with pytest.raises(ValueError, match="max_ngram"):
        PromptLookup([1], max_ngram=0)
    with pytest.raises(ValueError, match="min_match"):
        PromptLookup([1], max_ngram=2, min_match=3)


def test_one_token_matches_draft_nothing_by_default():
    #                  0  1  2  3  4  5
    lk = PromptLookup([7, 1, 2, 8, 3, 2])
    assert lk.match() == (3, 1)  # only (2) occurred before
    assert lk.draft(3) == []
    assert PromptLookup([7, 1, 2, 8, 3, 2], min_match=1).draft(3) == [8]


# -- lossless decoding -------------------------------------------------------------------------

def generate(dec: Decoder, n: int, k: int = 4, lookup: bool = False, heads=None,
             hide: tuple[int, int] | None = None, speculate_every: int = 1,
             context: list[int] | None = None, capacity: int = 128):
    """Greedy tokens after PROMPT through a Stepper; (tokens, cache, stats). `context`:
    what the lookup sees before the generated tokens (default: the prompt)."""
    cache = dec.new_cache(capacity)
    x = dec.forward(cache, PROMPT, return_hidden=True)
    logits = dec.logits(x[-1:])[-1]
    stepper = Stepper(dec, cache, 30, hide, heads, 1 if heads is not None else 0, k,
                      lookup=PromptLookup(PROMPT.tolist() if context is None else context)
                      if lookup else None)
    out = []
    for i in range(n):
        token = int(torch.argmax(logits))
        out.append(token)
        logits, _ = stepper.step(token, speculate=i % speculate_every == 0)
    stepper.settle()
    return out, cache, stepper.stats


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("hide", [None, (3, 11)])
def test_lookup_equals_greedy_tokens_and_cache(dec, k, hide):
    ref, ref_cache, _ = generate(dec, 40, hide=hide)
    ours, cache, stats = generate(dec, 40, k, lookup=True, hide=hide)
    assert ours == ref
    assert stats.lookup_rounds > 0 and stats.lookup_drafted > 0
    assert stats.lookup_accepted > 0  # the greedy loop repeats: some drafts are right
    assert stats.lookup_accepted <= stats.lookup_drafted
    n = 30 + 40
    assert cache.length == ref_cache.length == n
    assert same(cache.k[:, :, :n], ref_cache.k[:, :, :n], dec)
    assert same(cache.v[:, :, :n], ref_cache.v[:, :, :n], dec)


def test_drafts_never_overrun_a_full_cache(dec):
    ref, _, _ = generate(dec, 40)
    ours, cache, stats = generate(dec, 40, 5, lookup=True, capacity=30 + 40)
    assert ours == ref and cache.length == 70 and stats.lookup_accepted > 0


def test_unspeculated_steps_stay_plain_and_lossless(dec):
    ref, _, _ = generate(dec, 30)
    ours, _, stats = generate(dec, 30, lookup=True, speculate_every=3)
    assert ours == ref and stats.plain > 0


def test_lookup_with_exit_head_fallback_equals_greedy(dec):
    g = torch.Generator().manual_seed(1)
    heads = ExitHeads(down={1: torch.randn(8, 64, generator=g)},
                      up={1: torch.randn(64, 8, generator=g)}, vocab=torch.arange(40),
                      stop_weight=torch.zeros(3, 67), stop_bias=torch.zeros(3),
                      meta={"default_layer": "1"}).bind(dec)
    ref, ref_cache, _ = generate(dec, 40)
    # no prompt for the lookup: the first generated tokens have no match, exit heads draft
    ours, cache, stats = generate(dec, 40, 4, lookup=True, heads=heads, context=[])
    assert ours == ref
    assert stats.lookup_rounds > 0 and stats.rounds > stats.lookup_rounds  # both sources
    assert same(cache.k[:, :, :70], ref_cache.k[:, :, :70], dec)


def test_unknown_early_exit_mode_is_a_clear_error():
    from holefill.completion.engine import CompletionEngine
    from holefill.config import Settings

    # checked before the model is touched (hence no model here); the message names the modes
    with pytest.raises(ValueError, match=r"'prompt-lookup' is not one of .*selfspec\+lookup"):
        CompletionEngine(None, Settings(early_exit="prompt-lookup"))


# -- the embedded model ------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("model", ["smollm2-135m", "qwen2.5-coder-0.5b"])  # Llama and Qwen2
def test_real_model_lookup_identical_to_greedy(model):
    from holefill.completion.engine import CompletionEngine, CompletionRequest
    from holefill.config import Settings

    # lookup needs no exit heads: a missing heads file must not turn it off
    engine = CompletionEngine.load(Settings(model=model, drafts=1, check_suggestions=False,
                                            max_new_tokens=32, exit_heads="/nonexistent.st"))
    text = ("def area(width, height):\n    return width * height\n\n\n"
            "def perimeter(width, height):\n    return 2 * (width + height)\n\n\n"
            "def volume(width, height, depth):\n    return ")
    out = {}
    for mode in ("off", "lookup", "auto"):
        engine.settings = engine.settings.updated({"early_exit": mode})
        result = engine.complete(CompletionRequest(text=text, offset=len(text), doc_id="d"))
        out[mode] = (result.items[0].text, dict(engine.last_decode))
    assert out["lookup"][0] == out["off"][0] and out["off"][0].strip()
    assert out["lookup"][1]["lookup_accepted"] > 0
    # the default, auto, is lookup on the CPU
    assert out["auto"][0] == out["off"][0] and out["auto"][1]["lookup_accepted"] > 0
    assert "lookup_rounds" not in out["off"][1] or out["off"][1]["lookup_rounds"] == 0
