"""Superposed decoding (SPD): k drafts from one forward pass per position (RESEARCH §2).

The k alive drafts always have the same length. Each step feeds ONE superposed input: the
embeddings of the drafts' last tokens weighted by the softmax of their cumulative scores (weights
of drafts that end in the same token add up). The shared next-token distribution, sharpened by a
low temperature and cut to the top `n_token_sample`, is mixed per draft with an n-gram model of the
user's workspace (log-linear, weight α; a draft whose context the n-gram never saw gets a -200
penalty instead of -inf), and the k best of the k x n candidates become the new drafts.

All drafts share the session's scratch slots: one slot per step holds the superposed token, never
any draft's real tokens, and the engine drops the scratch slots after the request. A draft the user
accepts reaches the cache as real text through the editor's didChange, so superposed entries are
never reused as if real. With k = 1 and no n-gram, this is greedy decoding token for token.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from holefill.completion.postprocess import CursorContext, should_stop

PENALTY = 200.0  # RESEARCH §2.3: drafts with no n-gram support are demoted, not NaN
SPARE_STEPS = 8


@dataclass
class SPDParams:
    k: int = 3
    # Hyper-parameters of params/p15_d3_mixed.json (RESEARCH §2.3).
    alpha: float = 0.54  # n-gram weight; 0 = no n-gram
    temperature: float = 0.06
    n_token_sample: int = 9
    penalty: float = PENALTY

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"drafts must be at least 1, not {self.k}")
        if not 0.0 <= self.alpha < 1.0:
            raise ValueError(f"the n-gram weight must be in [0, 1), not {self.alpha}")
        if self.temperature <= 0:
            raise ValueError("the superposed decoding temperature must be positive")
        self.n_token_sample = max(self.n_token_sample, self.k)


@dataclass
class RawDraft:
    ids: list[int]
    score: float  # cumulative SPD score (what ranks the candidates)
    logprobs: list[float] = field(default_factory=list)  # model log-probs, T = 1
    remaining: str = ""  # characters of `heal` still to re-spell
    finished: bool = False  # EOS or the stop rule ended it (not the token or step limit)


@dataclass
class SPDOutput:
    drafts: list[RawDraft]  # best cumulative score first
    cancelled: bool
    forwards: int  # model forward passes made (one per generated position)


def params_from(settings) -> SPDParams:
    return SPDParams(k=settings.drafts, alpha=settings.ngram_alpha,
                     temperature=settings.spd_temperature)


def available(decoder) -> bool:
    """SPD feeds input embeddings: the engine's own decoder can, the transformers fallback not."""
    return hasattr(decoder, "embed") and hasattr(decoder, "embed_tokens")


