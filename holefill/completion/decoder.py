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

import hashlib
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


INT4_GROUP = 32  # weights per int4 scale/zero pair (the CPU kernel takes 32..256)


def int4_available() -> bool:
    return hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu")


def int4_fits(n: int, k: int, group: int = INT4_GROUP) -> bool:
    """Whether an [n, k] weight fits the CPU int4 kernel (n a multiple of 16, k of the group)."""
    return int4_available() and n % 16 == 0 and k % group == 0


def quantize_int4(w: torch.Tensor, group: int = INT4_GROUP
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric 4-bit quantisation per group of `group` weights along a row: (q [N, K] int32
    in 0..15, scale [N, K/group], minimum [N, K/group]) with w ~ q * scale + minimum. Each
    group's range is the min/max one or one clipped at either end (by 10 or 20%), whichever
    gives the smaller squared error (a GGUF Q4_1 block is reproduced exactly by the unclipped range)."""
    n, k = w.shape
    g = w.detach().float().reshape(n, k // group, group)
    lo0, hi0 = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
    best_q = best_scale = best_lo = best_err = None
    for clip_lo, clip_hi in ((1.0, 1.0), (1.0, 0.9), (0.9, 1.0), (0.9, 0.9), (0.8, 0.8)):
        if True:
            lo, hi = lo0 * clip_lo, hi0 * clip_hi
            scale = ((hi - lo) / 15).clamp(min=1e-10)
            q = ((g - lo) / scale).round().clamp(0, 15)
            err = ((q * scale + lo - g) ** 2).sum(-1, keepdim=True)
            if best_err is None:
                best_q, best_scale, best_lo, best_err = q, scale, lo, err
                continue
            better = err < best_err
            best_q = torch.where(better, q, best_q)
            best_scale = torch.where(better, scale, best_scale)
            best_lo = torch.where(better, lo, best_lo)
            best_err = torch.minimum(err, best_err)
    return (best_q.reshape(n, k).to(torch.int32), best_scale.reshape(n, -1),
            best_lo.reshape(n, -1))


def pack_int4(q: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(packed weight, scales_and_zeros [K/group, N, 2] bf16) for the CPU int4 kernel, which
    computes w = (q - 8) * scale + zero."""
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.contiguous(), 1)
    zero = minimum + 8 * scale
    sz = torch.stack([scale, zero], -1).transpose(0, 1).contiguous().to(torch.bfloat16)
    return packed, sz


def int4_layout_probe() -> str:
    """A fingerprint of the CPU int4 kernel's packed layout: a weight file stores packed int4
    and is only used as it is where the running torch packs the same way."""
    q = (torch.arange(32 * 64, dtype=torch.int32).reshape(32, 64) * 7) % 16
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
    return hashlib.sha256(packed.numpy().tobytes()).hexdigest()[:16]


