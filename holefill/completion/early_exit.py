"""Early exit for decoding (RESEARCH §3): lossless self-speculation and a SEC-style stop
controller, both driven by small heads trained for the embedded model.

- Exit heads: for a few layers l, a rank-r residual adapter on the layer's normalised hidden
  state (x + x A^T B^T, a low-rank "tuned lens") followed by the model's own final norm and LM
  head restricted to a frequent-token vocabulary (the full LM head costs as much as many layers
  per token on CPU, RESEARCH §10). Trained offline by scripts/train_exit_heads.py to predict the
  full model's greedy token (ridge-regression start, then cross-entropy).
- Self-speculation (LayerSkip, §3.5): the first E layers plus the exit head draft k-1 tokens; one
  batched pass of layers E..L over the k drafted positions verifies them. The verifier's argmax
  is what is emitted, so the output is greedy's token for token; the draft quality only
  changes the speed. Bit for bit so on CPU with int8 weights (the default): the verify pass
  (`verify_forward`) attends once per row, as a one-token step does; a single masked
  attention call over the k rows rounds differently and flipped int8 near-ties. (On CUDA plain
  steps replay a graph that attends over the whole cache, so bf16 near-ties can still flip.)
  The early layers of the drafted tokens are reused as they are: they saw exactly the tokens
  greedy would have fed.
- Prompt lookup (lookup.py, early_exit="lookup"): drafts copied from the context, verified by
  all layers in the same kind of pass; "selfspec+lookup" falls back to exit-head drafts where
  the context has no match.
- Stop controller (SEC, §3.3): one shared Linear(hidden + 3, 3) over the normalised hidden state
  and three confidence features of that layer's logits: STOP ("even the full model is wrong
  here"), EXIT, CONTINUE. The engine applies STOP to the final layer of each generated token and
  cuts the draft before a token it expects to be wrong.
- Lossy exit (behind a flag, early_exit="lossy"): SEC's EXIT at layer E emits the exit head's
  token and fills the skipped layers' K/V by state copying. Output may differ from greedy.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from holefill.completion.decoder import Decoder, Linear, LMHead
from holefill.completion.lookup import PromptLookup

FORMAT = "holefill-exit-heads/1"
DEFAULT_PATH = Path(__file__).with_name("exit_heads.safetensors")
STOP, EXIT, CONTINUE = 0, 1, 2


class HeadsMismatch(ValueError):
    """The heads file was trained for another model or tokenizer."""


def model_fingerprint(model) -> str:
    """Identity of a model's weights, independent of device and of fp32/bf16 loading: shape of
    the config plus a strided sample of the embedding and the final norm, rounded to bf16.
    `model`: a transformers model or the engine's Decoder."""
    cfg = model.config
    h = hashlib.sha256(f"{cfg.model_type}:{cfg.num_hidden_layers}:{cfg.hidden_size}:"
                       f"{cfg.vocab_size}".encode())
    if isinstance(model, Decoder):
        embed, norm = model.embed, model.norm
    else:
        embed, norm = model.model.embed_tokens.weight, model.model.norm.weight
    for t in (embed[::257], norm):
        h.update(t.detach().to("cpu", torch.bfloat16).view(torch.int16).numpy().tobytes())
    return h.hexdigest()[:32]


def tokenizer_fingerprint(tokenizer) -> str:
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:32]


def rms(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """RMS normalisation without a gain (scale-free input for the adapters and the classifier)."""
    xf = x.float()
    return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)


def confidence(logits: torch.Tensor) -> torch.Tensor:
    """[..., 3]: top-1 log-probability, top-1 minus top-2 log-probability, entropy."""
    logp = torch.log_softmax(logits.float(), -1)
    top = logp.topk(2, dim=-1).values
    entropy = -(logp.exp() * logp.clamp(min=-1e4)).sum(-1)  # -inf logits: 0, not nan
    return torch.stack([top[..., 0], top[..., 0] - top[..., 1], entropy], -1)


