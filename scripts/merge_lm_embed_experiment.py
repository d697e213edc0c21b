#!/usr/bin/env python
"""Does a frozen code-LM encoding of the conflict help the merge-pattern classifier? (issue #7)

MergeBERT (RESEARCH §4) classifies a conflict into primitive patterns from a pretrained code
encoder's representation of the aligned conflict.  Here the embedded SmolLM2-135M is the frozen
encoder: each hunk is written as a diff3 conflict with a few context lines,

    <context before> <<<<<<< ours \\n OURS ||||||| base \\n BASE ======= \\n THEIRS >>>>>>> theirs
    <context after>

(each side and context capped in tokens), run once through the model, and the residual stream of
a few layers is pooled per segment (mean over the ours / base / theirs tokens, and the last
token).  A head is then trained on [LM features (+ the hand features of classifier.py)] with the
same label definition, candidate masking and threshold rule as scripts/train_merge_classifier.py,
and compared with the shipped model in the same run.

    # 1. encode every hunk once (bf16, 1 thread; cached per chunk of 100, resumable)
    nice -n 10 timeout 3600 python scripts/merge_lm_embed_experiment.py encode --out /tmp/lmemb
    # 2. choose layer / pooling / PCA size / head on the training repositories only
    #    (leave-one-repository-out; --cache: train_merge_classifier's featurised-examples pickle)
    python scripts/merge_lm_embed_experiment.py eval select --emb /tmp/lmemb \
        --cache /tmp/feats.pkl --configs '[{"layers":[18],"pools":"sides","k":8,"hidden":8,"l2":1e-2}]'
    # 3. dev numbers per repository, the shipped model first, same run
    python scripts/merge_lm_embed_experiment.py eval final --emb /tmp/lmemb \
        --cache /tmp/feats.pkl --configs '[{"hidden":8,"l2":1e-2},{"layers":[18],"pools":"sides","k":8,"hidden":8,"l2":1e-2}]'

A configuration is a dict: ``layers`` (hidden-state indices from ``LAYERS``), ``pools``
(see ``view``), ``k`` (PCA components; 0 = no LM features), ``hidden`` / ``l2`` (the head, as
classifier.train), ``hand`` / ``cand`` (false drops the hand hunk / candidate features).

Outcome (BENCHMARKS.md, merge, "frozen LM encoder"): no better than the shipped model on dev.
With the training-chosen threshold it resolves more (accuracy 0.360 at precision 0.868 vs 0.304
at 0.883), but its precision/coverage curve on dev is the shipped model's, and top-1 is unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "merge" / "conflicts_train.jsonl"
LAYERS = (6, 12, 18, 24, 30)  # hidden_states index: 0 = embeddings, 30 = last layer (pre-norm)
POOLS = ("ours", "base", "theirs", "last")
SIDE_TOKENS = 64
BEFORE_TOKENS = 32
AFTER_TOKENS = 16


# --------------------------------------------------------------------------- encoding


def _lines_tail(text: str, n: int) -> str:
    return "".join(text.splitlines(keepends=True)[-n:])


def _lines_head(text: str, n: int) -> str:
    return "".join(text.splitlines(keepends=True)[:n])


def build_input(tok: Any, record: dict[str, Any]) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of the diff3-style conflict and the (start, end) spans of ours, base, theirs."""

    def enc(text: str) -> list[int]:
        return list(tok(text, add_special_tokens=False)["input_ids"]) if text else []

    def side(text: str) -> list[int]:
        ids = enc(text)
        if not text.endswith("\n") and text:
            ids += enc("\n")
        return ids[:SIDE_TOKENS]

    ids = enc(_lines_tail(record.get("context_before", ""), 3))[-BEFORE_TOKENS:]
    spans = []
    for marker, text in (
        ("<<<<<<< ours\n", record["ours"]),
        ("||||||| base\n", record["base"]),
        ("=======\n", record["theirs"]),
    ):
        ids += enc(marker)
        s = side(text)
        # an empty side is represented by its marker's last token (a defined, distinct pool)
        spans.append((len(ids), len(ids) + len(s)) if s else (len(ids) - 1, len(ids)))
        ids += s
    ids += enc(">>>>>>> theirs\n")
    ids += enc(_lines_head(record.get("context_after", ""), 3))[:AFTER_TOKENS]
    return ids, spans


