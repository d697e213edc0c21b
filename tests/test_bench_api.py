"""`holefill bench api` on the fixture repository: task generation, report keys, and one small
run with the real model (slow)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
from conftest import SMALL_MODEL

from holefill.benchmarks import api as bench
from holefill.config import Settings
from holefill.context.index import ApiIndex

REPO = Path(__file__).parent / "data" / "api_repo"


def args_for(**overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args([])
    args.repo = str(REPO)
    args.settings = Settings(model=SMALL_MODEL, threads=1)
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


CART = '''
class Cart:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add_item(self, name: str) -> None:
        self.items.append(name)

    def total(self) -> int:
        return len(self.items)
'''

SHOP = '''
from .cart import Cart


def fill(names: list[str]) -> Cart:
    cart = Cart()
    for name in names:
        cart.add_item(name)
    return cart


def count(cart: Cart) -> int:
    return cart.total()
'''

CHECKOUT_TEST = '''
import pygls
from pygls.cart import Cart


def test_total():
    cart = Cart()
    cart.add_item("a")
    assert cart.total() == 1
'''


def test_tasks_on_a_checkout_of_an_installed_package(tmp_path):
    """`holefill bench api --repo <httpx checkout>` found 0 tasks: the checkout's package is
    also installed (not editable), and jedi resolved the checkout's own imports, relative ones
    included, to the installed copy, whose functions are not in the index. Same structure here,
    with pygls (installed with holefill) as the shadowed package."""
    import importlib.util

    installed = importlib.util.find_spec("pygls")
    assert installed is not None and installed.origin and tmp_path not in Path(
        installed.origin).parents
    repo = tmp_path / "pygls"  # `git clone`: pygls/ holding the pygls/ package
    (repo / "pygls").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "pyproject.toml").write_text('[project]\nname = "pygls"\n')
    (repo / ".gitignore").write_text("__pycache__/\n*.egg-info/\nbuild/\ndist/\n")
    (repo / "pygls" / "__init__.py").write_text("from .cart import Cart\n")
    (repo / "pygls" / "cart.py").write_text(CART)
    (repo / "pygls" / "shop.py").write_text(SHOP)
    (repo / "tests" / "__init__.py").write_text("")
    (repo / "tests" / "test_cart.py").write_text(CHECKOUT_TEST)
    index = ApiIndex.build(repo)
    assert index.stats.files == 5
    tasks = bench.make_tasks(index, str(repo), n=20, seed=0, per_file=20)
    assert {(Path(t["path"]).name, t["truth"]) for t in tasks} == {
        ("shop.py", "add_item"), ("shop.py", "total"),
        ("test_cart.py", "add_item"), ("test_cart.py", "total")}
    for task in tasks:
        owner = index.symbol(task["owner"])
        assert owner is not None and Path(owner.path) == repo / "pygls" / "cart.py"
    assert bench._version(str(repo)) is None  # not the installed pygls's version
    assert bench._version(str(Path(installed.origin).parent)) is not None


def test_workspace_paths_go_before_site_packages_after_the_stdlib():
    from holefill.context.holes import _workspace_first

    env = ["/py/lib/python311.zip", "/py/lib/python3.11", "/py/lib/python3.11/lib-dynload",
           "/py/lib/python3.11/site-packages", "/home/u/.local/lib/python3.11/site-packages"]
    assert _workspace_first(["/ws", "/ws/src"], env) == env[:3] + ["/ws", "/ws/src"] + env[3:]
    assert _workspace_first(["/ws"], ["/ws", *env]) == env[:3] + ["/ws"] + env[3:]
    assert _workspace_first(["/ws"], env[:3]) is None  # no site-packages: jedi's own order
