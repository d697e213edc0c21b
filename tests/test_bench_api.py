"""`holefill bench api` on the fixture repository: task generation, report keys, and one small
run with the real model (slow)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from holefill.benchmarks import api as bench
from holefill.config import Settings
from holefill.context.index import ApiIndex

REPO = Path(__file__).parent / "data" / "api_repo"


def args_for(**overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args([])
    args.repo = str(REPO)
    args.settings = Settings(threads=1)
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_tasks_are_cross_file_calls_cut_after_the_dot():
    index = ApiIndex.build(REPO)
    tasks = bench.make_tasks(index, str(REPO), n=20, seed=0, per_file=20)
    assert tasks
    for task in tasks:
        assert task["doc"].endswith(".")
        source = Path(task["path"]).read_text()
        assert source.startswith(task["doc"] + task["truth"])
        assert task["rest"].startswith(task["truth"])
        owner = index.symbol(task["owner"])
        assert owner is not None and owner.path != task["path"]  # defined in another file
    truths = {t["truth"] for t in tasks}
    assert {"add_item", "total"} <= truths
    assert "discounted" in truths  # product.discounted(10): via find_product's return type


def test_report_without_the_model():
    report = bench.run(args_for(no_model=True, no_rerank=True, n=10, search_n=10))
    assert report["index"]["files"] == 5 and report["index"]["seconds"] >= 0
    assert report["n"] > 0
    for key in ("jedi_alpha_top1", "ours_top1", "correlated", "candidates_hold_truth"):
        assert 0.0 <= report["ranking"][key] <= 1.0
    assert report["ranking"]["candidates_hold_truth"] == 1.0
    assert 0.0 <= report["search_top1"] <= report["search_top5"] <= 1.0
    assert report["search"]["n"] > 0
    assert report["configs"] == {}


def test_unknown_configuration_is_a_clear_error():
    with pytest.raises(SystemExit, match="unknown configuration"):
        bench.run(args_for(configs="model,magic"))


def test_configurations_apply_to_the_run_settings_not_to_each_other():
    base = Settings(api_name_prior=2.5)
    off = bench.config_settings(base, "model+block+constrain-prior")
    assert off.api_name_prior == 0.0 and off.constrain_api_names and off.api_context
    on = bench.config_settings(base, "model+block+constrain")
    assert on.api_name_prior == 2.5 and on.constrain_api_names
    assert not bench.config_settings(base, "model").constrain_api_names


@pytest.mark.slow
def test_small_run_with_the_model():
    report = bench.run(args_for(n=3, search_n=5, no_rerank=True, configs="model,model+block+constrain"))
    assert set(report["configs"]) == {"model", "model+block+constrain"}
    for values in report["configs"].values():
        for key in ("api_name_top1", "full_call_exact", "nonexistent_name_rate"):
            assert 0.0 <= values[key] <= 1.0 and not math.isnan(values[key])
    assert report["configs"]["model+block+constrain"]["nonexistent_name_rate"] == 0.0


def test_saved_tasks_load_back_identical_and_are_checked(tmp_path):
    index = ApiIndex.build(REPO)
    tasks = bench.make_tasks(index, str(REPO), n=20, seed=0, per_file=20)
    path = tmp_path / "tasks.json"
    bench.save_tasks(tasks, str(REPO), path)
    assert "def " not in path.read_text()  # locations only, no source text
    assert bench.load_tasks(path, str(REPO)) == tasks
    # a run reads them instead of generating its own
    report = bench.run(args_for(no_model=True, no_rerank=True, search_n=5, tasks=str(path)))
    assert report["n"] == len(tasks) and report["tasks_file"] == str(path)
    # a file that does not fit the repository is a clear error, not a silent other task set
    import json

    data = json.loads(path.read_text())
    data["tasks"][0]["offset"] += 1
    path.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match="does not fit"):
        bench.load_tasks(path, str(REPO))
    data["tasks"][0]["path"] = "missing.py"
    path.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match="does not fit"):
        bench.load_tasks(path, str(REPO))
    path.write_text("{")
    with pytest.raises(SystemExit, match="cannot read task file"):
        bench.load_tasks(path, str(REPO))
