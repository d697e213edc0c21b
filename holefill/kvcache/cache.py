"""Preallocated K/V buffers the decoder writes and later issues (PIE) edit in place."""

from __future__ import annotations

import torch


class KVCache:
    """K and V for every layer: [layers, kv_heads, capacity, head_dim].

    Slot i holds the key/value of the i-th token the cache encodes. `length` is how many slots
    are valid; the decoder writes new tokens at [length, length + T). Keys are stored after the
    rotary embedding of their position, as in every Llama-family cache.
    """

    def __init__(self, layers: int, kv_heads: int, head_dim: int, capacity: int,
                 dtype: torch.dtype, device: torch.device | str) -> None:
        shape = (layers, kv_heads, capacity, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.k.shape[2]

    def truncate(self, length: int) -> None:
        """Forget slots from `length` on (no copy: they are overwritten by the next write)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a cache of {self.length} slots to {length}")
        self.length = length

    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2
