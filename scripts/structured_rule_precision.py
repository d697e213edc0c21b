#!/usr/bin/env python
"""Precision of the structured merge stage per rule and context, on the training repositories.

    OMP_NUM_THREADS=1 python scripts/structured_rule_precision.py [--json OUT]

The hunks are laid out as ``holefill bench merge`` lays them out (the records of one file in one
merge concatenated, each in its recorded context) and resolved by the structured stage alone,
ungated (``min_confidence`` 0), exactly as the resolver runs it (parse check included).  A
resolution is correct when it equals the human resolution after ``patterns.normalize``;
``order_only`` counts the wrong ones that have the same lines in another order.

Only the repositories the classifier trains on are read: the dev repositories (the classifier's
``meta.dev_repos``) are the held-out evaluation and must not choose what the stage enables.

Tables (each hunk counts once in every row it falls in):

* ``per_class``: by the confidence class (``structured.rule_class``: the weakest kind of step);
* ``per_rule``: by rule (a hunk merged by several rules counts for each);
* ``per_rule_scope``: by rule and scope (function / class / module, or ``hunk`` for the
  whole-hunk shortcuts ours-only, theirs-only, same-change);
* ``per_rule_context``: by rule, scope and the node type the rule merged;
* ``per_signature``: by the hunk's whole set of (rule, scope).

With ``--classifier`` the shipped classifier's choice for the same hunks is compared too (in
sample on these repositories: its confidences there are optimistic).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from holefill.benchmarks.merge import conflict_pieces, file_groups  # noqa: E402
from holefill.merge.classifier import load_default  # noqa: E402
from holefill.merge.patterns import normalize  # noqa: E402
from holefill.merge.resolver import ConflictError, resolve_text  # noqa: E402
from holefill.merge.structured import rule_class  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "merge" / "conflicts_train.jsonl"


def _lines(text: str) -> list[str]:
    return sorted(normalize(x) for x in text.splitlines() if x.strip())


def hunk_rows(records: list[dict[str, Any]], classifier: bool = False) -> list[dict[str, Any]]:
    """One row per record: what the structured stage did with it."""
    rows: list[dict[str, Any]] = []
    for group in file_groups(records):
        text = "".join(b + blk + a for b, blk, a in conflict_pieces(group))
        try:
            res = resolve_text(text, min_confidence=0.0, use_git=False, pipeline=("structured",))
            clf = (
                resolve_text(text, use_git=False, pipeline=("classifier",)) if classifier else None
            )
            if len(res.hunks) != len(group):
                raise ConflictError("context holds conflict markers")
        except ConflictError:
            continue
        for k, rec in enumerate(group):
            h = res.hunks[k]
            want = normalize(rec["resolution"])
            row: dict[str, Any] = {
                "index": rec.get("_index"),
                "repo": rec["repo"],
                "resolved": h.status == "resolved",
                "sites": list(h.sites),
                "ms": h.structured_ms,
            }
            if row["resolved"]:
                row["correct"] = normalize(h.text or "") == want
                row["order_only"] = not row["correct"] and _lines(h.text or "") == _lines(
                    rec["resolution"]
                )
                row["text"] = h.text
            if clf is not None:
                c = clf.hunks[k]
                row["clf_resolved"] = c.status == "resolved"
                row["clf_confidence"] = c.confidence
                row["clf_correct"] = c.text is not None and normalize(c.text) == want
                row["clf_same"] = (
                    c.text is not None
                    and row["resolved"]
                    and normalize(c.text) == normalize(h.text or "")
                )
            rows.append(row)
    return rows


def oof_scores(records: list[dict[str, Any]], cache: Path | None) -> dict[int, dict[str, Any]]:
    """Leave-one-repository-out classifier scores per record index (the shipped configuration):
    the top parse-ok candidate and the confidence of every candidate text (normalised)."""
    import pickle

    from holefill.merge.classifier import MergeClassifier, make_example, train

    if cache is not None and cache.exists():
        examples = pickle.loads(cache.read_bytes())
    else:
        examples = [make_example(r) for r in records]
        if cache is not None:
            cache.write_bytes(pickle.dumps(examples))
    cfg = load_default().meta.get("config") or {"hidden": 8, "l2": 1e-2, "none_weight": 1.0}
    out: dict[int, dict[str, Any]] = {}
    for repo in sorted({r["repo"] for r in records}):
        train_ex = [e for e, r in zip(examples, records, strict=True) if r["repo"] != repo]
        model = MergeClassifier(train(train_ex, **cfg))
        for ex, rec in zip(examples, records, strict=True):
            if rec["repo"] != repo:
                continue
            ranked = model.rank(ex.feats)
            want = normalize(rec["resolution"])
            out[rec["_index"]] = {
                "top_conf": ranked[0].confidence if ranked else 0.0,
                "top_pattern": ranked[0].pattern if ranked else None,
                "top_correct": bool(ranked) and normalize(ranked[0].text) == want,
                "conf_by_text": {normalize(c.text): c.confidence for c in ranked},
            }
    return out


def _cell() -> dict[str, int]:
    return {"resolved": 0, "correct": 0, "order_only": 0}


def _finish(table: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    out = {}
    for key, c in sorted(table.items(), key=lambda kv: -kv[1]["resolved"]):
        out[key] = {
            **c,
            "precision": round(c["correct"] / c["resolved"], 3) if c["resolved"] else None,
            "precision_modulo_order": round((c["correct"] + c["order_only"]) / c["resolved"], 3)
            if c["resolved"]
            else None,
        }
    return out


def tables(rows: list[dict[str, Any]]) -> dict[str, Any]:
    per: dict[str, dict[str, dict[str, int]]] = {
        name: defaultdict(_cell)
        for name in ("per_class", "per_rule", "per_rule_scope", "per_rule_context", "per_signature")
    }
    for row in rows:
        if not row["resolved"]:
            continue
        sites = row["sites"]
        keys = {
            "per_class": {rule_class({r for r, _ in sites})},
            "per_rule": {r for r, _ in sites},
            "per_rule_scope": {f"{r} @ {c.split('/')[0]}" for r, c in sites},
            "per_rule_context": {f"{r} @ {c}" for r, c in sites},
            "per_signature": {" + ".join(sorted({f"{r}@{c.split('/')[0]}" for r, c in sites}))},
        }
        for name, ks in keys.items():
            for k in ks:
                cell = per[name][k]
                cell["resolved"] += 1
                cell["correct"] += row["correct"]
                cell["order_only"] += row["order_only"]
    n = len(rows)
    resolved = [r for r in rows if r["resolved"]]
    correct = sum(r["correct"] for r in resolved)
    out: dict[str, Any] = {
        "hunks": n,
        "resolved": len(resolved),
        "correct": correct,
        "precision": round(correct / len(resolved), 3) if resolved else None,
        "order_only": sum(r["order_only"] for r in resolved),
    }
    out.update({name: _finish(t) for name, t in per.items()})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--json", type=Path, default=None, help="write tables (and rows) here")
    ap.add_argument("--classifier", action="store_true", help="also run the classifier alone")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument(
        "--oof",
        action="store_true",
        help="leave-one-repo-out classifier scores for each hunk (rows: oof_*)",
    )
    ap.add_argument("--cache", type=Path, default=None, help="pickle of featurised examples")
    args = ap.parse_args(argv)
    dev = set(load_default().meta.get("dev_repos", []))
    if not dev:
        raise SystemExit("the classifier's weights name no dev repositories")
    records = [
        {**json.loads(line), "_index": i} for i, line in enumerate(args.data.open(encoding="utf-8"))
    ]
    records = [r for r in records if r.get("repo") not in dev]
    if args.limit:
        records = records[: args.limit]
    t0 = time.time()
    rows = hunk_rows(records, classifier=args.classifier)
    if args.oof:
        scores = oof_scores(records, args.cache)
        for row in rows:
            sc = scores[row["index"]]
            row["oof_top_conf"] = sc["top_conf"]
            row["oof_top_pattern"] = sc["top_pattern"]
            row["oof_top_correct"] = sc["top_correct"]
            if row["resolved"]:
                row["oof_conf_of_structured"] = sc["conf_by_text"].get(normalize(row["text"]))
    report = {"repos": sorted({r["repo"] for r in rows}), "excluded": sorted(dev)}
    report.update(tables(rows))
    report["per_repo"] = {
        repo: {
            k: v
            for k, v in tables([r for r in rows if r["repo"] == repo]).items()
            if not k.startswith("per_")
        }
        for repo in report["repos"]
    }
    report["seconds"] = round(time.time() - t0, 1)
    for name in ("per_class", "per_rule", "per_rule_scope", "per_signature"):
        print(f"\n{name}")
        for key, c in report[name].items():
            print(
                f"  {key:60s} {c['resolved']:5d} {c['correct']:5d} {c['precision']!s:>6} "
                f"order-only {c['order_only']}"
            )
    summary = {k: v for k, v in report.items() if not k.startswith("per_")}
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({**report, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
