"""``holefill bench merge``: the conflict resolver on held-out repositories.

Each record of the data (``conflicts_train.jsonl`` layout) becomes
``context_before + diff3 conflict block + context_after``; the records of one file in one merge
(same ``merge_sha`` and ``path``) are concatenated into one file, as the merge driver would see
them (``--per-hunk``: one file per record).  The resolver runs on it exactly as ``holefill
resolve`` would, and a resolved hunk is correct when it equals the recorded human ``resolution``
after whitespace normalisation.  The whole output must equal the input with only the resolved
blocks replaced (``files_with_bytes_changed_outside``).  Only the repositories held out from training are
used unless ``--repos`` says otherwise.

Metrics: accuracy (correct / all), precision (correct / resolved), coverage (resolved / all),
recall (correct / hunks that some candidate expresses), top-3 accuracy (a correct candidate among
the classifier's first three, before the threshold), the per-pattern breakdown, and the baselines
always-ours, always-theirs and token-merge-only (resolve exactly when the token diff3 is clean).

The resolver runs twice on the same files in one run: with its stages (structured, then
classifier) and as the previous resolver (the classifier alone).  ``stages`` gives accuracy,
precision and coverage per stage (over all hunks) and in total, ``previous_resolver`` the same
for the classifier-only run.  ``both_sides_add``: the hunks where each side only adds lines to
the base, with how many the structured stage resolved wrongly and how many of those differ from
the human resolution only in the order of the added lines.  ``structured_ms``: time of the
structured stage per hunk.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2].parent / "shared/data/merge/conflicts_train.jsonl"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the merge suite."""
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="conflicts JSONL file")
    parser.add_argument(
        "--repos",
        default=None,
        help="comma-separated repositories to evaluate (default: the classifier's dev repos); "
        "'all' for every record",
    )
    parser.add_argument("--min-confidence", type=float, default=None, metavar="X")
    parser.add_argument("--limit", type=int, default=None, help="first N selected records only")
    parser.add_argument(
        "--per-hunk",
        action="store_true",
        help="one file per hunk (the resolver then never sees the file's other hunks)",
    )
    try:
        parser.add_argument("--json", default=None, metavar="OUT", help="write the report here")
    except argparse.ArgumentError:
        pass  # the bench command already has it


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    resolved = sum(r["resolved"] for r in rows)
    correct = sum(r["correct"] for r in rows)
    expressible = sum(r["expressible"] for r in rows)
    tm_clean = sum(r["tm_clean"] for r in rows)
    tm_ok = sum(r["tm_correct"] for r in rows)
    return {
        "n": n,
        "accuracy": _ratio(correct, n),
        "precision": _ratio(correct, resolved),
        "recall": _ratio(correct, expressible),
        "coverage": _ratio(resolved, n),
        "abstain_rate": _ratio(n - resolved, n),
        "top3_accuracy": _ratio(sum(r["top3"] for r in rows), n),
        "oracle_expressible": _ratio(expressible, n),
        "baseline_ours": _ratio(sum(r["ours_ok"] for r in rows), n),
        "baseline_theirs": _ratio(sum(r["theirs_ok"] for r in rows), n),
        "baseline_token_merge": {
            "accuracy": _ratio(tm_ok, n),
            "precision": _ratio(tm_ok, tm_clean),
            "coverage": _ratio(tm_clean, n),
        },
    }