class Linear:
    """y = x @ W.T (+ b) with the weight stored in the chosen format.

    int8: weight-only int8 per output channel (torch._weight_int8pack_mm). int4: asymmetric
    int4 per group of 32 (torch's CPU int4 kernel, bf16 activations). On our 2-core CPU a 0.5B
    model's 24 layers take ~13 ms per token in int4, 22-38 ms in int8 and 60 ms in bf16: the
    weights do not fit in the caches, so bytes per weight decide. int8 and int4 keep a bf16 copy
    for prefill where `prefill_bf16` (bf16 GEMMs on AVX512-BF16 win from a few rows on)."""

    # Rows from which an int8 / int4 linear uses its bf16 copy (measured: int8 loses to bf16
    # from 8 rows, int4 from 16).
    PREFILL_ROWS = {"int8": 8, "int4": 16}

    def __init__(self, weight: torch.Tensor | None, bias: torch.Tensor | None, fmt: str,
                 prefill_bf16: bool = False) -> None:
        self.fmt = fmt
        self.bias = None
        self.prefill_weight = None
        self.scale = None
        self.group = INT4_GROUP
        if weight is None:  # from_state fills the fields
            return
        self.out_features, self.in_features = weight.shape
        if fmt == "int4" and not int4_fits(*weight.shape):
            self.fmt = fmt = "int8"  # odd shapes (tiny test models): the next best format
        if fmt in ("int8", "int4") and prefill_bf16:
            self.prefill_weight = weight.detach().to(torch.bfloat16).contiguous()
        if fmt in ("int8", "int4") and bias is not None:
            self.bias = bias.detach().float()  # added to the fp32 output
        if fmt == "int4":
            self.weight, self.scale = pack_int4(*quantize_int4(weight))
        elif fmt == "int8":
            w = weight.detach().float()
            scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
            self.weight = (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8).contiguous()
            self.scale = scale.to(torch.bfloat16)
        else:
            dt = torch.float32 if fmt == "float32" else getattr(torch, fmt)
            self.weight = weight.detach().to(dt).contiguous()
            if bias is not None:
                self.bias = bias.detach().to(dt)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.prefill_weight is not None and x.shape[0] >= self.PREFILL_ROWS[self.fmt]:
            y = F.linear(x.to(torch.bfloat16), self.prefill_weight).to(x.dtype)
            return y if self.bias is None else y + self.bias.to(x.dtype)
        if self.fmt in ("int8", "int4"):
            x2 = x.to(torch.bfloat16) if x.dim() == 2 else x.reshape(-1, x.shape[-1]).to(
                torch.bfloat16)
            if self.fmt == "int8":
                y = torch._weight_int8pack_mm(x2, self.weight, self.scale)
            else:
                y = torch.ops.aten._weight_int4pack_mm_for_cpu(x2, self.weight, self.group,
                                                               self.scale)
            if x.dim() != 2:
                y = y.reshape(*x.shape[:-1], -1)
            y = y.to(x.dtype)
            return y if self.bias is None else y + self.bias
        if x.dtype != self.weight.dtype:
            return F.linear(x.to(self.weight.dtype), self.weight, self.bias).to(x.dtype)
        return F.linear(x, self.weight, self.bias)

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """Output rows `index` of the weight as stored, dequantised to fp32 [len(index), K]."""
        if self.prefill_weight is not None:
            return self.prefill_weight[index].float()
        if self.fmt == "int8":
            return self.weight[index].float() * self.scale[index].float()[:, None]
        if self.fmt == "int4":
            raise ValueError("int4 rows come from the layer's bf16 copy, which this one lacks")
        return self.weight[index].float()

    # -- the engine's own weight file (completion/weights.py) -------------------------------

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors that rebuild this linear (int4: packed weight, scales and zeros)."""
        out = {}
        if self.fmt == "int4":
            out[prefix + ".int4"] = self.weight
            out[prefix + ".int4_sz"] = self.scale
        if self.prefill_weight is not None:
            out[prefix + ".bf16"] = self.prefill_weight
        elif self.fmt != "int4":
            out[prefix + ".bf16"] = self.rows(torch.arange(self.out_features)).to(
                torch.bfloat16)
        if self.bias is not None:
            out[prefix + ".bias"] = self.bias.float()
        return out

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], prefix: str, fmt: str,
                   prefill_bf16: bool, device: torch.device, packed_ok: bool = True) -> Linear:
        """Rebuild from `state()`'s tensors in format `fmt`: int4 uses the stored packed
        weight as is where `packed_ok` (the running torch packs int4 the same way), the others
        derive from the bf16 copy."""
        bias = state.get(prefix + ".bias")
        bf16 = state.get(prefix + ".bf16")
        if (fmt != "int4" or prefix + ".int4" not in state or device.type != "cpu"
                or not packed_ok):
            if bf16 is None:
                raise ValueError(f"weights file lacks {prefix}.bf16")
            if fmt == "int4" and device.type != "cpu":
                fmt = "bfloat16"  # the int4 kernel is the CPU's
            return cls(bf16.to(device).float(), None if bias is None else bias.to(device), fmt,
                       prefill_bf16)
        lin = cls(None, None, "int4")
        lin.weight, lin.scale = state[prefix + ".int4"], state[prefix + ".int4_sz"]
        lin.out_features = lin.scale.shape[1]
        lin.in_features = lin.scale.shape[0] * lin.group
        lin.prefill_weight = bf16 if prefill_bf16 else None
        lin.bias = None if bias is None else bias.float()
        return lin


class LMHead:
    """The LM head. A big vocabulary's head is a large share of a small model's weights (Qwen2.5
    0.5B: 151,936 x 896, 136M of 494M). In int4 it costs a third of int8's time, but int4 moves
    logits enough to reorder near-ties, so the `top` best rows of the int4 pass are recomputed
    from the bf16 copy: the argmax and the top candidates are then those of the bf16 head, the
    other logits (which only enter the softmax normaliser) stay int4's."""

    TOP = 32

    def __init__(self, linear: Linear) -> None:
        self.linear = linear
        self.fmt = linear.fmt
        self.rescore = linear.fmt == "int4" and linear.prefill_weight is not None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.linear(x).float()
        if not self.rescore or x.shape[0] >= Linear.PREFILL_ROWS["int4"]:
            return logits  # many rows went through the bf16 copy already
        top = logits.topk(self.TOP, dim=-1).indices  # [T, TOP]
        rows = self.linear.prefill_weight[top.reshape(-1)].reshape(*top.shape, -1)
        exact = torch.einsum("tkh,th->tk", rows.float(), x.float())
        return logits.scatter_(-1, top, exact)

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        return self.linear.rows(index)


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
    positions, and the cache to append to; returns logits (fp32).

    Built from a transformers model (`Decoder(hf_model, dtype)`: local directories, tests) or
    from the engine's own weight file (`Decoder.from_state`: the built-in models, which load
    in about a second without instantiating a transformers model)."""

    def __init__(self, hf_model, dtype: str = "float32", prefill_bf16: bool | None = None) -> None:
        config = hf_model.config
        self._setup(config, dtype, next(hf_model.parameters()).device, prefill_bf16)
        inner, device = hf_model.model, self.device
        act, fmt, pb = self.act_dtype, self.dtype_name, self.prefill_bf16
        # fp32 weights: the embedding stays fp32 (the reference); otherwise bf16 (half the
        # memory, rows are cast when looked up)
        self.embed = inner.embed_tokens.weight.detach().to(
            act if fmt == "float32" or device.type != "cpu" else torch.bfloat16)
        self.layers: list[Layer] = []
        for layer in inner.layers:
            att, mlp = layer.self_attn, layer.mlp
            qkv_w = torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight])
            qkv_b = None
            if att.q_proj.bias is not None:
                qkv_b = torch.cat([att.q_proj.bias, att.k_proj.bias, att.v_proj.bias])
            self.layers.append(Layer(
                ln1=layer.input_layernorm.weight.detach().to(act),
                qkv=Linear(qkv_w, qkv_b, fmt, pb),
                o=Linear(att.o_proj.weight, att.o_proj.bias, fmt, pb),
                ln2=layer.post_attention_layernorm.weight.detach().to(act),
                gate_up=Linear(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]), None, fmt,
                               pb),
                down=Linear(mlp.down_proj.weight, None, fmt, pb),
            ))
        self.norm = inner.norm.weight.detach().to(act)
        # int4 head: the bf16 copy re-scores the top candidates (LMHead), so it is always kept
        self.lm_head = LMHead(Linear(hf_model.lm_head.weight, None, fmt, pb or fmt == "int4"))
        rotary = inner.rotary_emb
        self.inv_freq = rotary.inv_freq.detach().float().to(self.device)
        self.rope_scale = float(getattr(rotary, "attention_scaling", 1.0))

    def _setup(self, config, dtype: str, device: torch.device, prefill_bf16: bool | None
               ) -> None:
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise UnsupportedModel(
                f"the engine decoder supports {SUPPORTED_MODEL_TYPES}, not {config.model_type!r}"
            )
        self.config = config
        if dtype == "int8" and not hasattr(torch.ops.aten, "_weight_int8pack_mm"):
            dtype = "bfloat16"
        if dtype == "int4" and (device.type != "cpu" or not int4_available()):
            dtype = "bfloat16" if device.type != "cpu" else "int8"
        self.dtype_name = dtype
        self.device = device
        # On CPU the residual stream and the cache stay fp32 whatever the weight format: bf16
        # attention over a long cache is 4-8x slower there (RESEARCH §10 and our measurements),
        # and the int8/int4/bf16 linears cast their input themselves. On CUDA all runs in
        # bf16/fp16.
        if self.device.type == "cpu" or dtype in ("float32", "int8", "int4"):
            act = torch.float32
        else:
            act = getattr(torch, dtype)
        self.act_dtype = act
        if prefill_bf16 is None:
            prefill_bf16 = self.device.type == "cpu" and cpu_has_bf16()
        self.prefill_bf16 = bool(prefill_bf16 and dtype in ("int8", "int4"))
        self.n_layers = config.num_hidden_layers
        self.n_heads = config.num_attention_heads
        self.n_kv = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.n_heads
        self.hidden = config.hidden_size
        self.eps = config.rms_norm_eps
        self.vocab_size = config.vocab_size
        self.intermediate = config.intermediate_size
        # One-token decode steps as CUDA graphs (one per cache): a 135M model's step is a few
        # hundred tiny kernels, launch-bound on a GPU (13.8 ms/token on an H200 without).
        self.use_graphs = self.device.type == "cuda"
        self._graphs: dict[int, _GraphStep] = {}

    # -- the engine's own weight file (completion/weights.py) -------------------------------

    def state(self) -> dict[str, torch.Tensor]:
        """Every tensor needed to rebuild this decoder (`from_state`): int4 linears as packed
        int4 plus their bf16 copy, norms in fp32, the embedding in bf16."""
        out: dict[str, torch.Tensor] = {
            "embed": self.embed.to(torch.bfloat16).contiguous(),
            "norm": self.norm.float(),
            "inv_freq": self.inv_freq.float().cpu(),
            "rope_scale": torch.tensor([self.rope_scale]),
        }
        for i, layer in enumerate(self.layers):
            out[f"layers.{i}.ln1"] = layer.ln1.float()
            out[f"layers.{i}.ln2"] = layer.ln2.float()
            for name in ("qkv", "o", "gate_up", "down"):
                out.update(getattr(layer, name).state(f"layers.{i}.{name}"))
        out.update(self.lm_head.linear.state("lm_head"))
        if getattr(self.config, "tie_word_embeddings", False):
            out.pop("lm_head.bf16", None)  # the embedding is the same matrix
        return {k: v.detach().cpu().contiguous() for k, v in out.items()}

    @classmethod
    def from_state(cls, config, state: dict[str, torch.Tensor], dtype: str = "int4",
                   device: str | torch.device = "cpu", prefill_bf16: bool | None = None,
                   int4_layout: str | None = None) -> Decoder:
        """`int4_layout`: the packed layout the file's int4 weights have (int4_layout_probe at
        conversion); where this torch packs differently, int4 is re-quantised from the bf16
        copies (slower to load, same weights)."""
        self = cls.__new__(cls)
        device = torch.device(device)
        self._setup(config, dtype, device, prefill_bf16)
        act, fmt, pb = self.act_dtype, self.dtype_name, self.prefill_bf16
        packed_ok = fmt != "int4" or int4_layout is None or int4_layout == int4_layout_probe()
        if not packed_ok:
            log.warning("the weight file's int4 layout is not this torch's: re-quantising")
        embed = state["embed"].to(device)
        self.embed = embed if device.type == "cpu" and fmt != "float32" else embed.to(act)
        self.layers = []
        for i in range(self.n_layers):
            def lin(name: str, i: int = i) -> Linear:
                return Linear.from_state(state, f"layers.{i}.{name}", fmt, pb, device,
                                         packed_ok)
            self.layers.append(Layer(ln1=state[f"layers.{i}.ln1"].to(device, act),
                                     qkv=lin("qkv"), o=lin("o"),
                                     ln2=state[f"layers.{i}.ln2"].to(device, act),
                                     gate_up=lin("gate_up"), down=lin("down")))
        self.norm = state["norm"].to(device, act)
        if "lm_head.bf16" not in state and getattr(config, "tie_word_embeddings", False):
            state = {**state, "lm_head.bf16": state["embed"]}
        self.lm_head = LMHead(Linear.from_state(state, "lm_head", fmt, pb or fmt == "int4",
                                                device, packed_ok))
        self.inv_freq = state["inv_freq"].float().to(device)
        self.rope_scale = float(state["rope_scale"][0])
        return self

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
        return F.embedding(ids, self.embed).to(self.act_dtype)

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
        cos_h, sin_h = cos[:, None], sin[:, None]  # [T, 1, hd]: broadcast over the heads
        layers = self.layers[first_layer:n_layers]
        for i, layer in enumerate(layers, start=first_layer):
            h = _rms_norm(x, layer.ln1, self.eps)
            qkv = layer.qkv(h)
            # queries and keys rotated together (one pass of small ops instead of two)
            qk = qkv[:, : (nq + nkv) * hd].view(T, nq + nkv, hd)
            qk = (qk * cos_h + _rotate_half(qk) * sin_h).transpose(0, 1)
            q, k = qk[:nq], qk[nq:]
            v = qkv[:, (nq + nkv) * hd :].view(T, nkv, hd).transpose(0, 1)
            cache.k[i, :, start:end] = k
            cache.v[i, :, start:end] = v
            if per_row_attention:
                attn = torch.cat([self._attend(
                    q[:, r:r + 1], cache.k[i, :, :start + r + 1], cache.v[i, :, :start + r + 1],
                    row_masks[r], False) for r in range(T)], dim=1)
            else:
                attn = self._attend(q, cache.k[i, :, :end], cache.v[i, :, :end], mask, causal)
            x = x + layer.o(attn.transpose(0, 1).reshape(T, nq * hd))
            h = _rms_norm(x, layer.ln2, self.eps)
            gu = layer.gate_up(h)
            g, u = gu.split(self.intermediate, dim=-1)
            x = x + layer.down(F.silu(g) * u)
        cache.length = end
        if return_hidden:
            return x
        return self.logits(x if all_logits else x[-1:])

    # Query rows up to which attention on the CPU is two batched matmuls: for a decode step the
    # fused SDPA kernel costs ~0.23 ms per layer at 1k context (5 ms/token for 24 layers), the
    # matmuls a fraction of that.
    SMALL_ATTENTION_ROWS = 8

    def _attend(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor | None, causal: bool) -> torch.Tensor:
        """softmax(q k^T / sqrt(d) + mask) v for q [nq, T, hd] over keys/values [nkv, S, hd]
        (each group of nq/nkv query heads shares one key/value head); -> [nq, T, hd]."""
        nq, T, hd = q.shape
        nkv = keys.shape[0]
        if self.device.type != "cpu" or T > self.SMALL_ATTENTION_ROWS or causal:
            return F.scaled_dot_product_attention(
                q.unsqueeze(0), keys.unsqueeze(0), values.unsqueeze(0), attn_mask=mask,
                is_causal=causal, enable_gqa=nq != nkv)[0]
        g = nq // nkv
        scores = torch.matmul(q.reshape(nkv, g * T, hd), keys.transpose(1, 2))
        scores = scores.view(nkv, g, T, -1) * (hd ** -0.5)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        probs = torch.softmax(scores, dim=-1).view(nkv, g * T, -1)
        return torch.matmul(probs, values).view(nq, T, hd)

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
    if x.dtype == torch.float32 and weight.dtype == torch.float32:
        return F.rms_norm(x, weight.shape, weight, eps)  # one fused op (CPU: fp32 stream)
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)
