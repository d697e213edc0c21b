"""``holefill bench merge``: the per-stage rows, the previous resolver and both-sides-add counts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from holefill.benchmarks import merge as bench


def _row(**kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "resolved": False,
        "correct": False,
        "stage": None,
        "previous_resolved": False,
        "previous_correct": False,
    }
    row.update(kw)
    return row


def test_stage_rows_split_the_total_by_stage() -> None:
    rows = [
        _row(resolved=True, correct=True, stage="structured"),
        _row(resolved=True, correct=False, stage="structured"),
        _row(
            resolved=True,
            correct=True,
            stage="classifier",
            previous_resolved=True,
            previous_correct=True,
        ),
        _row(previous_resolved=True),
    ]
    stages = bench._stage_rows(rows)
    assert stages["structured"] == {
        "resolved": 2,
        "correct": 1,
        "accuracy": 0.25,
        "precision": 0.5,
        "coverage": 0.5,
    }
    assert stages["classifier"]["resolved"] == 1 and stages["classifier"]["precision"] == 1.0
    assert stages["total"] == {
        "resolved": 3,
        "correct": 2,
        "accuracy": 0.5,
        "precision": 0.6667,
        "coverage": 0.75,
    }
    prev = bench._previous_row(rows)
    assert (prev["resolved"], prev["correct"], prev["precision"]) == (2, 1, 0.5)


def test_bench_on_two_hunks(tmp_path: Path) -> None:
    common = {"context_before": "import os\n", "label": "OTHER", "path": "m.py", "repo": "r"}
    records = [
        # One side's insertion holds the other's: the identical class, resolved by default.
        {
            **common,
            "merge_sha": "a",
            "base": "",
            "ours": "import abc\nimport json\n",
            "theirs": "import json\n",
            "resolution": "import abc\nimport json\n",
            "context_after": "\nf()\n",
        },
        # Two different imports at one place: commutative, below the precision floor.
        {
            **common,
            "merge_sha": "b",
            "base": "",
            "ours": "import sys\n",
            "theirs": "import re\n",
            "resolution": "import re\nimport sys\n",
            "context_after": "\n\ndef main():\n    return os, sys, re\n",
        },
    ]
    data = tmp_path / "c.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    args = argparse.Namespace(
        data=data, repos="all", min_confidence=None, limit=None, per_hunk=False, json=None
    )
    report = bench.run(args)
    assert report["n"] == 2 and report["files_with_bytes_changed_outside"] == 0
    assert report["stages"]["structured"]["resolved"] == 1
    assert report["stages"]["structured"]["correct"] == 1
    assert report["stages"]["total"]["resolved"] == (
        report["stages"]["structured"]["resolved"] + report["stages"]["classifier"]["resolved"]
    )
    assert report["previous_resolver"]["resolved"] <= 2
    adds = report["both_sides_add"]
    assert (adds["n"], adds["structured_resolved"], adds["structured_wrong"]) == (2, 1, 0)
    assert report["structured_ms"]["hunks"] == 2