def file_groups(records: list[dict[str, Any]], per_hunk: bool = False
                ) -> list[list[dict[str, Any]]]:
    """Hunks of one file in one merge form one file, as the merge driver sees them (in record
    order); `per_hunk`: each hunk a file of its own."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for k, rec in enumerate(records):
        key = (str(k), "") if per_hunk else (rec.get("merge_sha", ""), rec.get("path", ""))
        groups.setdefault(key, []).append(rec)
    return list(groups.values())


def conflict_pieces(group: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(context before, conflict block, context after) per hunk of a file group; joined in
    order they are the conflicted file."""
    from holefill.merge.resolver import render_conflict

    pieces = []
    for rec in group:
        before, after = rec.get("context_before", ""), rec.get("context_after", "")
        if after and not after.endswith("\n"):
            after += "\n"
        pieces.append((before, render_conflict(rec["ours"], rec["base"], rec["theirs"]), after))
    return pieces


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the suite; returns a JSON-able report (also written to ``args.json`` when given)."""
    from holefill.merge.classifier import load_default
    from holefill.merge.patterns import normalize
    from holefill.merge.resolver import PIPELINE, ConflictError, resolve_text

    clf = load_default()
    repos_arg = getattr(args, "repos", None)
    if repos_arg == "all":
        repos: set[str] | None = None
    elif repos_arg:
        repos = {r for r in repos_arg.split(",") if r}
    else:
        repos = set(clf.meta.get("dev_repos", []))
    records = []
    with Path(args.data).open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if repos is None or rec.get("repo") in repos:
                records.append(rec)
    if getattr(args, "limit", None):
        records = records[: args.limit]

    t0 = time.time()
    rows: list[dict[str, Any]] = []
    confusion: Counter[tuple[str, str]] = Counter()
    errors = 0
    bytes_lost = 0
    for group in file_groups(records, per_hunk=getattr(args, "per_hunk", False)):
        pieces = conflict_pieces(group)
        text = "".join(b + blk + a for b, blk, a in pieces)
        try:
            res = resolve_text(
                text, min_confidence=args.min_confidence, use_git=False, pipeline=PIPELINE
            )
            previous = resolve_text(
                text, min_confidence=args.min_confidence, use_git=False, pipeline=("classifier",)
            )
            if len(res.hunks) != len(group):
                raise ConflictError("context holds conflict markers")
        except ConflictError:
            res = previous = None
        if res is not None:
            # Nothing outside the blocks may change.
            expect = "".join(
                b + ((h.text or "") if h.status == "resolved" else blk) + a
                for (b, blk, a), h in zip(pieces, res.hunks, strict=True)
            )
            bytes_lost += res.text != expect
        for k, rec in enumerate(group):
            row = _record_row(rec)
            if res is None:
                errors += 1
                rows.append(row)
                confusion[("ERROR", row["label"])] += 1
                continue
            h = res.hunks[k]
            want = normalize(rec["resolution"])
            assert previous is not None
            p = previous.hunks[k]
            row["previous_resolved"] = p.status == "resolved"
            row["previous_correct"] = p.status == "resolved" and normalize(p.text or "") == want
            row["structured_ms"] = h.structured_ms
            row["stage"] = h.stage if h.status == "resolved" else None
            row["top3"] = any(normalize(a.text) == want for a in h.alternatives[:3])
            if h.status == "resolved":
                row["resolved"] = True
                row["correct"] = normalize(h.text or "") == want
                row["pattern"] = h.pattern
                row["order_only"] = not row["correct"] and _line_multiset(
                    h.text or ""
                ) == _line_multiset(rec["resolution"])
            confusion[(h.pattern if h.status == "resolved" else "ABSTAIN", row["label"])] += 1
            rows.append(row)
    return _report(args, clf, rows, confusion, errors, bytes_lost, time.time() - t0)


def _record_row(rec: dict[str, Any]) -> dict[str, Any]:
    """Per-record facts that do not depend on the resolver (baselines, expressibility)."""
    from holefill.merge.diff3 import split_lines, token_merge
    from holefill.merge.patterns import Hunk, candidate_texts, normalize

    want = normalize(rec["resolution"])
    hunk = Hunk(rec["ours"], rec["base"], rec["theirs"])
    base_lines = [x for x in split_lines(rec["base"]) if x.strip()]
    tm = token_merge(hunk.base, hunk.ours, hunk.theirs)
    expressible = any(normalize(t) == want for t in candidate_texts(hunk, tm).values())
    return {
        "repo": rec.get("repo", ""),
        "label": rec.get("label", ""),
        "resolved": False,
        "correct": False,
        "top3": False,
        "expressible": expressible,
        "ours_ok": normalize(rec["ours"]) == want,
        "theirs_ok": normalize(rec["theirs"]) == want,
        "tm_clean": tm.clean,
        "tm_correct": tm.clean and normalize(tm.text or "") == want,
        "pattern": None,
        "stage": None,
        "previous_resolved": False,
        "previous_correct": False,
        "structured_ms": None,
        "order_only": False,
        "both_sides_add": all(
            _is_subsequence(base_lines, [x for x in split_lines(side) if x.strip()])
            for side in (rec["ours"], rec["theirs"])
        ),
    }


def _line_multiset(text: str) -> list[str]:
    from holefill.merge.patterns import normalize

    return sorted(normalize(x) for x in text.splitlines() if x.strip())


def _is_subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def _stage_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, precision and coverage of each stage over all hunks, and in total."""
    n = len(rows)
    out: dict[str, Any] = {}
    from holefill.merge.resolver import PIPELINE

    for stage in (*PIPELINE, "total"):
        sel = [r for r in rows if r["resolved"] and (stage == "total" or r["stage"] == stage)]
        correct = sum(r["correct"] for r in sel)
        out[stage] = {
            "resolved": len(sel),
            "correct": correct,
            "accuracy": _ratio(correct, n),
            "precision": _ratio(correct, len(sel)),
            "coverage": _ratio(len(sel), n),
        }
    return out


