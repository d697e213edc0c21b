"""`holefill bench holes`: typed-hole tasks, no context vs typed-hole context vs error rounds.

Tasks are the benchmark's own fixtures in `holes_tasks/`: eight small model-view-update style apps
(state and message types as dataclasses/enums/aliases in `models.py`, the update logic in another
module). Every line of a logic module that ends in `# HOLE` is one task: the cursor sits after
`return ` or after the `=` of an assignment (else after the indentation), the rest of the line is
removed, and the completed line must make the app's tests pass. A task's tests are the ones that
pass with the reference line and fail with `None` in the hole; its score is the share of them that
pass with the completion (mean % of tests passed, as in the ChatLSP paper). Programs run in a
subprocess (`python -E -s _runner.py` in a temporary copy of the app) with a timeout.

Configurations (the paper's ablation), each a prompt = context block + file text, with the
document offset shifted by the block (the engine sees one longer document):

- `none`: the file text only;
- `expected`: + the expected type line;
- `types`: + relevant type definitions;
- `headers`: + relevant headers (the full typed-hole context);
- `rounds`: full context, and a suggestion that `check_suggestion` rejects is regenerated with the
  errors as comments after the context block (at most `--rounds` times); still rejected -> dropped.

Per configuration: `pass_rate`, `exact_match`, `edit_similarity` (of the filled line),
`context_tokens` (mean tokens of the block), `unparsable_shown` (share of shown suggestions whose
file does not parse), `rejected` (suggestions the checker would reject), `dropped` (rounds only),
`latency_ms` (median context + completion time per task). `rejected` counts first suggestions
the checker rejects (in `rounds`, before any error round), `rejected_by_kind` by error kind.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from holefill.benchmarks.common import edit_similarity, exact_match

log = logging.getLogger(__name__)

TASKS_DIR = Path(__file__).with_name("holes_tasks")
MARKER = re.compile(r"[ \t]*# HOLE[ \t]*$")
CURSOR = re.compile(r"^[ \t]*(?:return[ \t]+|[\w.]+(?:[ \t]*:[^=\n]+)?[ \t]*=[ \t]+)")
CONFIGS = ("none", "expected", "types", "headers", "rounds")
TEST_TIMEOUT_S = 20.0


@dataclass
class HoleTask:
    id: str  # "app/file.py:LINE"
    app: str
    file: str  # file name inside the app folder
    line: int  # 1-based line of the hole
    text: str  # the file with the hole: the line cut at the cursor, markers removed
    offset: int  # cursor offset into `text`
    truth: str  # the reference rest of the line


def app_names(root: Path = TASKS_DIR) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "check_app.py").exists())


def strip_markers(source: str) -> str:
    return "\n".join(MARKER.sub("", line) for line in source.split("\n"))


def load_tasks(root: Path = TASKS_DIR) -> list[HoleTask]:
    tasks: list[HoleTask] = []
    for app in app_names(root):
        for path in sorted((root / app).glob("*.py")):
            source = path.read_text(encoding="utf-8")
            if "# HOLE" not in source:
                continue
            clean = strip_markers(source).split("\n")
            for index, raw in enumerate(source.split("\n")):
                if not MARKER.search(raw):
                    continue
                line = clean[index]
                m = CURSOR.match(line)
                cut = m.end() if m else len(line) - len(line.lstrip())
                before = "\n".join(clean[:index])
                prefix = (before + "\n" if index else "") + line[:cut]
                text = prefix + "\n" + "\n".join(clean[index + 1:])
                tasks.append(HoleTask(id=f"{app}/{path.name}:{index + 1}", app=app,
                                      file=path.name, line=index + 1, text=text,
                                      offset=len(prefix), truth=line[cut:]))
    return tasks


def fill(task: HoleTask, completion: str) -> str:
    return task.text[:task.offset] + completion + task.text[task.offset:]


def workspace_copy(app: str, dest: Path, root: Path = TASKS_DIR) -> Path:
    """A copy of the app with markers stripped (jedi treats site-packages as library code)."""
    target = dest / app
    target.mkdir(parents=True, exist_ok=True)
    for path in (root / app).glob("*.py"):
        (target / path.name).write_text(strip_markers(path.read_text(encoding="utf-8")),
                                        encoding="utf-8")
    shutil.copy(root / "_runner.py", target / "_runner.py")
    return target


def run_tests(task: HoleTask, source: str, timeout: float = TEST_TIMEOUT_S,
              root: Path = TASKS_DIR) -> dict[str, bool]:
    """Run the app's tests with `source` as the hole's file; {test: passed} ({} when the
    program does not import or times out)."""
    with tempfile.TemporaryDirectory(prefix="holefill-holes-") as tmp:
        app_dir = workspace_copy(task.app, Path(tmp), root)
        (app_dir / task.file).write_text(source, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "SYSTEMROOT", "LANG")}
        try:
            proc = subprocess.run([sys.executable, "-E", "-s", "-B", "_runner.py"], cwd=app_dir,
                                  capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {}
    lines = [line for line in proc.stdout.strip().split("\n") if line.startswith("{")]
    if not lines:
        return {}
    try:
        results = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {}
    return {k: bool(v) for k, v in results.items() if k.startswith("test_")}


def relevant_tests(task: HoleTask, root: Path = TASKS_DIR) -> list[str]:
    """Tests that pass with the reference line and fail with `None` in the hole."""
    reference = run_tests(task, fill(task, task.truth), root=root)
    broken = run_tests(task, fill(task, "None"), root=root)
    return sorted(name for name, ok in reference.items() if ok and not broken.get(name, False))


def score(task: HoleTask, completion: str, tests: list[str], root: Path = TASKS_DIR) -> float:
    """Share of the task's tests that pass with `completion` in the hole."""
    if not tests:
        return 0.0
    results = run_tests(task, fill(task, completion), root=root)
    return sum(1 for t in tests if results.get(t, False)) / len(tests)


