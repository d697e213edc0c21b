"""Pattern classifier: which candidate resolution of a conflict hunk is right, and how sure.

The model is a conditional-logit ranker over the fixed pattern set ``ALL_PATTERNS`` plus a ``NONE``
class ("no candidate is right").  The score of pattern ``p`` for a hunk is

    s_p = W[p] . h + w . c_p + b[p]        (linear model)
    s_p = v . relu(U [h; c_p; onehot(p)]) + W[p] . h + w . c_p + b[p]   (with hidden layer)

where ``h`` are hand-crafted features of the aligned token sequences and edit types of the hunk
(sizes, similarities, pure insertion/deletion, token-level merge outcome, imports, ...) and ``c_p``
are features of the candidate text (does it keep both sides' new tokens, re-introduce deleted ones,
duplicate lines, change the tree-sitter error count of the surrounding context).  Patterns that are
not available for a hunk (``TOKEN_MERGE`` needs a clean token merge; ``TOKEN_<P>`` needs token
conflicts) are masked.  Training maximises the probability mass on the set of patterns whose text
equals the human resolution (whitespace-normalised), or on ``NONE`` when no pattern does.
At inference the probability of patterns producing the same normalised text is summed.

Inference is numpy only; ``train`` (used by ``scripts/train_merge_classifier.py``) uses torch.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .diff3 import TokenMerge, diff_matches, token_merge, tokenize
from .patterns import ALL_PATTERNS, PATTERN_PREFERENCE, Hunk, candidate_texts, normalize
from .syntax import ts_error_count

__all__ = [
    "CLASSES",
    "HUNK_FEATURES",
    "CAND_FEATURES",
    "Features",
    "MergeClassifier",
    "ScoredCandidate",
    "featurize",
    "load_default",
]

CLASSES: tuple[str, ...] = ALL_PATTERNS + ("NONE",)
NONE_INDEX = len(ALL_PATTERNS)

HUNK_FEATURES: tuple[str, ...] = (
    "log_lines_a", "log_lines_o", "log_lines_b",
    "log_tok_a", "log_tok_o", "log_tok_b",
    "o_empty", "a_empty", "b_empty",
    "a_pure_ins", "b_pure_ins", "a_pure_del", "b_pure_del",
    "sim_ao", "sim_bo", "sim_ab",
    "frac_new_a", "frac_new_b", "frac_del_a", "frac_del_b",
    "a_ws_only", "b_ws_only", "ab_same_sig",
    "new_overlap", "a_in_b", "b_in_a",
    "tm_clean", "log_tok_conflicts", "frac_conflict_tok",
    "import_frac", "comment_frac", "string_frac",
    "lines_a_in_b", "lines_b_in_a",
    "def_or_class", "decorator",
    "quote_swap_a", "quote_swap_b",
    "len_diff_ab",
    "log_change_a", "log_change_b", "log_change_min", "line_overlap",
)  # fmt: skip

CAND_FEATURES: tuple[str, ...] = (
    "keep_new_a", "keep_new_b", "revive_del_a", "revive_del_b",
    "dup_lines", "ctx_dup", "len_ratio", "is_empty",
    "parse_worse", "parse_better", "n_same", "ctx_parse_err",
    "asc_frac", "import_pairs", "import_sorted",
)  # fmt: skip

_WS_RE = re.compile(r"\s+\Z")
_IMPORT_RE = re.compile(r"\s*(?:import\s|from\s+\S+\s+import\b)")


def _sig(tokens: Sequence[str]) -> list[str]:
    return [t for t in tokens if not _WS_RE.match(t)]


def _sim(n_match: int, la: int, lb: int) -> float:
    return 1.0 if la + lb == 0 else 2.0 * n_match / (la + lb)


def _ms_frac(part: Counter[str], whole: Counter[str]) -> float:
    """Fraction of the multiset ``part`` contained in ``whole`` (1.0 for an empty ``part``)."""
    total = sum(part.values())
    if total == 0:
        return 1.0
    return sum((part & whole).values()) / total


def _stripped_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _touched_lines(base_lines: Sequence[str], side_lines: Sequence[str]) -> set[float]:
    """Base lines a side changes; an insertion before base line i counts as i - 0.5."""
    matches = diff_matches(base_lines, side_lines)
    touched: set[float] = set()
    prev_b, prev_s = -1, -1
    for bi, si in [*matches, (len(base_lines), len(side_lines))]:
        touched.update(float(k) for k in range(prev_b + 1, bi))
        if si - prev_s > 1 and bi - prev_b == 1:
            touched.add(bi - 0.5)
        prev_b, prev_s = bi, si
    return touched


def _import_key(line: str) -> str:
    return line.replace("from ", "", 1).replace("import ", "", 1).lower()


def _order_feats(lines: Sequence[str]) -> tuple[float, float, float]:
    """(ascending fraction of adjacent lines, has adjacent import pairs, sorted fraction of them)."""
    pairs = list(zip(lines, lines[1:], strict=False))
    asc = sum(a.lower() <= b.lower() for a, b in pairs) / len(pairs) if pairs else 0.5
    imp = [(a, b) for a, b in pairs if _IMPORT_RE.match(a) and _IMPORT_RE.match(b)]
    if not imp:
        return asc, 0.0, 0.5
    return asc, 1.0, sum(_import_key(a) <= _import_key(b) for a, b in imp) / len(imp)


def _quote_swap(x: Sequence[str], o: Sequence[str]) -> float:
    cx, co = Counter(x), Counter(o)
    return float(abs((cx["'"] - co["'"]) + (co['"'] - cx['"'])) > 0 and cx["'"] != co["'"])


@dataclass(frozen=True)
class Features:
    """Features of one hunk: hunk vector, per-pattern candidate vectors, availability and texts."""

    hunk: np.ndarray  # (len(HUNK_FEATURES),)
    cand: np.ndarray  # (len(ALL_PATTERNS), len(CAND_FEATURES))
    mask: np.ndarray  # (len(CLASSES),) bool: pattern available (NONE always True)
    texts: dict[str, str]  # pattern -> candidate text (available patterns only)


def featurize(
    hunk: Hunk,
    context_before: str = "",
    context_after: str = "",
    merge: TokenMerge | None = None,
) -> Features:
    """Compute the classifier's features for ``hunk`` in its (short) surrounding context."""
    if merge is None:
        merge = token_merge(hunk.base, hunk.ours, hunk.theirs)
    texts = candidate_texts(hunk, merge)

    ta, to, tb = (_sig(tokenize(s)) for s in (hunk.ours, hunk.base, hunk.theirs))
    m_oa = diff_matches(to, ta)
    m_ob = diff_matches(to, tb)
    m_ab = diff_matches(ta, tb)
    oa_o = {i for i, _ in m_oa}
    oa_a = {j for _, j in m_oa}
    ob_o = {i for i, _ in m_ob}
    ob_b = {j for _, j in m_ob}
    new_a = Counter(t for j, t in enumerate(ta) if j not in oa_a)
    new_b = Counter(t for j, t in enumerate(tb) if j not in ob_b)
    del_a = Counter(t for i, t in enumerate(to) if i not in oa_o)
    del_b = Counter(t for i, t in enumerate(to) if i not in ob_o)
    n_new_a, n_new_b = sum(new_a.values()), sum(new_b.values())
    n_del_a, n_del_b = sum(del_a.values()), sum(del_b.values())

    la, lo, lb = (len(s.splitlines()) for s in (hunk.ours, hunk.base, hunk.theirs))
    o_lines = [x.strip() for x in hunk.base.splitlines()]
    touch_a = _touched_lines(o_lines, [x.strip() for x in hunk.ours.splitlines()])
    touch_b = _touched_lines(o_lines, [x.strip() for x in hunk.theirs.splitlines()])
    lines_a, lines_b = _stripped_lines(hunk.ours), _stripped_lines(hunk.theirs)
    set_a, set_b = set(lines_a), set(lines_b)
    all_lines = lines_a + lines_b
    n_all = max(1, len(all_lines))
    conflict_tok = sum(len(c.ours) + len(c.theirs) + len(c.base) for c in merge.conflicts)
    total_tok = max(1, len(ta) + len(tb) + len(to))
    ab_new_total = n_new_a + n_new_b
    new_overlap = 2.0 * sum((new_a & new_b).values()) / ab_new_total if ab_new_total else 0.0

    h = [
        math.log1p(la), math.log1p(lo), math.log1p(lb),
        math.log1p(len(ta)), math.log1p(len(to)), math.log1p(len(tb)),
        float(not hunk.base.strip()), float(not hunk.ours.strip()), float(not hunk.theirs.strip()),
        float(n_del_a == 0 and n_new_a > 0), float(n_del_b == 0 and n_new_b > 0),
        float(n_new_a == 0 and n_del_a > 0), float(n_new_b == 0 and n_del_b > 0),
        _sim(len(m_oa), len(to), len(ta)), _sim(len(m_ob), len(to), len(tb)),
        _sim(len(m_ab), len(ta), len(tb)),
        n_new_a / max(1, len(ta)), n_new_b / max(1, len(tb)),
        n_del_a / max(1, len(to)), n_del_b / max(1, len(to)),
        float(ta == to), float(tb == to), float(ta == tb),
        new_overlap,
        float(len(m_ab) == len(ta)), float(len(m_ab) == len(tb)),
        float(merge.clean), math.log1p(len(merge.conflicts)), conflict_tok / total_tok,
        sum(bool(_IMPORT_RE.match(x)) for x in all_lines) / n_all,
        sum(x.startswith("#") for x in all_lines) / n_all,
        sum(x[:1] in "\"'" or x[:2] in ("f\"", "f'", "r\"", "r'") for x in all_lines) / n_all,
        len(set_a & set_b) / max(1, len(set_a)), len(set_a & set_b) / max(1, len(set_b)),
        float(any(x.startswith(("def ", "class ", "async def ")) for x in all_lines)),
        float(any(x.startswith("@") for x in all_lines)),
        _quote_swap(ta, to), _quote_swap(tb, to),
        (len(ta) - len(tb)) / max(1, len(ta) + len(tb)),
        math.log1p(n_new_a + n_del_a), math.log1p(n_new_b + n_del_b),
        math.log1p(min(n_new_a + n_del_a, n_new_b + n_del_b)),
        len(touch_a & touch_b) / max(1, len(touch_a | touch_b)),
    ]  # fmt: skip

    ca_all, cb_all = Counter(ta), Counter(tb)
    dup_side = max(len(lines_a) - len(set_a), len(lines_b) - len(set_b))
    before_lines = _stripped_lines(context_before)
    after_lines = _stripped_lines(context_after)
    last_before = before_lines[-1] if before_lines else None
    first_after = after_lines[0] if after_lines else None

    err_cache: dict[str, int] = {}

    def errors(text: str) -> int:
        if text not in err_cache:
            err_cache[text] = ts_error_count(context_before + text + context_after)
        return err_cache[text]

    ref_err = min(errors(hunk.ours), errors(hunk.theirs))
    norm_count = Counter(normalize(t) for t in texts.values())
    cand = np.zeros((len(ALL_PATTERNS), len(CAND_FEATURES)), dtype=np.float64)
    mask = np.zeros(len(CLASSES), dtype=bool)
    mask[NONE_INDEX] = True
    feat_cache: dict[str, list[float]] = {}
    max_side = max(1, len(ta), len(tb))
    for idx, pattern in enumerate(ALL_PATTERNS):
        text = texts.get(pattern)
        if text is None:
            continue
        mask[idx] = True
        if text not in feat_cache:
            tc = _sig(tokenize(text))
            cc = Counter(tc)
            lines_c = _stripped_lines(text)
            err = errors(text)
            feat_cache[text] = [
                _ms_frac(new_a, cc),
                _ms_frac(new_b, cc),
                1.0 - _ms_frac(del_a, cc - ca_all) if n_del_a else 0.0,
                1.0 - _ms_frac(del_b, cc - cb_all) if n_del_b else 0.0,
                max(0, (len(lines_c) - len(set(lines_c))) - dup_side) / max(1, len(lines_c)),
                float(bool(lines_c) and (lines_c[0] == last_before or lines_c[-1] == first_after)),
                len(tc) / max_side,
                float(not text.strip()),
                float(err > ref_err),
                float(err < ref_err),
                norm_count[normalize(text)] / len(texts),
                float(ref_err > 0),
                *_order_feats(lines_c),
            ]
        cand[idx] = feat_cache[text]
    return Features(np.asarray(h, dtype=np.float64), cand, mask, texts)


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ScoredCandidate:
    """A candidate resolution with the classifier's probability (summed over equal texts)."""

    pattern: str
    text: str
    confidence: float


