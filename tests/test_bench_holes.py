"""The typed-hole benchmark's tasks and harness (holefill.benchmarks.holes)."""

from __future__ import annotations

import argparse
import ast

import pytest

from holefill.benchmarks import holes as bench


@pytest.fixture(scope="module")
def tasks() -> list[bench.HoleTask]:
    return bench.load_tasks()


def test_task_suite_shape(tasks):
    assert len(tasks) >= 40
    apps = {t.app for t in tasks}
    assert len(apps) >= 8
    assert len({t.id for t in tasks}) == len(tasks)
    for task in tasks:
        assert "# HOLE" not in task.text
        assert task.truth.strip() and "# HOLE" not in task.truth
        # the hole's file imports definitions from another module of the app
        assert "from models import" in task.text
        # the reference line parses in place
        ast.parse(bench.fill(task, task.truth))


def test_cursor_positions(tasks):
    by_id = {t.id: t for t in tasks}
    todo = by_id["todo/update.py:37"]
    assert todo.text[:todo.offset].endswith("\n        return ")
    assert todo.truth == "replace(model, filter=msg.filter)"
    assignment = by_id["todo/update.py:29"]
    assert assignment.text[:assignment.offset].endswith("todo = ")


@pytest.mark.parametrize("task_id", ["todo/update.py:37", "cart/cart.py:16",
                                     "traffic/controller.py:12"])
def test_harness_passes_reference_and_fails_empty_hole(tasks, task_id):
    task = next(t for t in tasks if t.id == task_id)
    tests = bench.relevant_tests(task)
    assert tests
    assert bench.score(task, task.truth, tests) == 1.0
    assert bench.score(task, "", tests) == 0.0


def test_add_arguments():
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--configs", "none,rounds", "--limit", "3"])
    assert (args.configs, args.limit, args.rounds, args.budget) == ("none,rounds", 3, 2, 512)