# --------------------------------------------------------------------------- the benchmark


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated subset of {','.join(CONFIGS)}")
    parser.add_argument("--limit", type=int, default=0, help="first N tasks only (0: all)")
    parser.add_argument("--budget", type=int, default=512, help="context block token budget")
    parser.add_argument("--rounds", type=int, default=2, help="error rounds (config rounds)")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--details", action="store_true", help="per-task results in the JSON")


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip()


def _parses(task: HoleTask, completion: str) -> bool:
    import ast

    try:
        ast.parse(fill(task, completion))
        return True
    except SyntaxError:
        return False


def run(args: argparse.Namespace) -> dict:
    from holefill.completion.engine import CompletionEngine, CompletionRequest
    from holefill.context.check import check_suggestion
    from holefill.context.holes import hole_context
    from holefill.context.prompt import context_block, error_feedback

    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        raise SystemExit(f"holefill bench holes: unknown configs {sorted(unknown)}")
    # The suite runs the checker and the error rounds itself (per configuration), on one greedy
    # draft: the engine must show the raw suggestion.
    settings = args.settings.updated({"max_new_tokens": args.max_new_tokens, "drafts": 1,
                                      "check_suggestions": False, "error_rounds": 0})
    t_load = time.perf_counter()
    engine = CompletionEngine.load(settings)
    load_s = time.perf_counter() - t_load

    def count(text: str) -> int:
        return len(engine.encode(text)) if text else 0

    tasks = load_tasks()
    if args.limit:
        tasks = tasks[:args.limit]
    report: dict = {"suite": "holes", "model": engine.info.name, "dtype": engine.info.dtype,
                    "device": engine.info.device, "n_tasks": len(tasks),
                    "n_apps": len({t.app for t in tasks}), "load_s": round(load_s, 1)}
    with tempfile.TemporaryDirectory(prefix="holefill-holes-ws-") as tmp:
        workspaces = {app: workspace_copy(app, Path(tmp)) for app in {t.app for t in tasks}}
        tests = {t.id: relevant_tests(t) for t in tasks}
        empty = [t.id for t in tasks if not tests[t.id]]
        if empty:
            report["tasks_without_tests"] = empty
        contexts = {}
        ctx_ms: list[float] = []
        for task in tasks:
            ws = workspaces[task.app]
            start = time.perf_counter()
            contexts[task.id] = hole_context(task.text, task.offset, str(ws / task.file), str(ws))
            ctx_ms.append((time.perf_counter() - start) * 1000)
        report["hole_context_ms"] = {"median": round(statistics.median(ctx_ms), 1),
                                     "max": round(max(ctx_ms), 1)}
        report["expected_known"] = sum(1 for c in contexts.values() if c.expected.known)
        # tokens of the whole models module, the "exhaustive" alternative to typed-hole context
        report["models_file_tokens"] = round(statistics.mean(
            count((ws / "models.py").read_text(encoding="utf-8")) for ws in workspaces.values()), 1)
        details: list[dict] = []
        for config in configs:
            rows = []
            for task in tasks:
                ws = workspaces[task.app]
                path = str(ws / task.file)
                hole = contexts[task.id]
                if config == "none":
                    block = ""
                elif config == "expected":
                    block = context_block(replace(hole, types=[], headers=[]), args.budget, count)
                elif config == "types":
                    block = context_block(replace(hole, headers=[]), args.budget, count)
                else:
                    block = context_block(hole, args.budget, count)
                start = time.perf_counter()
                feedback = ""
                rounds_used = 0
                shown = True
                first_errors = None
                while True:
                    prompt = block + feedback
                    result = engine.complete(CompletionRequest(
                        text=prompt + task.text, offset=len(prompt) + task.offset,
                        doc_id=f"holes:{task.id}", max_new_tokens=args.max_new_tokens))
                    pred = _first_line(result.items[0].text) if result.items else ""
                    errors = check_suggestion(task.text, task.offset, pred, path, str(ws),
                                              expected=hole.expected) if pred else []
                    if first_errors is None:
                        first_errors = errors
                    if config != "rounds" or not errors:
                        break
                    if rounds_used >= args.rounds:
                        shown = False
                        break
                    rounds_used += 1
                    feedback = error_feedback(errors)
                latency = (time.perf_counter() - start) * 1000 + hole.timings_ms.get("total", 0)
                final = pred if shown else ""
                row = {
                    "id": task.id, "pred": final, "truth": task.truth,
                    "pass": score(task, final, tests[task.id]) if tests[task.id] else 0.0,
                    "em": float(exact_match(final, task.truth)),
                    "es": edit_similarity(final, task.truth),
                    "tokens": count(block),
                    "shown": bool(final),
                    "unparsable": bool(final) and not _parses(task, final),
                    "rejected": bool(first_errors),
                    "error_kinds": sorted({e.kind for e in first_errors or []}),
                    "rounds": rounds_used, "latency_ms": latency,
                }
                rows.append(row)
                log.info("%s %s pass=%.2f em=%d pred=%r", config, task.id, row["pass"],
                         row["em"], final)
            shown_rows = [r for r in rows if r["shown"]]
            kinds: dict[str, int] = {}
            for r in rows:
                for k in r["error_kinds"]:
                    kinds[k] = kinds.get(k, 0) + 1
            report[config] = {
                "pass_rate": round(100 * statistics.mean(r["pass"] for r in rows), 1),
                "exact_match": round(100 * statistics.mean(r["em"] for r in rows), 1),
                "edit_similarity": round(statistics.mean(r["es"] for r in rows), 3),
                "context_tokens": round(statistics.mean(r["tokens"] for r in rows), 1),
                "unparsable_shown": round(sum(r["unparsable"] for r in shown_rows)
                                          / max(1, len(shown_rows)), 3),
                "rejected": sum(r["rejected"] for r in rows),
                "rejected_by_kind": kinds,
                "dropped": sum(1 for r in rows if not r["shown"]),
                "rounds_used": sum(r["rounds"] for r in rows),
                "latency_ms": round(statistics.median(r["latency_ms"] for r in rows), 1),
            }
            if args.details:
                details.extend({"config": config, **{k: v for k, v in r.items()
                                                     if k != "latency_ms"}} for r in rows)
        if args.details:
            report["details"] = details
    return report
