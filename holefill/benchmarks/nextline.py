"""`holefill bench nextline`: next-line exact match with and without token healing.

Tasks are cut from real Python files the embedded model predates (pygls 2 and lsprotocol 2025,
installed as our dependencies): the cursor sits (a) after the indentation of a blanked line, or
(b) inside the first identifier of the line. The truth is the rest of that line.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics

from holefill.benchmarks.common import edit_similarity, exact_match, package_dir
from holefill.completion.engine import CompletionEngine, CompletionRequest

IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]{3,}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=40, help="tasks per cursor kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--packages", default="pygls,lsprotocol")


def make_tasks(packages: list[str], n: int, seed: int) -> list[dict]:
    files = []
    for pkg in packages:
        files += sorted(p for p in package_dir(pkg).rglob("*.py") if p.stat().st_size > 2000)
    rng = random.Random(seed)
    tasks: list[dict] = []
    attempts = 0
    while len(tasks) < 2 * n and attempts < 100 * n:
        attempts += 1
        path = rng.choice(files)
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        index = rng.randrange(10, max(11, len(lines)))
        if index >= len(lines):
            continue
        line = lines[index]
        body = line.strip()
        if len(body) < 8 or body.startswith(("#", '"', "'")):
            continue
        start = sum(len(s) + 1 for s in lines[:index])
        indent = len(line) - len(line.lstrip())
        kind = "indent" if len(tasks) % 2 == 0 else "identifier"
        if kind == "indent":
            offset = start + indent
        else:
            match = IDENT.match(line, indent)
            if not match:
                continue
            offset = start + indent + rng.randrange(1, len(match.group()) - 1)
        # The document ends at the cursor line: a next-line task sees only the prefix.
        doc = text[:offset]
        truth = line[offset - start:]
        tasks.append({"path": str(path.name), "kind": kind, "text": doc, "truth": truth})
    return tasks


def run(args: argparse.Namespace) -> dict:
    settings = args.settings.updated({"max_new_tokens": 48})
    engine = CompletionEngine.load(settings)
    tasks = make_tasks(args.packages.split(","), args.n, args.seed)
    report: dict = {"suite": "nextline", "model": engine.info.name, "dtype": engine.info.dtype,
                    "n": len(tasks)}
    for healing in (False, True):
        engine.settings = engine.settings.updated({"token_healing": healing})
        by_kind: dict[str, dict[str, list[float]]] = {}
        for task in tasks:
            result = engine.complete(CompletionRequest(text=task["text"],
                                                       offset=len(task["text"])))
            pred = result.items[0].text if result.items else ""
            pred = pred.split("\n")[0]
            stats = by_kind.setdefault(task["kind"], {"em": [], "es": [], "empty": []})
            stats["em"].append(float(exact_match(pred, task["truth"])))
            stats["es"].append(edit_similarity(pred, task["truth"]))
            stats["empty"].append(float(not pred.strip()))
        key = "healing" if healing else "plain"
        report[key] = {
            kind: {m: round(statistics.mean(v), 3) for m, v in stats.items()}
            for kind, stats in by_kind.items()
        }
        if tasks:
            report[key]["all"] = {
                m: round(statistics.mean(x for s in by_kind.values() for x in s[m]), 3)
                for m in ("em", "es", "empty")
            }
    return report
