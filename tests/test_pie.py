"""PIE on tiny random models (tensor logic, RESEARCH §1.6-1.7)."""

from __future__ import annotations

import pytest
import torch
from conftest import SMALL_MODEL
from transformers import LlamaConfig, LlamaForCausalLM

from holefill.completion.decoder import Decoder
from holefill.kvcache.pie import pie_unsupported_reason, rotate, shift_slots


def tiny_decoder(**rope) -> Decoder:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=200,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        **rope,
    )
    return Decoder(LlamaForCausalLM(config).eval(), "float32")


IDS = torch.randint(0, 200, (40,), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    "rope", [{}, {"rope_parameters": {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0}}]
)
@pytest.mark.parametrize("d", [7, -3, 100])
def test_shift_invariance(rope, d):
    """The same tokens encoded at offset 0 and at offset d: rotate(K_0, d) == K_d, V equal."""
    dec = tiny_decoder(**rope)
    a, b = dec.new_cache(64), dec.new_cache(64)
    dec.forward(a, IDS[:20])
    dec.forward(b, IDS[:20], positions=torch.arange(20) + 200 + d)
    c = dec.new_cache(64)
    dec.forward(c, IDS[:20], positions=torch.arange(20) + 200)
    rotated = rotate(c.k[:, :, :20], d, dec.inv_freq)
    assert (rotated - b.k[:, :, :20]).abs().max().item() < 1e-5
    # Relative positions are what attention sees: values agree up to float rounding (exactly
    # in layer 0, whose values depend on the token alone).
    assert torch.equal(c.v[0, :, :20], b.v[0, :, :20])
    assert (c.v[:, :, :20] - b.v[:, :, :20]).abs().max().item() < 1e-5


def test_rotation_keeps_key_norms():
    dec = tiny_decoder()
    cache = dec.new_cache(64)
    dec.forward(cache, IDS)
    keys = cache.k[:, :, :40]
    assert torch.allclose(rotate(keys, 37, dec.inv_freq).norm(dim=-1), keys.norm(dim=-1), atol=1e-5)


def test_delete_then_reinsert_round_trip():
    dec = tiny_decoder()
    cache = dec.new_cache(64)
    dec.forward(cache, IDS)
    k0, v0 = cache.k[:, :, :40].clone(), cache.v[:, :, :40].clone()
    span = cache.k[:, :, 10:15].clone(), cache.v[:, :, 10:15].clone()
    shift_slots(cache, 15, 40, 10, dec.inv_freq)  # delete [10, 15): suffix moves by -5
    shift_slots(cache, 10, 35, 15, dec.inv_freq)  # re-insert: suffix moves back by +5
    cache.k[:, :, 10:15], cache.v[:, :, 10:15] = span
    assert (cache.k[:, :, :40] - k0).abs().max().item() < 1e-5
    assert torch.equal(cache.v[:, :, :40], v0)  # values are never touched


def test_deletion_with_pie_matches_full_encode_of_the_remaining_positions_exactly_for_keys():
    """After deleting a span, the shifted keys equal keys computed at the new positions *from
    the old context*; the only difference to a full re-encode is the stale context (values and
    keys of later layers). Layer 0 keys depend on the token alone, so they must match exactly."""
    dec = tiny_decoder()
    cache = dec.new_cache(64)
    dec.forward(cache, IDS)
    shift_slots(cache, 15, 40, 10, dec.inv_freq)
    fresh = dec.new_cache(64)
    dec.forward(fresh, torch.cat([IDS[:10], IDS[15:]]))
    assert (cache.k[0, :, :35] - fresh.k[0, :, :35]).abs().max().item() < 1e-5


def test_pure_append_equals_full_encode():
    dec = tiny_decoder()
    cache = dec.new_cache(64)
    dec.forward(cache, IDS[:25])
    appended = dec.forward(cache, IDS[25:], all_logits=True)
    full = dec.forward(dec.new_cache(64), IDS, all_logits=True)[25:]
    assert (appended - full).abs().max().item() < 1e-4
    assert cache.length == 40