def pool(hidden: Sequence[Any], spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """(len(LAYERS), len(POOLS), hidden) float32 from per-layer [T, hidden] tensors."""
    out = []
    for layer in LAYERS:
        h = hidden[layer].float()
        rows = [h[a:b].mean(0) for a, b in spans] + [h[-1]]
        out.append(np.stack([r.numpy() for r in rows]))
    return np.stack(out).astype(np.float32)


def encode(args: argparse.Namespace) -> int:
    import torch

    from holefill.completion.model import cpu_has_bf16, load_model

    torch.set_num_threads(args.threads)
    records = [json.loads(line) for line in args.data.open(encoding="utf-8")]
    if args.limit:
        records = records[: args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    loaded = load_model(allow_download=False)
    model = loaded.hf_model
    if cpu_has_bf16() and not args.fp32:
        model = model.to(torch.bfloat16)
    model.eval()
    tok = loaded.tokenizer
    ids_path = args.out / "ids.json"
    ids_all = [r["id"] for r in records]
    ids_path.write_text(json.dumps(ids_all))
    chunk = args.chunk
    n_tokens = 0
    t_start = time.time()
    for c0 in range(0, len(records), chunk):
        path = args.out / f"emb_{c0:05d}.npy"
        if path.exists():
            continue
        feats = []
        for r in records[c0 : c0 + chunk]:
            ids, spans = build_input(tok, r)
            n_tokens += len(ids)
            with torch.inference_mode():
                out = model.model(
                    input_ids=torch.tensor([ids]), output_hidden_states=True, use_cache=False
                )
            feats.append(pool([h[0] for h in out.hidden_states], spans))
        np.save(path, np.stack(feats).astype(np.float16))
        done = min(c0 + chunk, len(records))
        el = time.time() - t_start
        print(
            f"{done}/{len(records)} hunks, {el:.0f}s, {n_tokens} tokens this run",
            file=sys.stderr,
            flush=True,
        )
    (args.out / "done").write_text(f"{time.time() - t_start:.1f}s {n_tokens} tokens\n")
    return 0


def load_embeddings(emb_dir: Path, n: int) -> np.ndarray:
    parts = sorted(emb_dir.glob("emb_*.npy"))
    arr = np.concatenate([np.load(p) for p in parts]).astype(np.float32)
    if len(arr) != n:
        raise SystemExit(f"{emb_dir}: {len(arr)} embeddings for {n} hunks (encoding unfinished?)")
    return arr


# --------------------------------------------------------------------------- head + evaluation


def view(emb: np.ndarray, layers: Sequence[int], pools: str) -> np.ndarray:
    """LM feature matrix (n, d) for the chosen layers and pooling.

    ``pools``: ``sides`` = mean over ours, base, theirs and the last token, concatenated;
    ``delta`` = ours - base, theirs - base, ours - theirs and the last token (MergeBERT's a|o, b|o
    contrast); ``last`` = last token only; ``mean`` = mean of the three side means.
    """
    parts = []
    for layer in layers:
        x = emb[:, LAYERS.index(layer)]
        o, b, t, last = x[:, 0], x[:, 1], x[:, 2], x[:, 3]
        if pools == "sides":
            parts += [o, b, t, last]
        elif pools == "delta":
            parts += [o - b, t - b, o - t, last]
        elif pools == "last":
            parts += [last]
        elif pools == "mean":
            parts += [(o + b + t) / 3]
        else:
            raise ValueError(f"unknown pooling {pools!r}")
    return np.concatenate(parts, 1)


class PCA:
    """Standardise, then project on the top-k principal directions (fit on training rows only)."""

    def __init__(self, x: np.ndarray, k: int) -> None:
        self.mean = x.mean(0)
        self.std = x.std(0) + 1e-6
        z = (x - self.mean) / self.std
        # eigenvectors of the d x d covariance: cheaper than an SVD of the n x d matrix
        cov = (z.T @ z).astype(np.float64) / len(z)
        _, vecs = np.linalg.eigh(cov)
        self.components = vecs[:, ::-1][:, :k].copy()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std) @ self.components


def augment(examples: Sequence[Any], z: np.ndarray | None, hand: bool, cand: bool) -> list[Any]:
    """Examples whose hunk vector is [hand features ; z] (and candidate features zeroed if not
    ``cand``: after the classifier's standardisation a constant feature contributes nothing)."""
    from dataclasses import replace

    out = []
    for i, ex in enumerate(examples):
        parts = [ex.feats.hunk] if hand else []
        if z is not None:
            parts.append(z[i])
        h = np.concatenate(parts) if parts else np.zeros(1)
        c = ex.feats.cand if cand else np.zeros_like(ex.feats.cand)
        out.append(replace(ex, feats=replace(ex.feats, hunk=h, cand=c)))
    return out


def fold_data(
    cfg: dict[str, Any], emb: np.ndarray | None, examples: Sequence[Any],
    train_idx: Sequence[int], test_idx: Sequence[int], z_all: np.ndarray | None = None,
) -> tuple[list[Any], list[Any]]:
    """Train/test examples with LM features; ``z_all`` = projection already fitted (label-free)
    on a superset of ``train_idx`` that excludes every dev repository."""
    z_tr = z_te = None
    if cfg.get("k", 0) and emb is not None:
        if z_all is None:
            x = view(emb, cfg["layers"], cfg["pools"])
            pca = PCA(x[list(train_idx)], cfg["k"])
            z_all = pca(x)
        z_tr, z_te = z_all[list(train_idx)], z_all[list(test_idx)]
    hand, cand = cfg.get("hand", True), cfg.get("cand", True)
    return (
        augment([examples[i] for i in train_idx], z_tr, hand, cand),
        augment([examples[i] for i in test_idx], z_te, hand, cand),
    )


def train_kw(cfg: dict[str, Any]) -> dict[str, Any]:
    return {"hidden": cfg.get("hidden", 0), "l2": cfg.get("l2", 1e-3)}


def oof(
    cfg: dict[str, Any], emb: np.ndarray | None, examples: Sequence[Any], idx: Sequence[int]
) -> list[tuple[float, bool]]:
    """Leave-one-repository-out (confidence, correct) of the best parse-ok candidate."""
    from train_merge_classifier import predict

    from holefill.merge.classifier import MergeClassifier, train

    # The PCA projection is fitted once on all of ``idx`` (the training repositories, no labels,
    # no dev repository): per-fold SVDs cost more than the heads on the shared 2-core machine.
    # ``"pca_per_fold": true`` fits it on each fold's training repositories instead.
    z_all = None
    if cfg.get("k", 0) and emb is not None and not cfg.get("pca_per_fold"):
        x = view(emb, cfg["layers"], cfg["pools"])
        z_all = PCA(x[list(idx)], cfg["k"])(x)
    out = []
    repos = sorted({examples[i].repo for i in idx})
    for repo in repos:
        tr = [i for i in idx if examples[i].repo != repo]
        te = [i for i in idx if examples[i].repo == repo]
        ex_tr, ex_te = fold_data(cfg, emb, examples, tr, te, z_all)
        model = MergeClassifier(train(ex_tr, **train_kw(cfg)))
        for ex in ex_te:
            ranked = [r for r in predict(model, ex) if r[3]]
            out.append((ranked[0][1], ranked[0][2]) if ranked else (0.0, False))
    return out


def select(args: argparse.Namespace, emb: np.ndarray, examples: Sequence[Any],
           train_idx: Sequence[int]) -> None:
    from train_merge_classifier import choose_threshold

    configs = json.loads(args.configs)
    for cfg in configs:
        t0 = time.time()
        res = oof(cfg, emb, examples, train_idx)
        thr = choose_threshold(res, args.target_precision)
        kept = [ok for c, ok in res if c >= thr]
        print(json.dumps({
            "config": cfg,
            "oof_top1": round(sum(ok for _, ok in res) / len(res), 4),
            "threshold": round(thr, 3),
            "oof_accuracy_at_thr": round(sum(kept) / len(res), 4),
            "oof_coverage_at_thr": round(len(kept) / len(res), 4),
            "oof_curve": curve_of(res),
            "seconds": round(time.time() - t0, 1),
        }), flush=True)


def curve(model: Any, dev_ex: Sequence[Any]) -> dict[str, Any]:
    """Is a gain ranking or calibration?  The best accuracy any threshold reaches on these hunks
    at precision >= 0.85 / 0.80, and the precision at fixed coverages (thresholds picked on the
    same hunks: for comparing models' precision/coverage curves, never for reporting a result)."""
    from train_merge_classifier import predict

    pairs = []
    for ex in dev_ex:
        ranked = [r for r in predict(model, ex) if r[3]]
        pairs.append((ranked[0][1], ranked[0][2]) if ranked else (0.0, False))
    return curve_of(pairs)


def curve_of(pairs: Sequence[tuple[float, bool]]) -> dict[str, Any]:
    """``curve`` from (confidence, correct) pairs."""
    pairs = sorted(pairs, key=lambda x: -x[0])
    n = len(pairs)
    hits = np.cumsum([ok for _, ok in pairs])
    prec = hits / np.arange(1, n + 1)
    out: dict[str, Any] = {}
    for target in (0.85, 0.80):
        ok = [k for k in range(19, n) if prec[k] >= target]
        out[f"best_accuracy_at_p{int(target * 100)}"] = round(hits[ok[-1]] / n, 4) if ok else 0.0
    for cov in (0.30, 0.35, 0.40, 0.45):
        out[f"precision_at_coverage_{cov:.2f}"] = round(float(prec[int(cov * n) - 1]), 4)
    return out


def final(args: argparse.Namespace, emb: np.ndarray, examples: Sequence[Any],
          train_idx: Sequence[int], dev_idx: Sequence[int], dev_repos: Sequence[str]) -> None:
    """Dev numbers per repository: the shipped model, and each configuration retrained on all
    training repositories with its threshold from leave-one-repo-out on them."""
    from train_merge_classifier import choose_threshold, evaluate

    from holefill.merge.classifier import MergeClassifier, train

    def summary(model: MergeClassifier, dev_ex: Sequence[Any], thr: float) -> dict[str, Any]:
        out: dict[str, Any] = {"curve_on_dev_analysis_only": curve(model, dev_ex)}
        for name, part in [("all", list(dev_ex))] + [
            (r, [e for e in dev_ex if e.repo == r]) for r in dev_repos
        ]:
            ev = evaluate(model, part, thr)
            out[name] = {
                "n": ev["n"],
                "accuracy": round(ev["accuracy"], 4),
                "precision": round(ev["precision"], 4) if ev["precision"] is not None else None,
                "coverage": round(ev["coverage"], 4),
                "top1_resolve_all": round(ev["top1_accuracy_no_abstain"], 4),
                "top3": round(ev["top3_accuracy"], 4),
            }
        return out

    dev_plain = [examples[i] for i in dev_idx]
    shipped = MergeClassifier.load()
    print(json.dumps({"model": "shipped classifier_weights.json", "threshold": shipped.threshold,
                      "dev": summary(shipped, dev_plain, shipped.threshold)}), flush=True)
    for cfg in json.loads(args.configs):
        t0 = time.time()
        res = oof(cfg, emb, examples, train_idx)
        thr = choose_threshold(res, args.target_precision)
        ex_tr, ex_dev = fold_data(cfg, emb, examples, train_idx, dev_idx)
        model = MergeClassifier(train(ex_tr, **train_kw(cfg)))
        print(json.dumps({"model": cfg, "threshold": round(thr, 4),
                          "dev": summary(model, ex_dev, thr),
                          "seconds": round(time.time() - t0, 1)}), flush=True)


def run_eval(args: argparse.Namespace) -> int:
    import torch
    from train_merge_classifier import load_examples

    torch.set_num_threads(1)
    examples = load_examples(args.data, args.cache)
    emb = load_embeddings(args.emb, len(examples)) if args.emb else None
    ids = json.loads((args.emb / "ids.json").read_text()) if args.emb else None
    if ids is not None:
        records = [json.loads(line) for line in args.data.open(encoding="utf-8")]
        if [r["id"] for r in records] != ids:
            raise SystemExit("embeddings were computed for another data file")
    dev_repos = [r for r in args.dev_repos.split(",") if r]
    train_idx = [i for i, e in enumerate(examples) if e.repo not in dev_repos]
    dev_idx = [i for i, e in enumerate(examples) if e.repo in dev_repos]
    if args.mode == "select":
        select(args, emb, examples, train_idx)
    else:
        final(args, emb, examples, train_idx, dev_idx, dev_repos)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("encode", help="encode every hunk with the frozen LM (cached per chunk)")
    e.add_argument("--data", type=Path, default=DEFAULT_DATA)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--limit", type=int, default=0)
    e.add_argument("--chunk", type=int, default=100)
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--fp32", action="store_true")
    v = sub.add_parser("eval", help="select on training repos (select) or report dev (final)")
    v.add_argument("mode", choices=("select", "final"))
    v.add_argument("--data", type=Path, default=DEFAULT_DATA)
    v.add_argument("--emb", type=Path, default=None)
    v.add_argument("--cache", type=Path, default=None, help="pickle of featurised examples")
    v.add_argument("--dev-repos", default="pypa/pip,pytest-dev/pytest,pallets/flask")
    v.add_argument("--target-precision", type=float, default=0.85)
    v.add_argument("--configs", required=True, help="JSON list of head configurations")
    args = ap.parse_args(argv)
    if args.cmd == "encode":
        return encode(args)
    return run_eval(args)


if __name__ == "__main__":
    raise SystemExit(main())
