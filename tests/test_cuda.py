"""The engine on a CUDA device: decoder vs transformers on the same device, PIE rotation and the
real model's completion in bf16. Skipped where no CUDA device exists (CI has none; these run on
the GPU machines the project is sometimes lent)."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from holefill.completion.decoder import Decoder
from holefill.kvcache.pie import rotate

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def tiny_llama(device: str) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval().to(device)


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-3), ("bfloat16", 0.15)])
def test_decoder_matches_transformers_on_cuda(dtype, tol):
    model = tiny_llama("cuda")
    ids = torch.randint(0, 300, (40,), generator=torch.Generator().manual_seed(1)).cuda()
    with torch.inference_mode():
        ref = model(ids[None]).logits[0].float()
    dec = Decoder(model, dtype)
    assert dec.device.type == "cuda"
    cache = dec.new_cache(64)
    # chunked prefill then single-token steps, as the engine runs it
    ours = torch.cat([dec.forward(cache, ids[:25], all_logits=True)]
                     + [dec.forward(cache, ids[i:i + 1]) for i in range(25, 40)])
    assert ours.device.type == "cuda"
    assert (ours - ref).abs().max().item() <= tol
    assert torch.equal(ours.argmax(-1)[:25], ref.argmax(-1)[:25]) or dtype == "bfloat16"


def test_pie_rotation_on_cuda_equals_encoding_at_the_shifted_position():
    dec = Decoder(tiny_llama("cuda"), "float32")
    ids = torch.randint(0, 300, (20,), generator=torch.Generator().manual_seed(2)).cuda()
    a, b = dec.new_cache(32), dec.new_cache(32)
    dec.forward(a, ids, positions=torch.arange(20, device="cuda") + 100)
    dec.forward(b, ids, positions=torch.arange(20, device="cuda") + 137)
    assert (rotate(a.k[:, :, :20], 37, dec.inv_freq) - b.k[:, :, :20]).abs().max().item() < 1e-3


@pytest.mark.slow
def test_real_model_completes_on_cuda_in_bf16():
    from holefill.completion.engine import CompletionEngine, CompletionRequest
    from holefill.config import Settings

    engine = CompletionEngine.load(Settings(device="cuda"))
    assert engine.decoder.device.type == "cuda"
    assert engine.decoder.dtype_name == "bfloat16"
    text = "def add(a, b):\n    return a +"
    doc = "def mul(a, b):\n    return a * b\n\n\n" + text
    first = engine.complete(CompletionRequest(text=doc, offset=len(doc), doc_id="d"))
    assert first.items and first.items[0].text.strip()
    # an edit far above the cursor goes through PIE on the device: the cache is reused
    engine.edit("d", 0, 0, "# math helpers\n")
    doc2 = "# math helpers\n" + doc
    second = engine.complete(CompletionRequest(text=doc2, offset=len(doc2), doc_id="d"))
    assert second.reused_tokens > 0
    assert second.items and second.items[0].text.strip()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_graph_decode_steps_equal_plain_steps(dtype):
    """One-token steps replayed from a CUDA graph give the plain forward's logits, with hidden
    slots, explicit positions and a second cache (a second graph)."""
    model = tiny_llama("cuda")
    ids = torch.randint(0, 300, (30,), generator=torch.Generator().manual_seed(4)).cuda()
    graphs, plain = Decoder(model, dtype), Decoder(model, dtype)
    plain.use_graphs = False
    assert graphs.use_graphs
    kept = []
    for _ in range(2):
        a, b = graphs.new_cache(48), plain.new_cache(48)
        kept.append(a)
        graphs.forward(a, ids[:20])
        plain.forward(b, ids[:20])
        for i in range(20, 30):
            pos = torch.tensor([i - 3], device="cuda")
            hide = (15, 18) if i % 2 else None
            got = graphs.forward(a, ids[i:i + 1], positions=pos, hide=hide)
            want = plain.forward(b, ids[i:i + 1], positions=pos, hide=hide)
            assert (got - want).abs().max().item() <= (1e-3 if dtype == "float32" else 0.1)
            assert a.length == b.length == i + 1
    assert len(graphs._graphs) == 2
    del kept, a
    graphs.forward(graphs.new_cache(48), ids[:1])  # a fresh cache: freed caches' graphs go
    assert len(graphs._graphs) == 1
