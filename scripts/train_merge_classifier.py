#!/usr/bin/env python
"""Train the merge-pattern classifier and write holefill/merge/classifier_weights.json.

    python scripts/train_merge_classifier.py                 # reproduce the shipped weights
    python scripts/train_merge_classifier.py --cv            # leave-one-repo-out model selection
    python scripts/train_merge_classifier.py --lm-eval 150   # would LM likelihood re-rank better?

Data: ../shared/data/merge/conflicts_train.jsonl.  Split by repository: the repositories in
``--dev-repos`` are never trained on (nor used to pick the threshold); they are only reported.  The
confidence threshold is chosen from out-of-fold predictions (leave-one-repository-out over the
training repositories) as the lowest one whose precision reaches ``--target-precision``.
Deterministic (fixed seed, full-batch L-BFGS, float64).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from holefill.merge.classifier import (  # noqa: E402
    CLASSES,
    NONE_INDEX,
    Example,
    MergeClassifier,
    make_example,
    train,
)
from holefill.merge.patterns import Hunk  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "merge" / "conflicts_train.jsonl"
DEFAULT_DEV = ("pypa/pip", "pytest-dev/pytest", "pallets/flask")
DEFAULT_OUT = ROOT / "holefill" / "merge" / "classifier_weights.json"
CAND_PARSE_WORSE = "parse_worse"


def load_examples(data: Path, cache: Path | None) -> list[Example]:
    if cache is not None and cache.exists():
        with cache.open("rb") as f:
            return pickle.load(f)
    t0 = time.time()
    records = [json.loads(line) for line in data.open(encoding="utf-8")]
    examples = [make_example(r) for r in records]
    print(f"featurised {len(examples)} hunks in {time.time() - t0:.0f}s", file=sys.stderr)
    if cache is not None:
        with cache.open("wb") as f:
            pickle.dump(examples, f)
    return examples


def predict(model: MergeClassifier, ex: Example) -> list[tuple[str, float, bool, bool]]:
    """Ranked (pattern, confidence, correct, parse_ok) for one example."""
    from holefill.merge.classifier import CAND_FEATURES
    from holefill.merge.patterns import ALL_PATTERNS

    parse_col = CAND_FEATURES.index(CAND_PARSE_WORSE)
    out = []
    for sc in model.rank(ex.feats):
        idx = ALL_PATTERNS.index(sc.pattern)
        ok_parse = ex.feats.cand[idx, parse_col] == 0.0
        out.append((sc.pattern, sc.confidence, bool(ex.target[idx]), bool(ok_parse)))
    return out


def evaluate(
    model: MergeClassifier, examples: Sequence[Example], threshold: float
) -> dict[str, Any]:
    """Accuracy, precision/recall at the threshold, coverage, top-3, baselines."""
    n = len(examples)
    correct = resolved = top1 = top3 = 0
    per_label: dict[str, Counter[str]] = {}
    conf_ok: list[tuple[float, bool]] = []
    for ex in examples:
        ranked = [r for r in predict(model, ex) if r[3]]
        best = ranked[0] if ranked else None
        if best is not None:
            top1 += best[2]
            conf_ok.append((best[1], best[2]))
        top3 += any(r[2] for r in ranked[:3])
        stats = per_label.setdefault(ex.label, Counter())
        stats["n"] += 1
        if best is not None and best[1] >= threshold:
            resolved += 1
            correct += best[2]
            stats["resolved"] += 1
            stats["correct"] += best[2]
    expressible = sum(not ex.target[NONE_INDEX] for ex in examples)
    ours = sum(bool(ex.target[CLASSES.index("OURS")]) for ex in examples)
    theirs = sum(bool(ex.target[CLASSES.index("THEIRS")]) for ex in examples)
    tm_res = sum(ex.feats.mask[CLASSES.index("TOKEN_MERGE")] for ex in examples)
    tm_ok = sum(bool(ex.target[CLASSES.index("TOKEN_MERGE")]) for ex in examples)
    return {
        "n": n,
        "threshold": threshold,
        "accuracy": correct / n,
        "precision": correct / resolved if resolved else None,
        "coverage": resolved / n,
        "abstain_rate": 1 - resolved / n,
        "top1_accuracy_no_abstain": top1 / n,
        "top3_accuracy": top3 / n,
        "oracle_expressible": expressible / n,
        "baseline_ours": ours / n,
        "baseline_theirs": theirs / n,
        "baseline_token_merge": {
            "accuracy": tm_ok / n,
            "precision": tm_ok / tm_res if tm_res else None,
            "coverage": tm_res / n,
        },
        "per_label": {
            k: {
                "n": v["n"],
                "resolved": v["resolved"],
                "correct": v["correct"],
            }
            for k, v in sorted(per_label.items())
        },
    }


def choose_threshold(conf_ok: Sequence[tuple[float, bool]], target: float) -> float:
    """Lowest confidence threshold whose precision (over predictions above it) is >= target."""
    pairs = sorted(conf_ok, key=lambda x: -x[0])
    best = 1.0
    hits = 0
    for k, (conf, ok) in enumerate(pairs, 1):
        hits += ok
        if k >= 20 and hits / k >= target:
            best = conf
    return float(best)


def oof_predictions(
    examples: Sequence[Example], repos: Sequence[str], **kw: Any
) -> list[tuple[float, bool, str, Example]]:
    """Leave-one-repository-out predictions: (confidence of best parse-ok candidate, correct)."""
    out = []
    for repo in repos:
        train_ex = [e for e in examples if e.repo != repo]
        test_ex = [e for e in examples if e.repo == repo]
        model = MergeClassifier(train(train_ex, **kw))
        for ex in test_ex:
            ranked = [r for r in predict(model, ex) if r[3]]
            if ranked:
                out.append((ranked[0][1], ranked[0][2], repo, ex))
            else:
                out.append((0.0, False, repo, ex))
    return out


def lm_eval(model: MergeClassifier, data: Path, dev_repos: Sequence[str], n: int) -> dict[str, Any]:
    """Would the code LM's likelihood help?  Rank the classifier's top-3 by LM score instead.

    On ``n`` random dev hunks (seed 0): accuracy of the LM's choice among the classifier's first
    three candidates, of the classifier's first, of a uniform random pick, the precision of the
    classifier's choice when the LM agrees / disagrees, and the LM's seconds per hunk.
    """
    import random

    import torch

    from holefill.merge.classifier import featurize
    from holefill.merge.lmscore import LMScorer
    from holefill.merge.patterns import normalize

    torch.set_num_threads(1)
    records = [json.loads(line) for line in data.open(encoding="utf-8")]
    records = [r for r in records if r["repo"] in dev_repos]
    records = random.Random(0).sample(records, min(n, len(records)))
    scorer = LMScorer.load()
    st: Counter[str] = Counter()
    seconds = []
    for r in records:
        feats = featurize(Hunk(r["ours"], r["base"], r["theirs"]), r["context_before"],
                          r["context_after"])
        top = model.rank(feats)[:3]
        want = normalize(r["resolution"])
        ok = [normalize(c.text) == want for c in top]
        t0 = time.perf_counter()
        lm = scorer.score(r["context_before"], [c.text for c in top], r["context_after"])
        seconds.append(time.perf_counter() - t0)
        st["hunks"] += 1
        if lm is None or len(top) < 2:
            st["not_scored"] += 1
            continue
        best = max(range(len(top)), key=lambda k: lm[k].total)
        st["scored"] += 1
        st["clf_top1"] += ok[0]
        st["lm_top1"] += ok[best]
        st["random_top1_x1000"] += round(1000 * sum(ok) / len(ok))
        st["agree"] += best == 0
        st["agree_correct"] += best == 0 and ok[0]
        st["disagree_correct"] += best != 0 and ok[0]
    k = max(1, st["scored"])
    return {
        **dict(st),
        "clf_top1_acc": round(st["clf_top1"] / k, 4),
        "lm_top1_acc": round(st["lm_top1"] / k, 4),
        "random_top1_acc": round(st["random_top1_x1000"] / 1000 / k, 4),
        "precision_when_lm_agrees": round(st["agree_correct"] / max(1, st["agree"]), 4),
        "precision_when_lm_disagrees": round(
            st["disagree_correct"] / max(1, st["scored"] - st["agree"]), 4
        ),
        "lm_seconds_per_hunk_mean": round(float(np.mean(seconds)), 3),
        "lm_seconds_per_hunk_median": round(float(np.median(seconds)), 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--dev-repos", default=",".join(DEFAULT_DEV))
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--cache", type=Path, default=None, help="pickle of featurised examples")
    ap.add_argument("--hidden", type=int, default=8)
    ap.add_argument("--l2", type=float, default=1e-2)
    ap.add_argument("--none-weight", type=float, default=1.0)
    ap.add_argument("--target-precision", type=float, default=0.85)
    ap.add_argument("--cv", action="store_true", help="compare model configurations (LORO CV)")
    ap.add_argument("--configs", default=None, help="JSON list of train() kwargs for --cv")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--lm-eval", type=int, default=0, metavar="N",
        help="only measure LM re-ranking of the shipped model's top 3 on N random dev hunks",
    )
    args = ap.parse_args(argv)
    if args.lm_eval:
        dev = [r for r in args.dev_repos.split(",") if r]
        model = MergeClassifier.load(args.out)
        print(json.dumps(lm_eval(model, args.data, dev, args.lm_eval), indent=1))
        return 0

    examples = load_examples(args.data, args.cache)
    dev_repos = [r for r in args.dev_repos.split(",") if r]
    train_ex = [e for e in examples if e.repo not in dev_repos]
    dev_ex = [e for e in examples if e.repo in dev_repos]
    train_repos = sorted({e.repo for e in train_ex})
    print(
        f"train {len(train_ex)} hunks / {len(train_repos)} repos; dev {len(dev_ex)} hunks "
        f"/ {dev_repos}",
        file=sys.stderr,
    )

    if args.cv:
        configs = (
            json.loads(args.configs)
            if args.configs
            else [
                {"hidden": 0, "l2": 1e-4},
                {"hidden": 0, "l2": 1e-3},
                {"hidden": 0, "l2": 1e-2},
                {"hidden": 16, "l2": 1e-3},
                {"hidden": 32, "l2": 1e-3},
                {"hidden": 32, "l2": 1e-2},
            ]
        )
        for cfg in configs:
            t0 = time.time()
            oof = oof_predictions(train_ex, train_repos, **cfg)
            acc1 = sum(ok for _, ok, _, _ in oof) / len(oof)
            thr = choose_threshold([(c, ok) for c, ok, _, _ in oof], args.target_precision)
            res = [(c, ok) for c, ok, _, _ in oof if c >= thr]
            nll = -np.mean([np.log(max(c if ok else 1 - c, 1e-6)) for c, ok, _, _ in oof])
            print(
                json.dumps(
                    {
                        "config": cfg,
                        "top1": round(acc1, 4),
                        "threshold": round(thr, 3),
                        "accuracy_at_thr": round(sum(ok for _, ok in res) / len(oof), 4),
                        "coverage_at_thr": round(len(res) / len(oof), 4),
                        "conf_nll": round(float(nll), 4),
                        "seconds": round(time.time() - t0, 1),
                    }
                )
            )
        return 0

    kw = {"hidden": args.hidden, "l2": args.l2, "none_weight": args.none_weight}
    oof = oof_predictions(train_ex, train_repos, **kw)
    threshold = choose_threshold([(c, ok) for c, ok, _, _ in oof], args.target_precision)
    weights = train(train_ex, **kw)
    weights["threshold"] = round(threshold, 4)
    model = MergeClassifier(weights)
    report = {
        "dev_repos": dev_repos,
        "train_repos": train_repos,
        "config": kw,
        "threshold_from": f"leave-one-repo-out over train repos, precision >= "
        f"{args.target_precision}",
        "dev": evaluate(model, dev_ex, threshold),
        "dev_per_repo": {
            r: evaluate(model, [e for e in dev_ex if e.repo == r], threshold) for r in dev_repos
        },
    }
    for part in [report["dev"], *report["dev_per_repo"].values()]:
        part.pop("per_label", None) if part is not report["dev"] else None
    weights["meta"] = {k: v for k, v in report.items()}
    print(json.dumps(report, indent=1))
    if not args.no_write:
        args.out.write_text(json.dumps(weights, separators=(",", ":")) + "\n")
        print(f"wrote {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