def test_hidden_slots_act_as_if_absent():
    """A scratch token written after the cache at position p, with slots [p, n) hidden, gets the
    logits of the prefix [0, p) followed by that token."""
    dec = tiny_decoder()
    cache = dec.new_cache(64)
    dec.forward(cache, IDS[:30])
    logits = dec.forward(cache, IDS[12:13], positions=torch.tensor([12]), hide=(12, 30))
    ref = dec.forward(dec.new_cache(64), IDS[:13])
    assert (logits - ref).abs().max().item() < 1e-4


@pytest.mark.parametrize(
    "config, reason",
    [
        (
            {"rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}},
            "not shift-invariant",
        ),
        (
            {"rope_parameters": {"rope_type": "longrope", "rope_theta": 10000.0}},
            "not shift-invariant",
        ),
        ({"use_sliding_window": True}, "sliding-window"),
    ],
)
def test_pie_is_refused_where_a_shift_is_not_a_rotation(config, reason):
    cfg = LlamaConfig(vocab_size=10, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    for key, value in config.items():
        setattr(cfg, key, value)
    assert reason in (pie_unsupported_reason(cfg) or "")


def test_default_rope_is_accepted():
    assert pie_unsupported_reason(LlamaConfig()) is None


@pytest.mark.slow
def test_real_model_pie_is_close_to_full_encode_and_far_closer_than_no_rotation():
    """After an insertion in the middle of real code, the next-token distribution at the end:
    KL(full || pie) is small and much smaller than KL(full || suffix reused unrotated)."""
    import json as json_module

    from holefill.completion.engine import CompletionEngine
    from holefill.config import Settings
    from holefill.kvcache.session import KVSession

    engine = CompletionEngine.load(Settings(model=SMALL_MODEL, dtype="float32"))
    source = open(json_module.__file__.replace("__init__.py", "decoder.py"),
                  encoding="utf-8").read()[:2500]
    at = source.index("\n", 1200) + 1
    insert = "# a comment line added by the user while editing\nDEBUG = False\n"
    edited = source[:at] + insert + source[at:]

    def session(mode):
        s = KVSession(engine.decoder, engine.tokenize_with_ends, 1500, 16, mode=mode)
        s.reset(source, len(source))
        s.sync(len(s.tokens))
        return s

    def next_logits(s):
        s.sync(len(s.tokens) - 1)
        hide = s.begin_scratch(len(s.tokens) - 1)
        out = s.scratch_forward([s.tokens[-1]], len(s.tokens) - 1, hide)[-1]
        s.end_scratch()
        return torch.log_softmax(out, -1)

    pie = session("pie")
    pie.apply_edit(at, at, insert)
    full = session("full")
    full.apply_edit(at, at, insert)
    # No rotation: the same splice as PIE but the suffix keeps its old positions' keys.
    norot = session("pie")
    import holefill.kvcache.session as session_module

    original = session_module.shift_slots

    def move_without_rotation(cache, a, b, dst, inv_freq):
        n = b - a
        cache.k[:, :, dst:dst + n] = cache.k[:, :, a:b].clone()
        cache.v[:, :, dst:dst + n] = cache.v[:, :, a:b].clone()

    session_module.shift_slots = move_without_rotation
    try:
        norot.apply_edit(at, at, insert)
    finally:
        session_module.shift_slots = original
    ref, p, q = next_logits(full), next_logits(pie), next_logits(norot)
    kl_pie = torch.sum(ref.exp() * (ref - p)).item()
    kl_norot = torch.sum(ref.exp() * (ref - q)).item()
    print(f"KL(full||pie)={kl_pie:.2e} KL(full||no-rotation)={kl_norot:.2e}")
    assert pie.tokens == full.tokens == engine.encode(edited)
    assert kl_pie < 0.05
    assert kl_pie < kl_norot / 5
