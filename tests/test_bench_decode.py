"""`holefill bench decode`: both parts in one command, the issue's headline keys, the plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_unknown_part_is_a_clear_error():
    proc = subprocess.run([sys.executable, "-m", "holefill.cli", "bench", "decode", "--parts",
                           "drafts,nope"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0 and "unknown parts ['nope']" in proc.stderr


@pytest.mark.slow
def test_one_small_run_has_every_headline_key_and_a_plot(tmp_path):
    out, png = tmp_path / "decode.json", tmp_path / "decode.png"
    proc = subprocess.run(
        [sys.executable, "-m", "holefill.cli", "bench", "decode", "-n", "1", "--ks", "3",
         "--ngram-ks", "", "--samples", "0", "--batched-tasks", "0", "--repeat", "1",
         "--stop-thresholds", "", "--threads", "1", "--json", str(out), "--plot", str(png)],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["suite"] == "decode"
    assert report["drafts"]["suite"] == "decode_drafts" and report["exit"]["suite"] == "decode_exit"
    for key in ("spd_time_ratio_k3_vs_greedy", "best_of_3_exact_match", "greedy_exact_match",
                "selfspec_speedup", "selfspec_identical", "lookup_speedup", "lookup_identical",
                "lookup_acceptance", "selfspec_lookup_speedup", "selfspec_lookup_identical",
                "stop_precision", "stop_recall", "tokens_saved"):
        assert key in report, key
    # lossless modes: every output is plain greedy's (the verify pass is row-exact on CPU)
    assert report["selfspec_identical"] and report["lookup_identical"]
    assert report["lookup_speedup"] > 0
    assert report["spd_time_ratio_k3_vs_greedy"] > 0 and 0 <= report["tokens_saved"] <= 1
    assert png.stat().st_size > 1000