def _previous_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    resolved = sum(r["previous_resolved"] for r in rows)
    correct = sum(r["previous_correct"] for r in rows)
    return {
        "resolved": resolved,
        "correct": correct,
        "accuracy": _ratio(correct, n),
        "precision": _ratio(correct, resolved),
        "coverage": _ratio(resolved, n),
    }


def _timing(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ms = sorted(r["structured_ms"] for r in rows if r["structured_ms"] is not None)
    if not ms:
        return {"hunks": 0}
    return {
        "hunks": len(ms),
        "mean": round(sum(ms) / len(ms), 2),
        "p50": round(ms[len(ms) // 2], 2),
        "p95": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 2),
        "max": round(ms[-1], 2),
        "over_50ms": sum(x > 50 for x in ms),
    }


def _report(
    args: argparse.Namespace,
    clf: Any,
    rows: list[dict[str, Any]],
    confusion: Counter[tuple[str, str]],
    errors: int,
    bytes_lost: int,
    seconds: float,
) -> dict[str, Any]:
    report: dict[str, Any] = {"suite": "merge", "data": str(args.data)}
    report["files"] = "per-hunk" if getattr(args, "per_hunk", False) else "per-merged-file"
    report.update(_summary(rows))
    report["stages"] = _stage_rows(rows)
    report["previous_resolver"] = _previous_row(rows)
    adds = [r for r in rows if r["both_sides_add"]]
    structured_adds = [r for r in adds if r["stage"] == "structured"]
    report["both_sides_add"] = {
        "n": len(adds),
        "structured_resolved": len(structured_adds),
        "structured_correct": sum(r["correct"] for r in structured_adds),
        "structured_wrong": sum(not r["correct"] for r in structured_adds),
        "structured_wrong_order_only": sum(r["order_only"] for r in structured_adds),
        "previous_resolved": sum(r["previous_resolved"] for r in adds),
        "previous_correct": sum(r["previous_correct"] for r in adds),
    }
    report["structured_ms"] = _timing(rows)
    report["threshold"] = clf.threshold if args.min_confidence is None else args.min_confidence
    report["repos"] = sorted({r["repo"] for r in rows})
    report["per_repo"] = {
        repo: _summary([r for r in rows if r["repo"] == repo]) for repo in report["repos"]
    }
    per_pattern: dict[str, dict[str, Any]] = {}
    for pattern in sorted({r["pattern"] for r in rows if r["pattern"]}):
        sel = [r for r in rows if r["pattern"] == pattern]
        per_pattern[pattern] = {
            "stage": sel[0]["stage"],
            "resolved": len(sel),
            "correct": sum(r["correct"] for r in sel),
            "precision": _ratio(sum(r["correct"] for r in sel), len(sel)),
        }
    report["per_pattern"] = per_pattern
    report["per_label"] = {
        label: {
            "n": sum(r["label"] == label for r in rows),
            "resolved": sum(r["resolved"] for r in rows if r["label"] == label),
            "correct": sum(r["correct"] for r in rows if r["label"] == label),
        }
        for label in sorted({r["label"] for r in rows})
    }
    report["confusion"] = {f"{p} -> {lab}": c for (p, lab), c in sorted(confusion.items())}
    report["marker_errors"] = errors
    report["files_with_bytes_changed_outside"] = bytes_lost
    report["seconds"] = round(seconds, 1)
    out = getattr(args, "json", None)
    if out:
        Path(out).write_text(json.dumps(report, indent=1) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m holefill.benchmarks.merge``: run and print the report."""
    parser = argparse.ArgumentParser(prog="holefill bench merge")
    add_arguments(parser)
    report = run(parser.parse_args(argv))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
