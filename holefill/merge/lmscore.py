"""Code-LM likelihood of candidate resolutions in their context (an optional classifier signal).

For a hunk with context ``before`` / ``after`` and candidate texts ``c_1..c_K`` the scorer computes,
with the embedded causal LM,

    cand_lp_k  = log P(c_k | before)            (sum over the candidate's tokens)
    after_lp_k = log P(after | before, c_k)     (sum over the first ``after_tokens`` tokens)

``before`` is run once and its KV cache is shared by the batch of candidates (right padding needs
no mask under causal attention: padding comes after every scored position).  The joint
``cand_lp + after_lp`` compares candidates of different lengths fairly: every candidate explains
the same ``after``.  Contexts are truncated (``before_tokens`` / ``after_tokens``) to bound cost.
Nothing here runs user code; the texts are only tokenised.

Measured on the dev repositories (BENCHMARKS.md, merge): as a re-ranker of the classifier's top 3
it picks the human resolution no more often than chance, so the resolver does not use it;
``scripts/train_merge_classifier.py --lm-eval N`` repeats the measurement.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["LMScore", "LMScorer"]


@dataclass(frozen=True)
class LMScore:
    """Log-probabilities (nats) of one candidate and of the following context given it."""

    cand_lp: float
    after_lp: float
    n_tokens: int  # candidate tokens scored

    @property
    def total(self) -> float:
        return self.cand_lp + self.after_lp


class LMScorer:
    """Scores candidate texts with a transformers causal LM (bf16 on CPUs with fast bf16)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        before_tokens: int = 96,
        after_tokens: int = 24,
        max_candidate_tokens: int = 160,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.before_tokens = before_tokens
        self.after_tokens = after_tokens
        self.max_candidate_tokens = max_candidate_tokens
        self._lock = threading.Lock()

    @classmethod
    def load(cls, **kw: Any) -> LMScorer:
        """The embedded model (local files only; never downloads at run time)."""
        import torch

        from holefill.completion.model import cpu_has_bf16, load_model

        loaded = load_model(allow_download=False)
        model = loaded.reference()
        if next(model.parameters()).device.type == "cpu" and cpu_has_bf16():
            model = model.to(torch.bfloat16)  # prefill-shaped work: bf16 GEMM is ~3x fp32 here
        model.eval()
        return cls(model, loaded.tokenizer, **kw)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def score(self, before: str, candidates: Sequence[str], after: str) -> list[LMScore] | None:
        """One LMScore per candidate, or None when a candidate is too long to score."""
        import torch

        enc = [self._encode(c) for c in candidates]
        if any(len(e) > self.max_candidate_tokens for e in enc):
            return None
        pre = self._encode(before)[-self.before_tokens :]
        post = self._encode(after)[: self.after_tokens]
        bos = self.tokenizer.bos_token_id
        if bos is None:
            bos = self.tokenizer.eos_token_id
        pre = [int(bos)] + pre  # every candidate token then has a predecessor
        seqs = [e + post for e in enc]
        width = max(1, max(len(s) for s in seqs))
        dev = next(self.model.parameters()).device
        with self._lock, torch.inference_mode():
            out = self.model(torch.tensor([pre], device=dev), use_cache=True, logits_to_keep=1)
            first = torch.log_softmax(out.logits[0, -1].float(), -1)
            cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
            cache.batch_repeat_interleave(len(seqs))
            pad = int(self.tokenizer.eos_token_id or 0)
            ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=dev)
            hidden = self.model.model(input_ids=ids, cache=cache, use_cache=True)
            logits = self.model.lm_head(hidden.last_hidden_state[:, : width - 1]).float()
            logp = torch.log_softmax(logits, -1)
        res = []
        for k, (e, s) in enumerate(zip(enc, seqs, strict=True)):
            lps: list[float] = []
            for j, tok in enumerate(s):
                lps.append(float(first[tok]) if j == 0 else float(logp[k, j - 1, tok]))
            res.append(LMScore(sum(lps[: len(e)]), sum(lps[len(e) :]), len(e)))
        return res