def superpose_weights(last_tokens: list[int], scores: list[float]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(token ids, weights): softmax of the drafts' cumulative scores, summed per token id."""
    ids = torch.tensor(last_tokens, dtype=torch.long)
    w = torch.softmax(torch.tensor(scores, dtype=torch.float64), 0)
    uniq, inverse = torch.unique(ids, return_inverse=True)
    weights = torch.zeros(uniq.shape[0], dtype=torch.float64).index_add_(0, inverse, w)
    return uniq, weights / weights.sum()


def superposed_embedding(decoder, last_tokens: list[int], scores: list[float]) -> torch.Tensor:
    ids, weights = superpose_weights(last_tokens, scores)
    rows = decoder.embed_tokens(ids.to(decoder.embed.device))
    return (weights.to(rows.dtype).to(rows.device)[:, None] * rows).sum(0, keepdim=True)


def decode(engine, session, logits: torch.Tensor, position: int, hide: tuple[int, int],
           heal: str, max_new: int, ctx: CursorContext, cancelled: Callable[[], bool],
           params: SPDParams, ngram=None, context: list[int] | None = None) -> SPDOutput:
    """Superposed decoding from the prefill's `logits` into the session's scratch slots.
    `engine` gives vocab (healing), eos_ids and tokenizer; `context` is the prompt's last tokens
    (n-gram context)."""
    k, temp = params.k, params.temperature
    alpha = params.alpha if ngram is not None else 0.0
    context = list(context or [])
    decoder = session.decoder
    eos = engine.eos_ids
    alive = [RawDraft(ids=[], score=0.0, remaining=heal)]
    done: list[RawDraft] = []
    forwards = 0
    # Once a draft is finished, the others get as many more steps as it took (at least
    # SPARE_STEPS): one draft that runs on (an unclosed bracket) must not hold back the rest.
    deadline: int | None = None

    def text_of(ids: list[int]) -> str:
        return engine.tokenizer.decode(ids, skip_special_tokens=True)[len(heal):]

    for _ in range(max_new + 8):  # a few extra steps for the healed characters (as greedy)
        if cancelled():
            return SPDOutput([], True, forwards)
        cands: list[tuple[float, int, int, float]] = []  # (score, draft, token, model logprob)
        shared = None
        for d, draft in enumerate(alive):
            if draft.remaining:
                allowed = engine.vocab.allowed(draft.remaining).to(logits.device)
                scores = torch.full_like(logits, -math.inf)
                scores[allowed] = logits[allowed]
                top, lp, lpm = _top(scores, temp, params.n_token_sample)
            else:
                if shared is None:
                    shared = _top(logits, temp, params.n_token_sample)
                top, lp, lpm = shared
            tokens = top.tolist()
            s = lp.tolist()
            if alpha > 0:
                png = ngram.probs(context + draft.ids, tokens)
                mixed = [(1 - alpha) * x + alpha * math.log(p) if p > 0 else -math.inf
                         for x, p in zip(s, png, strict=True)]
                s = mixed if any(x > -math.inf for x in mixed) else [
                    (1 - alpha) * x - params.penalty for x in s]
            for t, sc, m in zip(tokens, s, lpm.tolist(), strict=True):
                if sc > -math.inf:
                    cands.append((draft.score + sc, d, t, m))
        cands.sort(key=lambda c: -c[0])
        new_alive: list[RawDraft] = []
        for score, d, t, m in cands[:2 * k]:  # the original keeps the 2k best candidates
            if len(new_alive) >= k:
                break
            parent = alive[d]
            if t in eos:
                done.append(RawDraft(parent.ids, score, parent.logprobs + [m], "", True))
                continue
            remaining = parent.remaining
            if remaining:
                piece = engine.vocab.text(t)
                remaining = remaining[len(piece):] if len(piece) < len(remaining) else ""
            child = RawDraft(parent.ids + [t], score, parent.logprobs + [m], remaining)
            if not parent.remaining:  # greedy checks the stop rule once healing is done
                if should_stop(text_of(child.ids), ctx):
                    child.finished = True
                    done.append(child)
                    continue
                if len(child.logprobs) >= max_new:
                    done.append(child)
                    continue
            new_alive.append(child)
        done.sort(key=lambda r: -r.score)
        del done[k:]
        alive = new_alive
        if deadline is None and any(d.finished for d in done):
            deadline = forwards + max(SPARE_STEPS, forwards)
        if not alive or (deadline is not None and forwards >= deadline):
            break
        # Scores only fall: once k drafts are done and no alive draft beats them, stop.
        if len(done) >= k and max(a.score for a in alive) <= done[-1].score:
            alive = []
            break
        if session.scratch_room <= 0:
            break
        emb = superposed_embedding(decoder, [a.ids[-1] for a in alive], [a.score for a in alive])
        pos = torch.tensor([position], device=decoder.device)
        logits = decoder.forward(session.cache, embeds=emb, positions=pos, hide=hide)[-1]
        forwards += 1
        position += 1
    drafts = sorted(done + alive, key=lambda r: -r.score)[:k]
    return SPDOutput(drafts, False, forwards)


def _top(logits: torch.Tensor, temp: float, n: int
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-n tokens of softmax(logits / T), their renormalised log-probs, and their log-probs at
    T = 1 (over the same, possibly masked, logits: the engine's score)."""
    n = min(n, int(torch.isfinite(logits).sum()))
    vals, top = torch.topk(logits, n)
    lp_t = torch.log_softmax(vals / temp, -1)  # renormalised over the kept tokens
    lpm = vals - torch.logsumexp(logits, -1)
    return top, lp_t, lpm


def complete_drafts(engine, session, req, result, ctx: CursorContext, hole, offset: int,
                    logits: torch.Tensor, position: int, hide: tuple[int, int], heal: str,
                    max_new: int, context: list[int], cancelled: Callable[[], bool],
                    started: float):
    """The engine's multi-draft path after the prefill: decode k drafts, post-process and check
    each, drop duplicates, fill `result` with Draft items best first."""
    from holefill.completion.engine import RawDraft, finish_drafts

    settings = engine.settings
    ngram = engine.ngrams if settings.ngram else None
    params = params_from(settings)
    out = decode(engine, session, logits, position, hide, heal, max_new, ctx, cancelled, params,
                 ngram, context)
    t3 = time.perf_counter()
    timings = result.timings_ms
    timings["decode"] = (t3 - started) * 1000
    timings["decode_tokens"] = float(out.forwards + 1)
    if out.cancelled:
        result.cancelled = True
        return result
    raws = []
    for raw in out.drafts:
        text = engine.tokenizer.decode(raw.ids, skip_special_tokens=True)
        text = text[len(heal):] if text.startswith(heal) else text
        score = sum(raw.logprobs) / len(raw.logprobs) if raw.logprobs else 0.0
        raws.append(RawDraft(text, raw.finished, score))
    # best first by the engine's score (mean log-probability), like a single greedy draft
    finish_drafts(result, raws, req, offset, ctx, hole.expected if hole is not None else None,
                  settings)
    return result