def _softmax_masked(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    s = np.where(mask, scores, -np.inf)
    s = s - s.max()
    e = np.exp(s)
    return e / e.sum()


class MergeClassifier:
    """Numpy inference for weights produced by ``train`` (see module docstring)."""

    def __init__(self, weights: dict[str, Any]) -> None:
        if tuple(weights["classes"]) != CLASSES:
            raise ValueError("classifier weights were trained for a different pattern set")
        if (
            tuple(weights["hunk_features"]) != HUNK_FEATURES
            or tuple(weights["cand_features"]) != CAND_FEATURES
        ):
            raise ValueError("classifier weights were trained for a different feature set")
        self.meta: dict[str, Any] = weights.get("meta", {})
        self.threshold: float = float(weights.get("threshold", 0.9))
        self.h_mean = np.asarray(weights["h_mean"], dtype=np.float64)
        self.h_std = np.asarray(weights["h_std"], dtype=np.float64)
        self.c_mean = np.asarray(weights["c_mean"], dtype=np.float64)
        self.c_std = np.asarray(weights["c_std"], dtype=np.float64)
        self.W = np.asarray(weights["W"], dtype=np.float64)  # (C, dh)
        self.w = np.asarray(weights["w"], dtype=np.float64)  # (dc,)
        self.b = np.asarray(weights["b"], dtype=np.float64)  # (C,)
        self.U = np.asarray(weights["U"], dtype=np.float64) if weights.get("U") else None
        self.u0 = np.asarray(weights["u0"], dtype=np.float64) if weights.get("u0") else None
        self.v = np.asarray(weights["v"], dtype=np.float64) if weights.get("v") else None

    @classmethod
    def load(cls, path: str | Path | None = None) -> MergeClassifier:
        if path is None:
            text = resources.files(__package__).joinpath("classifier_weights.json").read_text()
        else:
            text = Path(path).read_text()
        return cls(json.loads(text))

    def scores(self, feats: Features) -> np.ndarray:
        """Unnormalised scores for every class (masked classes included)."""
        h = (feats.hunk - self.h_mean) / self.h_std
        c = (feats.cand - self.c_mean) / self.c_std
        s = self.W @ h + self.b
        s[:NONE_INDEX] += c @ self.w
        if self.U is not None and self.v is not None and self.u0 is not None:
            n_pat = len(ALL_PATTERNS)
            x = np.concatenate([np.repeat(h[None, :], n_pat, axis=0), c, np.eye(n_pat)], axis=1)
            s[:NONE_INDEX] += np.maximum(x @ self.U.T + self.u0, 0.0) @ self.v
        return s

    def probabilities(self, feats: Features) -> np.ndarray:
        return _softmax_masked(self.scores(feats), feats.mask)

    def rank(self, feats: Features) -> list[ScoredCandidate]:
        """Candidates best first; equal normalised texts share (sum) their probability.

        A group's text is that of its most probable member; its pattern is the simplest name
        (``PATTERN_PREFERENCE``) among the members with exactly that text, so a token merge
        that equals one side is reported as that side.
        """
        p = self.probabilities(feats)
        groups: dict[str, list[tuple[float, str, str]]] = {}
        for idx, pattern in enumerate(ALL_PATTERNS):
            if feats.mask[idx]:
                text = feats.texts[pattern]
                groups.setdefault(normalize(text), []).append((float(p[idx]), pattern, text))
        out = []
        for members in groups.values():
            top_text = max(members, key=lambda m: (m[0], -PATTERN_PREFERENCE.index(m[1])))[2]
            name = min((m[1] for m in members if m[2] == top_text), key=PATTERN_PREFERENCE.index)
            total = min(1.0, sum(m[0] for m in members))
            out.append(ScoredCandidate(name, top_text, total))
        out.sort(key=lambda s: (-s.confidence, PATTERN_PREFERENCE.index(s.pattern)))
        return out


_DEFAULT: MergeClassifier | None = None


def load_default() -> MergeClassifier:
    """The classifier shipped with the package (cached)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = MergeClassifier.load()
    return _DEFAULT


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class Example:
    """A featurised training hunk: the target is the set of correct classes."""

    feats: Features
    target: np.ndarray  # (len(CLASSES),) bool
    repo: str
    label: str


def make_example(record: dict[str, Any]) -> Example:
    """Featurise one record of conflicts_train.jsonl."""
    hunk = Hunk(record["ours"], record["base"], record["theirs"])
    feats = featurize(hunk, record.get("context_before", ""), record.get("context_after", ""))
    want = normalize(record["resolution"])
    target = np.zeros(len(CLASSES), dtype=bool)
    for idx, pattern in enumerate(ALL_PATTERNS):
        text = feats.texts.get(pattern)
        if text is not None and normalize(text) == want:
            target[idx] = True
    if not target.any():
        target[NONE_INDEX] = True
    return Example(feats, target, record.get("repo", ""), record.get("label", ""))


def stack(examples: Sequence[Example]) -> dict[str, np.ndarray]:
    return {
        "h": np.stack([e.feats.hunk for e in examples]),
        "c": np.stack([e.feats.cand for e in examples]),
        "mask": np.stack([e.feats.mask for e in examples]),
        "target": np.stack([e.target for e in examples]),
    }


def train(
    examples: Sequence[Example],
    hidden: int = 0,
    l2: float = 1e-3,
    epochs: int = 300,
    seed: int = 0,
    none_weight: float = 1.0,
) -> dict[str, Any]:
    """Fit the model with torch (full batch, L-BFGS); return JSON-able weights."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny problem: threads only add contention (and nondeterminism)
    try:
        return _train(torch, examples, hidden, l2, epochs, seed, none_weight)
    finally:
        torch.set_num_threads(threads)


def _train(
    torch: Any,
    examples: Sequence[Example],
    hidden: int,
    l2: float,
    epochs: int,
    seed: int,
    none_weight: float,
) -> dict[str, Any]:
    torch.manual_seed(seed)
    data = stack(examples)
    h = torch.tensor(data["h"], dtype=torch.float64)
    c = torch.tensor(data["c"], dtype=torch.float64)
    mask = torch.tensor(data["mask"])
    target = torch.tensor(data["target"])
    h_mean, h_std = h.mean(0), h.std(0).clamp_min(1e-6)
    flat_c = c.reshape(-1, c.shape[-1])[mask[:, :NONE_INDEX].reshape(-1)]
    c_mean, c_std = flat_c.mean(0), flat_c.std(0).clamp_min(1e-6)
    hn = (h - h_mean) / h_std
    cn = (c - c_mean) / c_std
    n, dh = hn.shape
    n_pat, dc = cn.shape[1], cn.shape[2]
    n_cls = len(CLASSES)
    W = torch.zeros(n_cls, dh, dtype=torch.float64, requires_grad=True)
    w = torch.zeros(dc, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_cls, dtype=torch.float64, requires_grad=True)
    params = [W, w, b]
    if hidden:
        din = dh + dc + n_pat
        U = (torch.randn(hidden, din, dtype=torch.float64) / math.sqrt(din)).requires_grad_()
        u0 = torch.zeros(hidden, dtype=torch.float64, requires_grad=True)
        v = (torch.randn(hidden, dtype=torch.float64) * 0.01).requires_grad_()
        params += [U, u0, v]
        eye = torch.eye(n_pat, dtype=torch.float64)
        x_in = torch.cat([hn[:, None, :].expand(n, n_pat, dh), cn, eye.expand(n, n_pat, n_pat)], 2)
    sample_w = torch.where(
        target[:, NONE_INDEX], torch.tensor(none_weight, dtype=torch.float64), 1.0
    )

    def loss_fn() -> torch.Tensor:
        s = hn @ W.T + b
        extra = cn @ w
        if hidden:
            extra = extra + torch.relu(x_in @ U.T + u0) @ v
        s = torch.cat([s[:, :NONE_INDEX] + extra, s[:, NONE_INDEX:]], 1)
        s = s.masked_fill(~mask, -1e30)
        logz = torch.logsumexp(s, 1)
        logp_ok = torch.logsumexp(s.masked_fill(~target, -1e30), 1)
        nll = ((logz - logp_ok) * sample_w).sum() / sample_w.sum()
        reg = l2 * (W.pow(2).sum() + w.pow(2).sum())
        if hidden:
            reg = reg + l2 * (U.pow(2).sum() + v.pow(2).sum())
        return nll + reg

    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=epochs, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)

    def lst(t: torch.Tensor) -> Any:
        return (
            [round(float(x), 6) for x in t.detach().reshape(-1)]
            if t.dim() <= 1
            else [[round(float(x), 6) for x in row] for row in t.detach()]
        )

    out: dict[str, Any] = {
        "classes": list(CLASSES),
        "hunk_features": list(HUNK_FEATURES),
        "cand_features": list(CAND_FEATURES),
        "h_mean": lst(h_mean),
        "h_std": lst(h_std),
        "c_mean": lst(c_mean),
        "c_std": lst(c_std),
        "W": lst(W),
        "w": lst(w),
        "b": lst(b),
    }
    if hidden:
        out.update({"U": lst(U), "u0": lst(u0), "v": lst(v)})
    return out
