"""The engine's own weight file: what `Decoder.state()` returns, as one safetensors file.

Per linear layer: the int4 weight in torch's CPU int4 kernel layout with its scales and zeros
(decode), and a bf16 copy (prefill, the LM head's re-scoring, other dtypes, the reference
model). Packed int4 is only valid for the layout it was packed with: the file's metadata
records a probe of it (decoder.int4_layout_probe), and a decoder re-quantises from the bf16
copy where the running torch packs differently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def save_weights(state: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def reference_model(config: Any, state: dict[str, torch.Tensor] | None) -> Any:
    """A transformers model (fp32, CPU) with the weights of the bf16 copies in `state`."""
    from transformers import AutoModelForCausalLM

    if state is None:
        raise ValueError("no weights to build a reference model from")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    nq = config.num_attention_heads
    nkv = config.num_key_value_heads
    hd = getattr(config, "head_dim", None) or config.hidden_size // nq
    inter = config.intermediate_size
    params: dict[str, torch.Tensor] = {
        "model.embed_tokens.weight": state["embed"].float(),
        "model.norm.weight": state["norm"].float(),
    }
    if not getattr(config, "tie_word_embeddings", False):
        params["lm_head.weight"] = state["lm_head.bf16"].float()
    for i in range(config.num_hidden_layers):
        pre, lay = f"layers.{i}", f"model.layers.{i}"
        params[f"{lay}.input_layernorm.weight"] = state[f"{pre}.ln1"].float()
        params[f"{lay}.post_attention_layernorm.weight"] = state[f"{pre}.ln2"].float()
        q, k, v = state[f"{pre}.qkv.bf16"].float().split([nq * hd, nkv * hd, nkv * hd])
        params[f"{lay}.self_attn.q_proj.weight"] = q
        params[f"{lay}.self_attn.k_proj.weight"] = k
        params[f"{lay}.self_attn.v_proj.weight"] = v
        if f"{pre}.qkv.bias" in state:
            qb, kb, vb = state[f"{pre}.qkv.bias"].float().split([nq * hd, nkv * hd, nkv * hd])
            params[f"{lay}.self_attn.q_proj.bias"] = qb
            params[f"{lay}.self_attn.k_proj.bias"] = kb
            params[f"{lay}.self_attn.v_proj.bias"] = vb
        params[f"{lay}.self_attn.o_proj.weight"] = state[f"{pre}.o.bf16"].float()
        gate, up = state[f"{pre}.gate_up.bf16"].float().split([inter, inter])
        params[f"{lay}.mlp.gate_proj.weight"] = gate
        params[f"{lay}.mlp.up_proj.weight"] = up
        params[f"{lay}.mlp.down_proj.weight"] = state[f"{pre}.down.bf16"].float()
    missing, unexpected = model.load_state_dict(params, strict=False)
    missing = [m for m in missing if not m.endswith("rotary_emb.inv_freq")
               and not (m == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ValueError(f"reference model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    return model.eval()