def sec_labels(correct: torch.Tensor) -> torch.Tensor:
    """SEC controller labels [layers, N] from `correct` [layers, N] (bool: that layer's head
    predicts the true token; the last row is the final layer). first_correct = the first layer
    from which a head is right; EXIT at layers >= first_correct, CONTINUE below it. STOP wherever
    the final layer is wrong (SEC: "no layer is right"; ours acts on the final layer's errors,
    so a token only an intermediate head gets right is a STOP too)."""
    n_layers = correct.shape[0]
    first = torch.where(correct.any(0), correct.float().argmax(0), n_layers)
    depth = torch.arange(n_layers)[:, None]
    labels = torch.where(depth >= first[None, :], EXIT, CONTINUE)
    return torch.where(~correct[-1][None, :], STOP, labels)


@dataclass
class ExitHeads:
    """Trained heads for one model: adapters per exit layer, the draft vocabulary and the stop
    classifier (all fp32, CPU; `bind` puts them on a decoder's device)."""

    down: dict[int, torch.Tensor]  # layer -> [rank, hidden]
    up: dict[int, torch.Tensor]  # layer -> [hidden, rank]
    vocab: torch.Tensor  # [Vd] token ids the exit heads can predict
    stop_weight: torch.Tensor  # [3, hidden + 3]
    stop_bias: torch.Tensor  # [3]
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def layers(self) -> list[int]:
        return sorted(self.down)

    @property
    def default_layer(self) -> int:
        return int(self.meta.get("default_layer", self.layers[0]))

    @property
    def stop_threshold(self) -> float:
        return float(self.meta.get("stop_threshold", 0.5))

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        tensors = {"vocab": self.vocab.to(torch.int32).contiguous(),
                   "stop.weight": self.stop_weight.contiguous(),
                   "stop.bias": self.stop_bias.contiguous()}
        for layer in self.layers:  # fp16 on disk: a few MB for many layers
            tensors[f"layer{layer}.down"] = self.down[layer].half().contiguous()
            tensors[f"layer{layer}.up"] = self.up[layer].half().contiguous()
        save_file(tensors, str(path), metadata={**self.meta, "format": FORMAT})

    @classmethod
    def load(cls, path: str | Path, model=None, tokenizer=None) -> ExitHeads:
        """Load a heads file; with a model and tokenizer given, refuse a file trained for
        others (its adapters would be meaningless, its vocabulary ids wrong)."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"exit heads file not found: {path}")
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
        if meta.get("format") != FORMAT:
            raise HeadsMismatch(f"{path}: not an exit heads file of format {FORMAT}")
        if model is not None and meta.get("model_fingerprint") != model_fingerprint(model):
            raise HeadsMismatch(f"{path} was trained for another model "
                                f"({meta.get('model_name', '?')}); retrain it with "
                                "scripts/train_exit_heads.py")
        if tokenizer is not None and (
                meta.get("tokenizer_fingerprint") != tokenizer_fingerprint(tokenizer)):
            raise HeadsMismatch(f"{path} was trained with another tokenizer; retrain it with "
                                "scripts/train_exit_heads.py")
        down, up = {}, {}
        for key, value in tensors.items():
            if key.startswith("layer"):
                name, part = key.split(".")
                (down if part == "down" else up)[int(name[5:])] = value.float()
        return cls(down=down, up=up, vocab=tensors["vocab"].long(),
                   stop_weight=tensors["stop.weight"].float(),
                   stop_bias=tensors["stop.bias"].float(), meta=meta)

    def bind(self, decoder: Decoder) -> BoundHeads:
        return BoundHeads(self, decoder)


class BoundHeads:
    """ExitHeads placed on a decoder: draft logits over the frequent vocabulary and stop
    probabilities, in the decoder's device and dtype."""

    def __init__(self, heads: ExitHeads, decoder: Decoder) -> None:
        self.heads = heads
        self.decoder = decoder
        dev, act = decoder.device, decoder.act_dtype
        self.vocab = heads.vocab.to(dev)
        self.down = {k: v.to(dev, act) for k, v in heads.down.items()}
        self.up = {k: v.to(dev, act) for k, v in heads.up.items()}
        self.lm_head = _subset_linear(decoder.lm_head, heads.vocab.to(decoder.device))
        self.stop_weight = heads.stop_weight.to(dev)
        self.stop_bias = heads.stop_bias.to(dev)

    def draft_logits(self, h: torch.Tensor, layer: int) -> torch.Tensor:
        """Logits over `vocab` for residual-stream rows `h` [T, hidden] at `layer`."""
        x = rms(h).to(h.dtype)
        a = x + (x @ self.down[layer].T) @ self.up[layer].T
        d = self.decoder
        return self.lm_head(_norm(a, d.norm, d.eps)).float()

    def draft_token(self, h: torch.Tensor, layer: int) -> tuple[int, float]:
        """The exit head's token for the last row of `h` and its probability."""
        probs = torch.softmax(self.draft_logits(h[-1:], layer)[0], -1)
        p, i = probs.max(-1)
        p_i = torch.stack([p, i.to(p.dtype)]).tolist()  # one device sync
        return int(self.vocab[int(p_i[1])]), float(p_i[0])

    def controller(self, h: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """SEC controller probabilities [STOP, EXIT, CONTINUE] for one position from its hidden
        state [hidden] and that layer's logits (final layer: the model's; else its head's)."""
        feats = torch.cat([rms(h.reshape(-1)), confidence(logits.reshape(-1))])
        return torch.softmax(F.linear(feats, self.stop_weight, self.stop_bias), -1)

    def stop_prob(self, h: torch.Tensor, logits: torch.Tensor) -> float:
        return float(self.controller(h, logits)[STOP])

    def exit_prob(self, h: torch.Tensor, logits: torch.Tensor) -> float:
        """P(EXIT), or 0 where EXIT is not the controller's argmax (SEC's rule)."""
        q = self.controller(h, logits)
        return float(q[EXIT]) if int(q.argmax()) == EXIT else 0.0


def _norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * rms(x, eps).to(x.dtype)


def _subset_linear(head: LMHead, rows: torch.Tensor) -> Linear:
    """The LM head restricted to `rows`, in the head's own format (int8 rows are re-quantised
    from their dequantised values, which gives back the same int8 values and scales; int4 rows
    come from the head's bf16 copy)."""
    return Linear(head.rows(rows), None, head.fmt)


@dataclass
class SpecStats:
    rounds: int = 0  # verification passes
    drafted: int = 0  # draft tokens proposed
    accepted: int = 0  # draft tokens the verifier agreed with and that were used
    plain: int = 0  # plain one-token steps
    exited: int = 0  # lossy mode: tokens whose layers >= E were skipped (state copying)
    lookup_rounds: int = 0  # verification passes of prompt-lookup drafts (part of `rounds`)
    lookup_drafted: int = 0  # of `drafted`
    lookup_accepted: int = 0  # of `accepted`


class Stepper:
    """Feeds accepted tokens to the model one at a time and returns the full model's next-token
    logits (and final hidden state), either by plain steps or by speculation: exit-head drafts
    (`heads`, self-speculation) and/or prompt-lookup drafts (`lookup`, tried first).

    Speculation keeps verified (draft token, logits) pairs queued; while the caller's tokens
    match the queue, a step costs nothing. A mismatch (or a constrained step) drops the queue
    and rewinds the cache to the accepted tokens. The cache always holds, at every layer, exactly
    the tokens fed so far, plus the queued ones (`settle` drops those).
    """

    def __init__(self, decoder: Decoder, cache, position: int, hide: tuple[int, int] | None,
                 heads: BoundHeads | None = None, exit_layer: int = 0, tokens: int = 4,
                 min_confidence: float = 0.0, exit_threshold: float | None = None,
                 lookup: PromptLookup | None = None) -> None:
        if heads is not None and exit_layer not in heads.heads.down:
            raise ValueError(f"no exit head for layer {exit_layer} "
                             f"(trained layers: {heads.heads.layers})")
        self.decoder = decoder
        self.cache = cache
        self.position = position  # position of the next token fed
        self.hide = hide
        self.heads = heads
        self.exit_layer = exit_layer
        # Verification runs below Linear.PREFILL_ROWS rows so that an int8 decoder uses the
        # same int8 kernels as a plain step (its bf16 prefill weights would change the logits).
        self.tokens = max(1, min(tokens, Linear.PREFILL_ROWS.get(decoder.dtype_name, 8) - 1))
        # Drafting stops at a draft the exit head is less sure of: an unsure draft is usually
        # rejected, and stopping early costs nothing (the verifier then finishes the layers of
        # the tokens drafted so far, the work a plain step would have done anyway).
        self.min_confidence = min_confidence
        # Lossy exit (SEC, behind a flag): with a threshold, a token whose controller says EXIT
        # at layer E with more than this probability skips layers >= E.
        self.exit_threshold = exit_threshold
        # Prompt lookup (lookup.py): drafts copied from the context, verified by the full
        # model; with heads too, exit-head drafts where the context has no match.
        self.lookup = lookup
        self.queue: list[tuple[int, torch.Tensor, torch.Tensor, bool]] = []  # ..., from lookup
        self.stats = SpecStats()

    @property
    def room(self) -> int:
        """Free cache slots once the queue is dropped."""
        return self.cache.capacity - self.cache.length + len(self.queue)

    def settle(self) -> None:
        """Drop queued speculation: the cache holds exactly the tokens fed."""
        self.cache.length -= len(self.queue)
        self.queue = []

    def step(self, token: int, speculate: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed `token`; return the full model's logits [vocab] for the next token and the
        final residual stream [hidden] at `token`."""
        if self.lookup is not None:
            self.lookup.push(token)
        if self.queue and self.queue[0][0] == token:
            _, logits, hidden, looked_up = self.queue.pop(0)
            self.position += 1
            self.stats.accepted += 1
            self.stats.lookup_accepted += looked_up
            return logits, hidden
        self.settle()
        k = min(self.tokens, self.cache.capacity - self.cache.length)
        if self.heads is not None and self.exit_threshold is not None:
            return self._lossy(token, speculate)
        if self.lookup is not None and speculate and k >= 2:
            drafts = self.lookup.draft(k - 1)
            if drafts:
                return self._verify_lookup(token, drafts)
        if self.heads is None or not speculate or k < 2:
            self.stats.plain += 1
            x = self._forward(torch.tensor([token]), 0, None, self.position)
            self.position += 1
            return self.decoder.logits(x)[-1], x[-1]
        return self._round(token, k)

    def _forward(self, ids: torch.Tensor | None, first: int, last: int | None, position: int,
                 embeds: torch.Tensor | None = None) -> torch.Tensor:
        dev = self.decoder.device
        t = ids.shape[0] if ids is not None else embeds.shape[0]
        positions = torch.arange(position, position + t, device=dev)
        return self.decoder.forward(
            self.cache, None if ids is None else ids.to(dev), embeds=embeds, positions=positions,
            hide=self.hide, first_layer=first, n_layers=last, return_hidden=True)

    def _round(self, token: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        E, start, pos = self.exit_layer, self.cache.length, self.position
        hs, drafts, cur = [], [], token
        for i in range(k):  # draft: the first E layers, one token at a time
            h = self._forward(torch.tensor([cur]), 0, E, pos + i)
            hs.append(h)
            if i == k - 1:
                break
            cur, p = self.heads.draft_token(h, E)
            if p < self.min_confidence:
                break
            drafts.append(cur)
        self.cache.length = start  # verify: layers E..L over all drafted positions at once
        x = verify_forward(self.decoder, self.cache, torch.cat(hs), pos, self.hide, E)
        return self._queue_verified(x, drafts, from_lookup=False)

    def _verify_lookup(self, token: int, drafts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """All layers over `token` and its lookup drafts in one pass; queue the drafts."""
        ids = torch.tensor([token] + drafts, device=self.decoder.device)
        x = verify_forward(self.decoder, self.cache, self.decoder.embed_tokens(ids),
                           self.position, self.hide)
        return self._queue_verified(x, drafts, from_lookup=True)

    def _queue_verified(self, x: torch.Tensor, drafts: list[int], from_lookup: bool
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """After a verify pass over the fed token and its drafts (final residual rows `x`):
        queue each draft with the full model's output behind it; return the fed token's."""
        logits = self.decoder.logits(x)
        st = self.stats
        st.rounds += 1
        st.drafted += len(drafts)
        if from_lookup:
            st.lookup_rounds += 1
            st.lookup_drafted += len(drafts)
        self.queue = [(d, logits[i + 1], x[i + 1], from_lookup) for i, d in enumerate(drafts)]
        self.position += 1
        return logits[0], x[0]

    def _lossy(self, token: int, allowed: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """SEC early exit: layers < E; if the controller says EXIT, the exit head's logits
        (over the full vocabulary, -inf outside the draft vocabulary) and K/V of layers >= E
        by state copying; else the remaining layers as usual."""
        E, pos = self.exit_layer, self.position
        h = self._forward(torch.tensor([token]), 0, E, pos)
        self.position += 1
        if allowed:
            draft = self.heads.draft_logits(h, E)
            if self.heads.exit_prob(h[-1], draft[-1]) > self.exit_threshold:
                copy_state(self.decoder, self.cache, h, E, pos, self.cache.length - 1)
                self.stats.exited += 1
                logits = torch.full((self.decoder.vocab_size,), -math.inf,
                                    device=draft.device)
                logits[self.heads.vocab] = draft[-1]
                return logits, h[-1]
        self.stats.plain += 1
        self.cache.length -= 1
        x = self._forward(None, E, None, pos, embeds=h)
        return self.decoder.logits(x)[-1], x[-1]


@torch.inference_mode()
def verify_forward(dec: Decoder, cache, x: torch.Tensor, position: int,
                   hide: tuple[int, int] | None, first_layer: int = 0) -> torch.Tensor:
    """Layers [first_layer, L) over T rows `x` (the residual stream entering first_layer, or
    the embeddings) appended to `cache` at `position`..: the residual stream [T, hidden] after
    the last layer, bit for bit what T one-token `dec.forward` calls give.

    Why not a plain `dec.forward` over the T rows: its one attention call over a causal mask
    rounds differently (see `per_row_attention`). The linears and norms still run on all T rows
    (int8 weight-only GEMV rows, the CPU default, do not depend on the row count; float32 GEMM
    rows differ from GEMV by ~1e-7, which only an exact tie would notice). The extra attention
    calls cost ~0.1-0.15 of a one-token step per row on the 2-core CPU (1-1.5k tokens of
    context), which is why verified rows are not free there."""
    positions = torch.arange(position, position + x.shape[0], device=x.device)
    return dec.forward(cache, embeds=x, positions=positions, hide=hide, first_layer=first_layer,
                       return_hidden=True, per_row_attention=True)


@torch.inference_mode()
def copy_state(dec: Decoder, cache, h: torch.Tensor, first_layer: int, position: int,
               slot: int) -> None:
    """State copying (SEC, CALM): K/V of layers >= first_layer for one token from its hidden
    state at first_layer (each layer's input norm and K/V projections, no attention or MLP), so
    later tokens find an entry at every layer."""
    nq, nkv, hd = dec.n_heads, dec.n_kv, dec.head_dim
    cos, sin = dec.rope(torch.tensor([position], device=h.device))
    for j in range(first_layer, dec.n_layers):
        layer = dec.layers[j]
        qkv = layer.qkv(_norm(h, layer.ln1, dec.eps))
        k = qkv[:, nq * hd:(nq + nkv) * hd].view(1, nkv, hd).transpose(0, 1)
        v = qkv[:, (nq + nkv) * hd:].view(1, nkv, hd).transpose(0, 1)
        k = k * cos + torch.cat([-k[..., hd // 2:], k[..., :hd // 2]], dim=-1) * sin
        cache.k[j, :, slot:slot + 1] = k
        cache.v[j, :, slot:slot + 1] = v


def load_default(hf_model, tokenizer, path: str | Path | None = None) -> ExitHeads:
    return ExitHeads.load(path or DEFAULT_PATH, hf_model, tokenizer)


def check_threshold(value: float) -> float:
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ValueError(f"stop threshold must be in [0, 1], not {value}")
    return value


def first_step(decoder: Decoder, cache, ids: list[int], position: int,
               hide: tuple[int, int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Write `ids` to the cache from `position` on: the last token's logits [vocab] and final
    residual stream [hidden] (the stop controller's input for the first generated token)."""
    dev = decoder.device
    positions = torch.arange(position, position + len(ids), device=dev)
    x = decoder.forward(cache, torch.tensor(ids, device=dev), positions=positions, hide=hide,
                        return_hidden=True)[-1:]
    return decoder.logits(x)[-1], x[-1]
