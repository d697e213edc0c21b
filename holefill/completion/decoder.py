"""Compact Llama-family forward (Llama, Qwen2, Mistral-style) on the engine's own KV cache.

gpt-fast style: weights taken from the transformers model, a plain loop over layers, explicit
positions, a preallocated cache. transformers' forward spends most of a decode step in Python and
dispatch overhead; owning the loop also lets later techniques stop early, feed embeddings directly
(superposed decoding) and edit the cache (PIE).

Weight formats (`dtype`):
- float32: reference; matches transformers within 1e-4.
- bfloat16: bf16 weights and activations.
- int8: weight-only int8 (per output channel) with bf16 activations via
  torch._weight_int8pack_mm; on our CPU the fastest GEMV by far (RESEARCH §10).
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from holefill.completion.model import cpu_has_bf16
from holefill.kvcache.cache import KVCache

log = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "mistral")


class UnsupportedModel(ValueError):
    pass


class Linear:
    """y = x @ W.T (+ b) with the weight stored in the chosen format."""

    # Rows at or above which an int8 linear uses its bf16 copy: int8 weight-only GEMV wins for
    # decode, bf16 GEMM (AVX512-BF16) wins for prefill.
    PREFILL_ROWS = 8

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, fmt: str,
                 prefill_bf16: bool = False) -> None:
        self.fmt = fmt
        self.bias = None
        self.prefill_weight = None
        if fmt == "int8" and prefill_bf16:
            self.prefill_weight = weight.detach().to(torch.bfloat16).contiguous()
        if fmt == "int8":
            w = weight.detach().float()
            scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
            self.weight = (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8).contiguous()
            self.scale = scale.to(torch.bfloat16)
            if bias is not None:
                self.bias = bias.detach().to(torch.bfloat16)
        else:
            dt = torch.float32 if fmt == "float32" else getattr(torch, fmt)
            self.weight = weight.detach().to(dt).contiguous()
            if bias is not None:
                self.bias = bias.detach().to(dt)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.prefill_weight is not None and x.shape[0] >= self.PREFILL_ROWS:
            y = F.linear(x.to(torch.bfloat16), self.prefill_weight)
            if self.bias is not None:
                y = y + self.bias
            return y.to(x.dtype)
        if self.fmt == "int8":
            shape = x.shape
            y = torch._weight_int8pack_mm(
                x.reshape(-1, shape[-1]).to(torch.bfloat16), self.weight, self.scale)
            y = y.reshape(*shape[:-1], -1)
            if self.bias is not None:
                y = y + self.bias
            return y.to(x.dtype)
        if x.dtype != self.weight.dtype:
            return F.linear(x.to(self.weight.dtype), self.weight, self.bias).to(x.dtype)
        return F.linear(x, self.weight, self.bias)


@dataclass
class Layer:
    ln1: torch.Tensor
    qkv: Linear
    o: Linear
    ln2: torch.Tensor
    gate_up: Linear
    down: Linear


class Decoder:
    """Forward pass of a Llama-family model. Call with token ids (or input embeddings), their
    positions, and the cache to append to; returns logits (fp32)."""

    def __init__(self, hf_model, dtype: str = "float32", prefill_bf16: bool | None = None) -> None:
        config = hf_model.config
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise UnsupportedModel(
                f"the engine decoder supports {SUPPORTED_MODEL_TYPES}, not {config.model_type!r}"
            )
        if dtype == "int8" and not hasattr(torch.ops.aten, "_weight_int8pack_mm"):
            dtype = "bfloat16"
        self.dtype_name = dtype
        inner = hf_model.model
        self.device = next(hf_model.parameters()).device
        # On CPU the residual stream and the cache stay fp32 whatever the weight format: bf16
        # attention over a long cache is 4-8x slower there (RESEARCH §10 and our measurements),
        # and the int8/bf16 linears cast their input themselves. On CUDA all runs in bf16/fp16.
        if self.device.type == "cpu" or dtype in ("float32", "int8"):
            act = torch.float32
        else:
            act = getattr(torch, dtype)
        self.act_dtype = act
        if prefill_bf16 is None:
            prefill_bf16 = self.device.type == "cpu" and cpu_has_bf16()
        self.prefill_bf16 = bool(prefill_bf16 and dtype == "int8")
        self.n_layers = config.num_hidden_layers
        self.n_heads = config.num_attention_heads
        self.n_kv = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.n_heads
        self.hidden = config.hidden_size
        self.eps = config.rms_norm_eps
        self.vocab_size = config.vocab_size
        self.embed = inner.embed_tokens.weight.detach().to(act)
        self.layers: list[Layer] = []
        for layer in inner.layers:
            att, mlp = layer.self_attn, layer.mlp
            qkv_w = torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight])
            qkv_b = None
            if att.q_proj.bias is not None:
                qkv_b = torch.cat([att.q_proj.bias, att.k_proj.bias, att.v_proj.bias])
            self.layers.append(Layer(
                ln1=layer.input_layernorm.weight.detach().to(act),
                qkv=Linear(qkv_w, qkv_b, dtype, self.prefill_bf16),
                o=Linear(att.o_proj.weight, att.o_proj.bias, dtype, self.prefill_bf16),
                ln2=layer.post_attention_layernorm.weight.detach().to(act),
                gate_up=Linear(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]), None, dtype,
                               self.prefill_bf16),
                down=Linear(mlp.down_proj.weight, None, dtype, self.prefill_bf16),
            ))
        self.norm = inner.norm.weight.detach().to(act)
        self.lm_head = Linear(hf_model.lm_head.weight, None, dtype, self.prefill_bf16)
        rotary = inner.rotary_emb
        self.inv_freq = rotary.inv_freq.detach().float().to(self.device)
        self.rope_scale = float(getattr(rotary, "attention_scaling", 1.0))
        self.intermediate = config.intermediate_size
        # One-token decode steps as CUDA graphs (one per cache): a 135M model's step is a few
        # hundred tiny kernels, launch-bound on a GPU (13.8 ms/token on an H200 without).
        self.use_graphs = self.device.type == "cuda"
        self._graphs: dict[int, _GraphStep] = {}

    def new_cache(self, capacity: int) -> KVCache:
        return KVCache(self.n_layers, self.n_kv, self.head_dim, capacity, self.act_dtype,
                       self.device)

    def rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin [T, head_dim] for the given positions (HF's rotate_half layout)."""
        freqs = positions.float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat([freqs, freqs], dim=-1)
        return (emb.cos() * self.rope_scale).to(self.act_dtype), (
            emb.sin() * self.rope_scale).to(self.act_dtype)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.embed)

    @torch.inference_mode()
    def forward(self, cache: KVCache, ids: torch.Tensor | None = None,
                embeds: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                all_logits: bool = False, n_layers: int | None = None,
                hide: tuple[int, int] | None = None, first_layer: int = 0,
                return_hidden: bool = False, per_row_attention: bool = False) -> torch.Tensor:
        """Append T tokens to `cache` and return logits [T, vocab] (or [1, vocab] for the last
        token unless `all_logits`). `ids` [T] or `embeds` [T, hidden]; positions default to the
        cache slots they are written to. `hide` = (a, b): slots [a, b) are invisible to the new
        tokens (a completion written after the document's cached text, at the cursor's
        positions, must not see the text after the cursor).

        Split forwards (early exit, self-speculation): only layers [first_layer, n_layers) run
        and write the cache; with first_layer > 0, `embeds` is the residual stream entering that
        layer. `return_hidden` returns the residual stream after the last layer run [T, hidden]
        (no final norm) instead of logits; `logits()` turns it into logits.

        `per_row_attention` (speculative verify passes, early_exit.verify_forward): attention
        runs once per row over exactly that row's keys, so each row is bit for bit what a
        one-token step gives. One attention call over a masked key block rounds differently
        (~1e-6), which int8 linears' bf16 inputs grow into flipped near-ties."""
        if (self.use_graphs and ids is not None and ids.numel() == 1 and not all_logits
                and n_layers is None and first_layer == 0 and not return_hidden):
            return self._graph_step(cache, ids, positions, hide)
        x = self.embed_tokens(ids) if embeds is None else embeds.to(self.act_dtype)
        T = x.shape[0]
        start = cache.length
        if start + T > cache.capacity:
            raise ValueError(f"cache full: {start} + {T} > {cache.capacity}")
        if positions is None:
            positions = torch.arange(start, start + T, device=x.device)
        cos, sin = self.rope(positions)
        end = start + T
        mask = None
        if (T > 1 and start > 0) or (hide is not None and hide[0] < hide[1]):
            # query i (slot start+i) sees keys [0, start+i], except the hidden slots
            mask = torch.ones(T, end, dtype=torch.bool, device=x.device).tril(diagonal=start)
            if hide is not None:
                mask[:, hide[0]:hide[1]] = False
        causal = T > 1 and mask is None
        row_masks: list[torch.Tensor | None] = []
        if per_row_attention:
            for r in range(T):  # the mask a one-token step at slot start + r builds
                m = None
                if hide is not None and hide[0] < hide[1]:
                    m = torch.ones(1, start + r + 1, dtype=torch.bool, device=x.device)
                    m[:, hide[0]:hide[1]] = False
                row_masks.append(m)
        nq, nkv, hd = self.n_heads, self.n_kv, self.head_dim
        layers = self.layers[first_layer:n_layers]
        for i, layer in enumerate(layers, start=first_layer):
            h = _rms_norm(x, layer.ln1, self.eps)
            qkv = layer.qkv(h)
            q = qkv[:, : nq * hd].view(T, nq, hd).transpose(0, 1)
            k = qkv[:, nq * hd : (nq + nkv) * hd].view(T, nkv, hd).transpose(0, 1)
            v = qkv[:, (nq + nkv) * hd :].view(T, nkv, hd).transpose(0, 1)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            cache.k[i, :, start:end] = k
            cache.v[i, :, start:end] = v
            if per_row_attention:
                attn = torch.cat([F.scaled_dot_product_attention(
                    q[:, r:r + 1].unsqueeze(0), cache.k[i, :, :start + r + 1].unsqueeze(0),
                    cache.v[i, :, :start + r + 1].unsqueeze(0), attn_mask=row_masks[r],
                    enable_gqa=nq != nkv)[0] for r in range(T)], dim=1)
            else:
                keys = cache.k[i, :, :end]
                values = cache.v[i, :, :end]
                attn = F.scaled_dot_product_attention(
                    q.unsqueeze(0), keys.unsqueeze(0), values.unsqueeze(0),
                    attn_mask=mask, is_causal=causal, enable_gqa=nq != nkv,
                )[0]
            x = x + layer.o(attn.transpose(0, 1).reshape(T, nq * hd))
            h = _rms_norm(x, layer.ln2, self.eps)
            gu = layer.gate_up(h)
            g, u = gu.split(self.intermediate, dim=-1)
            x = x + layer.down(F.silu(g) * u)
        cache.length = end
        if return_hidden:
            return x
        return self.logits(x if all_logits else x[-1:])

    def static_step(self, cache: KVCache, ids: torch.Tensor, position: torch.Tensor,
                    slot: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """One token with fixed shapes, as a CUDA graph replays it: write K/V at cache slot
        `slot` [1] and attend over all `cache.capacity` slots where `visible` [capacity] is
        true. Equals `forward` for one token; does not touch `cache.length`."""
        x = self.embed_tokens(ids.reshape(1))
        cos, sin = self.rope(position.reshape(1))
        nq, nkv, hd = self.n_heads, self.n_kv, self.head_dim
        mask = visible.view(1, 1, 1, -1)
        for i, layer in enumerate(self.layers):
            h = _rms_norm(x, layer.ln1, self.eps)
            qkv = layer.qkv(h)
            q = qkv[:, : nq * hd].view(1, nq, hd).transpose(0, 1)
            k = qkv[:, nq * hd : (nq + nkv) * hd].view(1, nkv, hd).transpose(0, 1)
            v = qkv[:, (nq + nkv) * hd :].view(1, nkv, hd).transpose(0, 1)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            cache.k[i].index_copy_(1, slot, k)
            cache.v[i].index_copy_(1, slot, v)
            attn = F.scaled_dot_product_attention(
                q.unsqueeze(0), cache.k[i].unsqueeze(0), cache.v[i].unsqueeze(0),
                attn_mask=mask, enable_gqa=nq != nkv)[0]
            x = x + layer.o(attn.transpose(0, 1).reshape(1, nq * hd))
            h = _rms_norm(x, layer.ln2, self.eps)
            g, u = layer.gate_up(h).split(self.intermediate, dim=-1)
            x = x + layer.down(F.silu(g) * u)
        return self.logits(x)

    def _graph_step(self, cache: KVCache, ids: torch.Tensor, positions: torch.Tensor | None,
                    hide: tuple[int, int] | None) -> torch.Tensor:
        start = cache.length
        if start + 1 > cache.capacity:
            raise ValueError(f"cache full: {start} + 1 > {cache.capacity}")
        step = self._graphs.get(id(cache))
        if step is None or step.cache() is not cache:
            # caches come and go with documents: forget the graphs of freed ones
            for key in [k for k, g in self._graphs.items() if g.cache() is None]:
                del self._graphs[key]
            if len(self._graphs) >= MAX_GRAPHS:
                self._graphs.pop(next(iter(self._graphs)))
            try:
                step = self._graphs[id(cache)] = _GraphStep(self, cache)
            except RuntimeError as exc:  # capture refused (driver, memory): decode eagerly
                log.warning("CUDA graph capture failed (%s); decoding without graphs", exc)
                self.use_graphs = False
                return self.forward(cache, ids, positions=positions, hide=hide)
        position = start if positions is None else int(positions.reshape(-1)[0])
        logits = step.run(int(ids.reshape(-1)[0]), position, start, hide)
        cache.length = start + 1
        return logits

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Final norm and LM head on residual-stream rows [T, hidden] -> fp32 logits."""
        return self.lm_head(_rms_norm(x, self.norm, self.eps)).float()


MAX_GRAPHS = 16  # captured decode steps kept (one per KV cache, i.e. per open document)


class _GraphStep:
    """`Decoder.static_step` on one cache, captured once as a CUDA graph and replayed with new
    inputs written into its static buffers."""

    def __init__(self, decoder: Decoder, cache: KVCache) -> None:
        # weak: a graph must not keep an evicted document's cache alive
        self.cache = weakref.ref(cache)
        dev = decoder.device
        self.ids = torch.zeros(1, dtype=torch.long, device=dev)
        self.position = torch.zeros(1, dtype=torch.long, device=dev)
        self.slot = torch.zeros(1, dtype=torch.long, device=dev)
        self.visible = torch.zeros(cache.capacity, dtype=torch.bool, device=dev)
        self.slots = torch.arange(cache.capacity, device=dev)
        self.graph = torch.cuda.CUDAGraph()
        saved = (cache.k[:, :, -1].clone(), cache.v[:, :, -1].clone())
        self.slot.fill_(cache.capacity - 1)  # warm-up and capture write the last slot only
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(2):  # warm-up: kernels picked and workspaces allocated
                decoder.static_step(cache, self.ids, self.position, self.slot, self.visible)
        torch.cuda.current_stream().wait_stream(stream)
        # thread_local: other threads' CUDA work (none expected) cannot break the capture
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"), \
                torch.inference_mode():
            self.logits = decoder.static_step(cache, self.ids, self.position, self.slot,
                                              self.visible)
        cache.k[:, :, -1], cache.v[:, :, -1] = saved

    def run(self, token: int, position: int, slot: int, hide: tuple[int, int] | None
            ) -> torch.Tensor:
        self.ids.fill_(token)
        self.position.fill_(position)
        self.slot.fill_(slot)
        torch.le(self.slots, slot, out=self.visible)
        if hide is not None and hide[0] < hide[1]:
            self.visible[hide[0]:hide[1]] = False
        self.graph.replay()
        return self.logits.clone()


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)
