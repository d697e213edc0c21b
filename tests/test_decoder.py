"""The engine's decoder against transformers on tiny random-weight models (tensor logic only)."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from holefill.completion.decoder import Decoder, UnsupportedModel

TOL = 1e-4


def tiny(kind: str):
    torch.manual_seed(0)
    common = dict(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
    )
    if kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=True))
    elif kind == "llama-linear-rope":  # DeepSeek-Coder style rope scaling
        model = LlamaForCausalLM(
            LlamaConfig(
                **common,
                rope_parameters={"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0},
            )
        )
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**common, tie_word_embeddings=False))
    # Random init leaves biases at zero; make them count so the qkv bias path is tested.
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def hf_logits(model, ids: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
    with torch.inference_mode():
        kwargs = {} if positions is None else {"position_ids": positions[None]}
        return model(ids[None], **kwargs).logits[0].float()


@pytest.mark.parametrize("kind", ["llama", "qwen2", "llama-linear-rope"])
def test_full_forward_matches_transformers(kind):
    model = tiny(kind)
    ids = torch.randint(0, 300, (40,), generator=torch.Generator().manual_seed(1))
    dec = Decoder(model, "float32")
    cache = dec.new_cache(64)
    ours = dec.forward(cache, ids, all_logits=True)
    assert ours.shape == (40, 300)
    assert (ours - hf_logits(model, ids)).abs().max().item() <= TOL
    assert cache.length == 40


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_chunked_prefill_and_decode_match_full_forward(kind):
    model = tiny(kind)
    ids = torch.randint(0, 300, (37,), generator=torch.Generator().manual_seed(2))
    ref = hf_logits(model, ids)
    dec = Decoder(model, "float32")
    cache = dec.new_cache(64)
    pieces = [
        dec.forward(cache, ids[:10], all_logits=True),
        dec.forward(cache, ids[10:25], all_logits=True),
    ]
    pieces += [dec.forward(cache, ids[i : i + 1]) for i in range(25, 37)]
    ours = torch.cat(pieces)
    assert (ours - ref).abs().max().item() <= TOL


def test_truncate_then_rewrite_equals_fresh_cache():
    model = tiny("llama")
    ids = torch.randint(0, 300, (30,), generator=torch.Generator().manual_seed(3))
    other = torch.randint(0, 300, (8,), generator=torch.Generator().manual_seed(4))
    dec = Decoder(model, "float32")
    cache = dec.new_cache(64)
    dec.forward(cache, torch.cat([ids[:20], other]))
    cache.truncate(20)
    reused = dec.forward(cache, ids[20:], all_logits=True)
    fresh = dec.forward(dec.new_cache(64), ids, all_logits=True)[20:]
    assert (reused - fresh).abs().max().item() <= TOL


def test_explicit_positions_match_transformers_position_ids():
    model = tiny("llama")
    ids = torch.randint(0, 300, (12,), generator=torch.Generator().manual_seed(5))
    positions = torch.arange(100, 112)
    dec = Decoder(model, "float32")
    ours = dec.forward(dec.new_cache(32), ids, positions=positions, all_logits=True)
    assert (ours - hf_logits(model, ids, positions)).abs().max().item() <= TOL


def test_input_embeddings_equal_token_ids():
    model = tiny("qwen2")
    ids = torch.randint(0, 300, (9,), generator=torch.Generator().manual_seed(6))
    dec = Decoder(model, "float32")
    by_ids = dec.forward(dec.new_cache(16), ids, all_logits=True)
    by_embeds = dec.forward(dec.new_cache(16), embeds=dec.embed_tokens(ids), all_logits=True)
    assert torch.equal(by_ids, by_embeds)


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_reduced_precision_stays_close(dtype):
    model = tiny("llama")
    ids = torch.randint(0, 300, (20,), generator=torch.Generator().manual_seed(7))
    ref = hf_logits(model, ids)
    dec = Decoder(model, dtype, prefill_bf16=True)
    cache = dec.new_cache(32)
    ours = torch.cat(
        [dec.forward(cache, ids[:12], all_logits=True)]
        + [dec.forward(cache, ids[i : i + 1]) for i in range(12, 20)]
    )
    assert ours.dtype == torch.float32
    # Relative error of low-precision weights: a few percent of the logit scale.
    assert (ours - ref).abs().max().item() <= 0.1 * ref.abs().max().item()


def test_cache_overflow_is_an_error_not_a_silent_wrap():
    dec = Decoder(tiny("llama"), "float32")
    cache = dec.new_cache(8)
    with pytest.raises(ValueError, match="cache full"):
        dec.forward(cache, torch.arange(9))


def test_unsupported_architecture_is_refused():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    with pytest.raises(UnsupportedModel):
        Decoder(model, "float32")


@pytest.mark.parametrize("hide", [None, (4, 7)])
def test_static_step_equals_a_one_token_forward(hide):
    """The fixed-shape step that CUDA graphs replay (attention over every slot, masked) gives
    the logits and cache entries of the ordinary one-token forward."""
    dec = Decoder(tiny("llama"), "float32")
    ids = torch.randint(0, 300, (12,), generator=torch.Generator().manual_seed(3))
    a, b = dec.new_cache(32), dec.new_cache(32)
    dec.forward(a, ids[:10])
    dec.forward(b, ids[:10])
    want = dec.forward(a, ids[10:11], positions=torch.tensor([7]), hide=hide)
    visible = torch.arange(32) <= 10
    if hide is not None:
        visible[hide[0]:hide[1]] = False
    got = dec.static_step(b, ids[10:11], torch.tensor([7]), torch.tensor([10]), visible)
    assert (got - want).abs().max().item() <= TOL
    assert torch.allclose(a.k[:, :, :11], b.k[:, :, :11], atol=1e-6)
    assert torch.allclose(a.v[:, :, :11], b.v[:, :, :11], atol=1e-6)


def test_a_refused_graph_capture_falls_back_to_plain_steps(monkeypatch):
    import holefill.completion.decoder as decoder_module

    def refuse(*_args):
        raise RuntimeError("capture refused")

    monkeypatch.setattr(decoder_module, "_GraphStep", refuse)
    dec = Decoder(tiny("llama"), "float32")
    ids = torch.randint(0, 300, (6,), generator=torch.Generator().manual_seed(6))
    a, b = dec.new_cache(16), dec.new_cache(16)
    dec.forward(a, ids[:5])
    dec.forward(b, ids[:5])
    want = dec.forward(b, ids[5:6])
    dec.use_graphs = True  # as on CUDA
    got = dec.forward(a, ids[5:6])
    assert not dec.use_graphs and a.length == 6
    assert (got - want).abs().max().item() <= TOL
