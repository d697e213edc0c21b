"""Positional Integrity Encoding (PIE, He et al. ICLR 2025; RESEARCH §1).

Keys are cached after the rotary embedding of their position. When an edit shifts a token from
position p to p + delta, its key becomes R(p + delta) R(p)^-1 k = R(delta) k: one rotation, the
same for every shifted token, every layer and every KV head. Values carry no position and are
never touched. The rotation is built from the model's own inverse frequencies (so linear and
llama3 scaling are honoured) and is a pure rotation: YaRN's attention scaling is not applied.
"""

from __future__ import annotations

import torch

# Rope types whose angle is not linear in the position (frequencies change with the length):
# a shift is not a rotation there, so PIE is refused.
NON_SHIFTABLE_ROPE = ("dynamic", "longrope")


def rope_type(config) -> str:
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
    if isinstance(params, dict):
        return str(params.get("rope_type") or params.get("type") or "default")
    return "default"


def pie_unsupported_reason(config) -> str | None:
    """Why PIE cannot be used for this model, or None when it can."""
    kind = rope_type(config)
    if kind in NON_SHIFTABLE_ROPE:
        return f"rope type {kind!r} is not shift-invariant"
    if getattr(config, "use_sliding_window", False) or (
        getattr(config, "sliding_window", None) and getattr(config, "model_type", "") == "mistral"
    ):
        return "sliding-window attention evicts tokens"
    if getattr(config, "partial_rotary_factor", 1.0) not in (None, 1.0):
        return "partial rotary embeddings"
    return None


def rotate(keys: torch.Tensor, delta: int, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotate post-RoPE keys [..., head_dim] (HF half-split layout) by `delta` positions."""
    angles = float(delta) * inv_freq.to(torch.float64)
    emb = torch.cat([angles, angles]).to(torch.float32)
    cos, sin = emb.cos().to(keys.device), emb.sin().to(keys.device)
    k = keys.float()
    half = k.shape[-1] // 2
    rotated = torch.cat([-k[..., half:], k[..., :half]], dim=-1)
    return (k * cos + rotated * sin).to(keys.dtype)


def shift_slots(cache, src_start: int, src_end: int, dst_start: int, inv_freq: torch.Tensor
                ) -> None:
    """Move cache slots [src_start, src_end) to dst_start, rotating their keys by the shift.
    Works in place on the preallocated buffers (overlapping ranges are handled by a copy)."""
    n = src_end - src_start
    if n <= 0 or src_start == dst_start:
        return
    delta = dst_start - src_start
    keys = cache.k[:, :, src_start:src_end].clone()
    values = cache.v[:, :, src_start:src_end].clone()
    cache.k[:, :, dst_start:dst_start + n] = rotate(keys, delta, inv_freq)
    cache.v[:, :, dst_start:dst_start + n] = values
