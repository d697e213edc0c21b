"""Early exit: lossless self-speculation, cache rewind, SEC labels, the stop controller and the
heads file's identity check (tiny random-weight models for tensor logic, the embedded model
end to end)."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import SMALL_MODEL
from transformers import LlamaConfig, LlamaForCausalLM

from holefill.completion import early_exit
from holefill.completion.decoder import Decoder
from holefill.completion.early_exit import (
    CONTINUE,
    EXIT,
    STOP,
    ExitHeads,
    HeadsMismatch,
    Stepper,
    model_fingerprint,
    sec_labels,
    verify_forward,
)

N_LAYERS = 4


def tiny_model():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=96,
                         num_hidden_layers=N_LAYERS, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


def tiny_heads(kind: str, vocab: int = 300) -> ExitHeads:
    """Heads at every layer 1..N_LAYERS: 'lens' = zero adapters (logit lens; at the last layer
    it drafts exactly the full model's token), 'random' = random adapters (mostly rejected)."""
    g = torch.Generator().manual_seed(1)
    rank = 8
    down, up = {}, {}
    for layer in range(1, N_LAYERS + 1):
        down[layer] = torch.randn(rank, 64, generator=g)
        up[layer] = (torch.randn(64, rank, generator=g) * (3.0 if kind == "random" else 0.0))
    return ExitHeads(down=down, up=up, vocab=torch.arange(vocab),
                     stop_weight=torch.randn(3, 67, generator=g), stop_bias=torch.zeros(3),
                     meta={"default_layer": "2"})


def generate(dec: Decoder, prompt: torch.Tensor, n: int, heads=None, layer: int = 0, k: int = 4,
             confidence: float = 0.0):
    """Greedy tokens after `prompt` through a Stepper; returns (tokens, cache, stats)."""
    cache = dec.new_cache(96)
    x = dec.forward(cache, prompt, return_hidden=True)
    logits = dec.logits(x[-1:])[-1]
    stepper = Stepper(dec, cache, prompt.shape[0], None, heads, layer, k, confidence)
    out = []
    for _ in range(n):
        token = int(torch.argmax(logits))
        out.append(token)
        logits, _ = stepper.step(token)
    stepper.settle()
    return out, cache, stepper.stats


@pytest.fixture(scope="module")
def dec():
    return Decoder(tiny_model(), "float32")


PROMPT = torch.randint(0, 300, (14,), generator=torch.Generator().manual_seed(3))


def test_split_forward_equals_full_forward(dec):
    # the decoder API self-speculation rests on: layers [0, E) then [E, L) from the hidden state
    full = dec.forward(dec.new_cache(32), PROMPT, all_logits=True)
    cache = dec.new_cache(32)
    h = dec.forward(cache, PROMPT, n_layers=2, return_hidden=True)
    assert h.shape == (14, 64) and cache.length == 14
    cache.length = 0
    x = dec.forward(cache, embeds=h, first_layer=2, return_hidden=True)
    assert torch.allclose(dec.logits(x), full, atol=1e-5)


@pytest.fixture(scope="module", params=["float32", "int8", "int4"])
def dec_any(request):
    return Decoder(tiny_model(), request.param)


def same(a: torch.Tensor, b: torch.Tensor, dec: Decoder) -> bool:
    """Bit for bit with int8 weights (the CPU default: int8 GEMV rows do not depend on the
    row count); float32 GEMM rounds a few rows differently from GEMV (~1e-7)."""
    if dec.layers[0].qkv.fmt in ("int8", "int4"):
        return torch.equal(a, b)
    return torch.allclose(a, b, atol=1e-5, rtol=1e-5)


# -- the row-exact verify pass (early_exit.verify_forward) -------------------------------

@pytest.mark.parametrize("hide", [None, (4, 9)])
def test_verify_forward_is_bitwise_one_token_steps(dec_any, hide):
    ids = torch.tensor([5, 170, 3, 3, 210])
    ref_cache, cache = dec_any.new_cache(64), dec_any.new_cache(64)
    for c in (ref_cache, cache):
        dec_any.forward(c, PROMPT)
    ref = torch.cat([dec_any.forward(ref_cache, ids[i:i + 1], positions=torch.tensor([14 + i]),
                                     hide=hide, return_hidden=True) for i in range(5)])
    x = verify_forward(dec_any, cache, dec_any.embed_tokens(ids), 14, hide)
    assert cache.length == ref_cache.length == 19
    assert same(x, ref, dec_any)
    assert same(cache.k[:, :, :19], ref_cache.k[:, :, :19], dec_any)
    assert same(cache.v[:, :, :19], ref_cache.v[:, :, :19], dec_any)
    # a batched masked forward is the thing verify_forward avoids: it is close, not exact
    cache.length = 14
    y = dec_any.forward(cache, ids, positions=torch.arange(14, 19), hide=hide, return_hidden=True)
    assert torch.allclose(y, ref, atol=0.5, rtol=0.05)


def test_verify_forward_from_a_middle_layer(dec_any):
    ids = torch.tensor([5, 170, 3])
    ref_cache, cache = dec_any.new_cache(64), dec_any.new_cache(64)
    for c in (ref_cache, cache):
        dec_any.forward(c, PROMPT)
    ref = torch.cat([dec_any.forward(ref_cache, ids[i:i + 1], positions=torch.tensor([14 + i]),
                                     return_hidden=True) for i in range(3)])
    hs = torch.cat([dec_any.forward(cache, ids[i:i + 1], positions=torch.tensor([14 + i]),
                                    n_layers=1, return_hidden=True) for i in range(3)])
    cache.length = 14
    assert same(verify_forward(dec_any, cache, hs, 14, None, first_layer=1), ref, dec_any)


def test_verify_forward_refuses_a_full_cache(dec_any):
    cache = dec_any.new_cache(15)
    dec_any.forward(cache, PROMPT)
    with pytest.raises(ValueError, match="cache full"):
        verify_forward(dec_any, cache, dec_any.embed_tokens(torch.tensor([1, 2])), 14, None)


@pytest.mark.parametrize("kind", ["lens", "random"])
@pytest.mark.parametrize("layer", [1, 2, 3, N_LAYERS])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_selfspec_equals_greedy_tokens_and_cache(dec, kind, layer, k):
    ref, ref_cache, _ = generate(dec, PROMPT, 24)
    heads = tiny_heads(kind).bind(dec)
    ours, cache, stats = generate(dec, PROMPT, 24, heads, layer, k)
    assert ours == ref
    assert stats.rounds > 0
    n = PROMPT.shape[0] + 24
    assert cache.length == ref_cache.length == n
    assert torch.allclose(cache.k[:, :, :n], ref_cache.k[:, :, :n], atol=1e-5)
    assert torch.allclose(cache.v[:, :, :n], ref_cache.v[:, :, :n], atol=1e-5)


@pytest.mark.parametrize("confidence", [0.02, 0.2, 1.01])
def test_confidence_gated_drafting_stays_lossless(dec, confidence):
    ref, ref_cache, _ = generate(dec, PROMPT, 20)
    heads = tiny_heads("lens").bind(dec)
    ours, cache, stats = generate(dec, PROMPT, 20, heads, 2, 5, confidence)
    assert ours == ref
    assert torch.allclose(cache.k[:, :, :34], ref_cache.k[:, :, :34], atol=1e-5)
    if confidence > 1:
        assert stats.drafted == 0


def test_exit_at_last_layer_accepts_every_draft(dec):
    heads = tiny_heads("lens").bind(dec)
    _, _, stats = generate(dec, PROMPT, 24, heads, N_LAYERS, 4)
    assert stats.drafted > 0 and stats.accepted == stats.drafted
    assert stats.rounds <= 24 // 4 + 1  # each round emitted k tokens


def test_rejected_draft_still_emits_the_verified_token(dec):
    # random adapters: drafts are wrong, every round still yields the verifier's token
    heads = tiny_heads("random").bind(dec)
    ref, _, _ = generate(dec, PROMPT, 10)
    ours, _, stats = generate(dec, PROMPT, 10, heads, 1, 5)
    assert ours == ref
    assert stats.accepted < stats.drafted


def test_mismatch_rewinds_the_cache(dec):
    heads = tiny_heads("lens").bind(dec)
    cache = dec.new_cache(64)
    x = dec.forward(cache, PROMPT, return_hidden=True)
    stepper = Stepper(dec, cache, PROMPT.shape[0], None, heads, N_LAYERS, 5)
    logits, _ = stepper.step(int(torch.argmax(dec.logits(x[-1:])[-1])))
    assert len(stepper.queue) == 4 and cache.length == PROMPT.shape[0] + 5
    other = (stepper.queue[0][0] + 1) % 300  # not the draft
    logits2, _ = stepper.step(other)
    # the queue is dropped, then a new round starts at the accepted length
    assert cache.length == PROMPT.shape[0] + 2 + len(stepper.queue)
    fresh = dec.new_cache(64)
    dec.forward(fresh, PROMPT)
    dec.forward(fresh, torch.tensor([int(torch.argmax(logits))]))
    ref = dec.forward(fresh, torch.tensor([other]))[-1]
    assert torch.allclose(logits2, ref, atol=1e-4)


def test_hidden_slots_stay_hidden(dec):
    # scratch decoding after a cached suffix that must stay invisible (the engine's `hide`)
    cache_ref = dec.new_cache(96)
    prompt = torch.cat([PROMPT, PROMPT[:6]])
    hide = (14, 20)
    heads = tiny_heads("lens").bind(dec)

    def run(h):
        cache = dec.new_cache(96)
        dec.forward(cache, prompt[:-1])
        x = dec.forward(cache, prompt[-1:], positions=torch.tensor([13]), hide=hide,
                        return_hidden=True)
        logits = dec.logits(x)[-1]
        stepper = Stepper(dec, cache, 14, hide, h, 2, 4)
        out = []
        for _ in range(12):
            out.append(int(torch.argmax(logits)))
            logits, _ = stepper.step(out[-1])
        return out

    assert run(heads) == run(None)
    del cache_ref


def test_lossy_exit_never_firing_is_greedy(dec):
    heads = tiny_heads("lens").bind(dec)
    ref, ref_cache, _ = generate(dec, PROMPT, 16)
    cache = dec.new_cache(96)
    x = dec.forward(cache, PROMPT, return_hidden=True)
    logits = dec.logits(x[-1:])[-1]
    stepper = Stepper(dec, cache, 14, None, heads, 2, 4, exit_threshold=1.01)
    out = []
    for _ in range(16):
        out.append(int(torch.argmax(logits)))
        logits, _ = stepper.step(out[-1])
    assert out == ref and stepper.stats.exited == 0
    assert torch.allclose(cache.k[:, :, :30], ref_cache.k[:, :, :30], atol=1e-5)


def test_lossy_exit_copies_state_into_every_skipped_layer(dec):
    heads = tiny_heads("lens").bind(dec)
    E = 2
    cache = dec.new_cache(96)
    x = dec.forward(cache, PROMPT, return_hidden=True)
    logits = dec.logits(x[-1:])[-1]
    stepper = Stepper(dec, cache, 14, None, heads, E, 4, exit_threshold=-1.0)  # always exits
    for i in range(6):
        token = int(torch.argmax(logits))
        before = cache.k.clone()
        logits, h = stepper.step(token)
        assert cache.length == 15 + i  # one slot per token, at every layer
        slot = 14 + i
        # the copied K/V of layers >= E are what the decoder's own layer j writes for input h
        probe = dec.new_cache(96)
        probe.k.copy_(before)
        probe.v.copy_(cache.v)
        for j in range(E, N_LAYERS):
            probe.length = slot
            dec.forward(probe, embeds=h[None], positions=torch.tensor([slot]), first_layer=j,
                        n_layers=j + 1)
            assert torch.allclose(cache.k[j, :, slot], probe.k[j, :, slot], atol=1e-5)
            assert torch.allclose(cache.v[j, :, slot], probe.v[j, :, slot], atol=1e-5)
            assert cache.k[j, :, slot].abs().sum() > 0
    assert stepper.stats.exited == 6
    assert torch.isfinite(logits[heads.vocab]).all()


def test_sec_labels_hand_built():
    # columns: right from layer 1 on; right only at the final layer; never right;
    # right at layer 0 but wrong at the final layer
    correct = torch.tensor([[False, False, False, True],
                            [True, False, False, True],
                            [True, True, False, False]])
    labels = sec_labels(correct)
    assert labels[:, 0].tolist() == [CONTINUE, EXIT, EXIT]
    assert labels[:, 1].tolist() == [CONTINUE, CONTINUE, EXIT]
    assert labels[:, 2].tolist() == [STOP, STOP, STOP]
    assert labels[:, 3].tolist() == [STOP, STOP, STOP]


def test_heads_file_round_trip_and_model_check(tmp_path, dec):
    model = tiny_model()
    heads = tiny_heads("random")
    heads.meta.update(model_fingerprint=model_fingerprint(model))
    path = tmp_path / "heads.safetensors"
    heads.save(path)
    loaded = ExitHeads.load(path, model)
    assert loaded.layers == heads.layers
    for layer in heads.layers:  # fp16 on disk
        assert torch.allclose(loaded.up[layer], heads.up[layer], atol=1e-2)
    other = tiny_model()
    with torch.no_grad():
        other.model.embed_tokens.weight.add_(1.0)
    with pytest.raises(HeadsMismatch, match="another model"):
        ExitHeads.load(path, other)
    with pytest.raises(FileNotFoundError):
        ExitHeads.load(tmp_path / "missing.safetensors")


def test_stepper_rejects_a_layer_without_head(dec):
    with pytest.raises(ValueError, match="no exit head"):
        Stepper(dec, dec.new_cache(8), 0, None, tiny_heads("lens", 300).bind(dec), 7, 4)


# -- the embedded model ---------------------------------------------------------------------

PROMPTS = [
    "import os\n\n\ndef list_python_files(root):\n    result = []\n    for name in os.listdir(root):\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n",
]


@pytest.fixture(scope="module")
def engine():
    from holefill.completion.engine import CompletionEngine
    from holefill.config import Settings

    # the shipped heads were trained for SmolLM2-135M
    return CompletionEngine.load(Settings(model=SMALL_MODEL, drafts=1, check_suggestions=False,
                                          api_context=False, max_new_tokens=24))


def _complete(engine, text, **settings):
    from holefill.completion.engine import CompletionRequest

    base = engine.settings
    engine.settings = base.updated(settings)
    try:
        result = engine.complete(CompletionRequest(text=text, offset=len(text)))
    finally:
        engine.settings = base
    return (result.items[0].text if result.items else ""), result.timings_ms


@pytest.mark.slow
def test_real_model_selfspec_identical():
    # The CPU default, int8 weights: the verify pass (early_exit.verify_forward) is bit for bit
    # the one-token steps, so even near-ties come out as plain greedy's.
    from holefill.completion.engine import CompletionEngine
    from holefill.config import Settings

    engine = CompletionEngine.load(Settings(model=SMALL_MODEL, drafts=1, check_suggestions=False,
                                            api_context=False, max_new_tokens=16))
    assert engine.exit_heads() is not None, "shipped heads must load for SmolLM2"
    for text in PROMPTS:
        plain, _ = _complete(engine, text, early_exit="off")
        spec, timings = _complete(engine, text, early_exit="selfspec", speculate_confidence=0.2)
        assert spec == plain and plain
        assert timings["spec_rounds"] > 0 and timings["spec_drafted"] > 0


@pytest.mark.slow
def test_real_model_stop_cuts_at_a_token_boundary(engine):
    text = "def area(radius):\n    return "
    # no healing: then max_new_tokens=j is exactly the first j tokens of greedy
    full, t_full = _complete(engine, text, token_healing=False)
    cuts = 0
    for thr in (0.05, 0.2, 0.35, 0.5):
        cut, t = _complete(engine, text, stop_controller=True, stop_threshold=thr,
                           token_healing=False)
        assert full.startswith(cut)
        if t.get("stop_cut"):
            cuts += 1
            j = int(t["decode_tokens"])
            assert j < t_full["decode_tokens"]
            # the same first j tokens of plain greedy: a cut never splits a token
            same = _complete(engine, text, max_new_tokens=j, token_healing=False)[0] if j else ""
            assert cut == same
    assert cuts > 0


@pytest.mark.slow
def test_real_heads_refuse_another_model_or_tokenizer(engine, tmp_path):
    with pytest.raises(HeadsMismatch, match="another model"):
        ExitHeads.load(early_exit.DEFAULT_PATH, tiny_model(), engine.tokenizer)
    tok = copy.deepcopy(engine.tokenizer)
    tok.add_tokens(["<holefill-test-token>"])
    with pytest.raises(HeadsMismatch, match="another tokenizer"):
        ExitHeads.load(early_exit.DEFAULT_PATH, engine.hf_model, tok)
    # the engine refuses such a file and decodes plainly
    heads = tiny_heads("lens")
    heads.meta.update(model_fingerprint=model_fingerprint(tiny_model()))
    path = tmp_path / "other.safetensors"
    heads.save(path)
    from holefill.completion.engine import CompletionEngine

    other = CompletionEngine(
        engine.loaded, engine.settings.updated({"exit_heads": str(path),
                                                "early_exit": "selfspec"}))
    assert other.exit_heads() is None
    assert _complete(other, PROMPTS[0])[0] == _complete(engine, PROMPTS[0])[0]
