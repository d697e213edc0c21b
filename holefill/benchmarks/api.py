"""`holefill bench api`: APIEval-style local API completion (LANCE, RESEARCH §5.5).

Tasks are generated from a repository: at a call `recv.name(...)` whose definition (jedi goto,
independent of our ranking) is a function or method in *another* file of the repository, the
file is cut just after `recv.` and the engine completes it. The index sees the cut file too (as
an editor would), so the truth's own use is not counted in the usage ranking.

Per configuration (model alone / + signature block / + constrained names, with or without the
workspace's name prior), on the first draft:
`api_name_top1` (the name written first is the truth), `full_call_exact` (the rest of the line
matches), `nonexistent_name_rate` (the name is not an attribute of the receiver: the truth
owner's members in the index plus jedi's completions there). Ranking: is the truth first in
jedi's alphabetical completion list, and in ours? Conversational set: the first docstring
sentence of a function as the query; is the function in the search top 1 / top 5?
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
import tracemalloc
from pathlib import Path

import tree_sitter as ts

from holefill.benchmarks.common import exact_match, package_dir
from holefill.context import api
from holefill.context.index import _LANG, ApiIndex, Symbol

# Each configuration is applied on top of the run's settings (the name prior's weight is the
# settings' api_name_prior unless a configuration sets it).
CONFIGS = {
    "model": {"api_context": False, "constrain_api_names": False},
    "model+block": {"api_context": True, "constrain_api_names": False},
    "model+block+constrain": {"api_context": True, "constrain_api_names": True},
    "model+constrain": {"api_context": False, "constrain_api_names": True},  # ablation
    # ablation: the constraint without the workspace's name prior (the model alone chooses)
    "model+block+constrain-prior": {"api_context": True, "constrain_api_names": True,
                                    "api_name_prior": 0.0},
}
_CALLS = ts.Query(_LANG, "(call function: (attribute object: (_) @recv attribute: (identifier) @name))")
_NAME = re.compile(r"[A-Za-z_]\w*")


def config_settings(base, config: str):
    """The run's settings with one configuration applied (never another configuration's)."""
    return base.updated(CONFIGS[config])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", help="repository directory (default: the installed pygls)")
    parser.add_argument("-n", type=int, default=30, help="completion tasks")
    parser.add_argument("--search-n", type=int, default=50, help="conversational queries")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", default=",".join(list(CONFIGS)[:3]),
                        help="comma-separated subset of: " + ", ".join(CONFIGS))
    parser.add_argument("--no-rerank", action="store_true",
                        help="skip the embedding re-ranker even when it is installed")
    parser.add_argument("--no-model", action="store_true",
                        help="index, ranking and search only (no completions)")
    parser.add_argument("--tasks", metavar="FILE",
                        help="read the completion tasks from FILE (written by --save-tasks) "
                             "instead of generating them: runs compare on the same tasks")
    parser.add_argument("--save-tasks", metavar="FILE",
                        help="write the generated completion tasks to FILE (locations only)")


def build_index(repo: str) -> tuple[ApiIndex, dict]:
    """The repository's index and what building it cost (seconds, peak traced memory)."""
    tracemalloc.start()
    start = time.perf_counter()
    index = ApiIndex.build(repo)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    symbols = len(index.symbols())
    return index, {"files": index.stats.files, "symbols": symbols, "seconds": round(seconds, 2),
                   "peak_mb": round(peak / 2**20, 1), "truncated": index.stats.truncated,
                   "skipped_binary": index.stats.skipped_binary,
                   "skipped_large": index.stats.skipped_large}


def make_tasks(index: ApiIndex, repo: str, n: int, seed: int, per_file: int = 2) -> list[dict]:
    """Up to n tasks: cursor after `recv.` at calls of functions defined in another file."""
    import jedi

    from holefill.context.holes import _project

    project = _project(repo)
    rng = random.Random(seed)
    paths = sorted(info.path for info in index.modules.values())
    rng.shuffle(paths)
    tasks: list[dict] = []
    deadline = time.perf_counter() + 60 + 20 * n  # jedi goto is the cost: bound it
    for path in paths:
        if len(tasks) >= n or time.perf_counter() > deadline:
            break
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        data = text.encode("utf-8")
        root = ts.Parser(_LANG).parse(data).root_node
        names = ts.QueryCursor(_CALLS).captures(root).get("name", [])
        rng.shuffle(names)
        script, found = None, 0
        for node in names[:12]:
            if found >= per_file or len(tasks) >= n:
                break
            row, col = node.start_point
            line_bytes = data.split(b"\n")[row]
            col_chars = len(line_bytes[:col].decode("utf-8", "replace"))
            try:
                script = script or jedi.Script(text, path=path, project=project)
                defs = script.goto(row + 1, col_chars, follow_imports=True)
            except Exception:
                continue
            sym = _defined_elsewhere(index, defs, path)
            if sym is None:
                continue
            lines = text.split("\n")
            offset = sum(len(s) + 1 for s in lines[:row]) + col_chars
            name = node.text.decode()
            tasks.append({"path": path, "line": row + 1, "offset": offset, "truth": name,
                          "rest": lines[row][col_chars:].strip(), "owner": sym.parent,
                          "doc": text[:offset]})
            found += 1
    return tasks


TASKS_DIR = Path(__file__).parent / "api_tasks"  # frozen task sets (--tasks)


def save_tasks(tasks: list[dict], repo: str, path: str | Path) -> None:
    """Write the tasks' locations (no source text) relative to `repo`. Generated sets differ
    between processes (jedi's inference iterates hash-ordered sets), so a frozen file is the
    way to compare runs."""
    import json

    rows = [{"path": str(Path(t["path"]).relative_to(repo)), "line": t["line"],
             "offset": t["offset"], "truth": t["truth"], "rest": t["rest"], "owner": t["owner"]}
            for t in tasks]
    data = {"repo": Path(repo).name, "version": _version(repo), "tasks": rows}
    Path(path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def load_tasks(path: str | Path, repo: str) -> list[dict]:
    """The tasks of a --save-tasks file, checked against the files of `repo`: a task whose
    file is missing or no longer has the truth's name at its offset is a clear error."""
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        rows = data["tasks"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"holefill bench api: cannot read task file {path}: {exc}") from exc
    tasks = []
    for row in rows:
        file = Path(repo) / row["path"]
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SystemExit(f"holefill bench api: task file {path} does not fit {repo} "
                             f"(version {_version(repo)}; the file has {data.get('version')}): "
                             f"{exc}") from exc
        offset, truth = row["offset"], row["truth"]
        if text[offset:offset + len(truth)] != truth:
            raise SystemExit(f"holefill bench api: task file {path} does not fit {repo} "
                             f"(version {_version(repo)}; the file has {data.get('version')}): "
                             f"{row['path']}:{row['line']} has no {truth!r} at offset {offset}")
        tasks.append({**row, "path": str(file), "doc": text[:offset]})
    return tasks


def _version(repo: str) -> str | None:
    """The installed distribution's version for a site-packages directory, else None."""
    from importlib import metadata

    if Path(repo).resolve().parent.name not in ("site-packages", "dist-packages"):
        return None  # a checkout named like an installed package is not that version
    try:
        return metadata.version(Path(repo).name)
    except (metadata.PackageNotFoundError, ValueError):
        return None


def _defined_elsewhere(index: ApiIndex, defs: list, path: str) -> Symbol | None:
    for d in defs:
        where = getattr(d, "module_path", None)
        if d.type != "function" or where is None or str(where) == path:
            continue
        info = index.module_at(where)
        if info is None:
            continue
        for sym in [*info.defs.values(), *(m for c in info.classes.values() for m in c.values())]:
            if sym.name == d.name and sym.line == d.line and sym.kind in ("function", "method"):
                return sym
    return None


def _existing(index: ApiIndex, task: dict, jedi_names: list[str]) -> set[str]:
    owner = index.symbol(task["owner"]) if task["owner"] else None
    names = set(jedi_names)
    if owner is not None:
        names |= set(index.members(owner))
    return names


def _jedi_names(task: dict, repo: str) -> list[str]:
    import jedi

    from holefill.context.holes import _project

    doc = task["doc"]
    line = doc.count("\n") + 1
    col = len(doc) - (doc.rfind("\n") + 1)
    try:
        found = jedi.Script(doc, path=task["path"], project=_project(repo)).complete(line, col)
    except Exception:
        return []
    return [c.name for c in found]


def search_set(index: ApiIndex, n: int, seed: int) -> list[tuple[str, Symbol]]:
    """(first docstring sentence, function) pairs with informative docstrings."""
    pool = [s for s in index.symbols() if s.kind in ("function", "method")
            and len(s.doc.split()) >= 4 and not s.name.startswith("__")]
    rng = random.Random(seed)
    rng.shuffle(pool)
    out = []
    for sym in pool[:n]:
        sentence = re.split(r"(?<=\.)\s", sym.doc)[0]
        out.append((sentence, sym))
    return out


def run_search(index: ApiIndex, queries: list[tuple[str, Symbol]], rerank: bool) -> dict:
    reranker = api.Reranker() if rerank else None
    search = api.ApiSearch(index, reranker)
    top1 = top5 = 0
    start = time.perf_counter()
    for query, sym in queries:
        hits = [h.symbol.qualname for h in search.search(query, k=5)]
        top1 += bool(hits) and hits[0] == sym.qualname
        top5 += sym.qualname in hits
    count = max(len(queries), 1)
    return {"n": len(queries), "search_top1": round(top1 / count, 3),
            "search_top5": round(top5 / count, 3),
            "ms_per_query": round((time.perf_counter() - start) * 1000 / count, 1)}


def run(args: argparse.Namespace) -> dict:
    repo = str(Path(args.repo).resolve()) if args.repo else str(package_dir("pygls"))
    if not Path(repo).is_dir():
        raise SystemExit(f"holefill bench api: not a directory: {repo}")
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"holefill bench api: unknown configuration(s) {unknown}")
    index, stats = build_index(repo)
    report: dict = {"suite": "api", "repo": repo, "index": stats}

    queries = search_set(index, args.search_n, args.seed)
    report["search"] = run_search(index, queries, rerank=False)
    if api.Reranker.available() and not args.no_rerank:
        report["search_rerank"] = run_search(index, queries, rerank=True)
    report["search_top1"] = report["search"]["search_top1"]
    report["search_top5"] = report["search"]["search_top5"]

    if getattr(args, "tasks", None):
        tasks = load_tasks(args.tasks, repo)
        report["tasks_file"] = str(args.tasks)
    else:
        tasks = make_tasks(index, repo, args.n, args.seed)
    if getattr(args, "save_tasks", None):
        save_tasks(tasks, repo, args.save_tasks)
    report["n"] = len(tasks)
    engine = None
    if not args.no_model and configs and tasks:
        from holefill.completion.engine import CompletionEngine

        # One greedy draft, no checker: the name the model writes is what is measured.
        settings = args.settings.updated({"drafts": 1, "check_suggestions": False,
                                          "typed_holes": False, "max_new_tokens": 32})
        engine = CompletionEngine.load(settings)
        engine.api_index = index
        report["model"] = engine.info.name
    per: dict[str, dict[str, list[float]]] = {c: {} for c in configs}
    ranking: dict[str, list[float]] = {"jedi_alpha_top1": [], "ours_top1": [],
                                       "correlated": [], "candidates_hold_truth": []}
    for task in tasks:
        full_text = Path(task["path"]).read_text(encoding="utf-8")
        index.update_file(task["path"], task["doc"], edited=False)  # the editor's view
        try:
            _score_task(task, repo, index, engine, configs, per, ranking)
        finally:
            index.update_file(task["path"], full_text, edited=False)
    report["ranking"] = {k: _mean(v) for k, v in ranking.items()}
    report["configs"] = {c: {k: _mean(v) for k, v in m.items()} for c, m in per.items()
                         if engine is not None}
    return report


def _score_task(task: dict, repo: str, index: ApiIndex, engine, configs: list[str],
                per: dict, ranking: dict) -> None:
    from holefill.completion.engine import CompletionRequest

    doc = task["doc"]
    jedi_names = _jedi_names(task, repo)
    existing = _existing(index, task, jedi_names)
    corr = api.correlate(index, doc, len(doc), task["path"], repo)
    ranking["correlated"].append(float(corr is not None))
    ranking["candidates_hold_truth"].append(float(corr is not None
                                                  and task["truth"] in corr.names))
    ranking["jedi_alpha_top1"].append(float(bool(jedi_names) and jedi_names[0] == task["truth"]))
    ours = api.order_names(corr, jedi_names) if jedi_names else (corr.names if corr else [])
    ranking["ours_top1"].append(float(bool(ours) and ours[0] == task["truth"]))
    if engine is None:
        return
    base = engine.settings
    for config in configs:
        engine.settings = config_settings(base, config)
        try:
            result = engine.complete(CompletionRequest(text=doc, offset=len(doc),
                                                       path=task["path"], workspace=repo))
        finally:
            engine.settings = base  # the next configuration starts from the run's settings
        pred = result.items[0].text.split("\n")[0] if result.items else ""
        m = _NAME.match(pred)
        name = m.group() if m else ""
        stats = per[config]
        stats.setdefault("api_name_top1", []).append(float(name == task["truth"]))
        stats.setdefault("full_call_exact", []).append(float(exact_match(pred, task["rest"])))
        stats.setdefault("nonexistent_name_rate", []).append(
            float(bool(name) and name not in existing))
        stats.setdefault("empty_rate", []).append(float(not name))
        stats.setdefault("context_ms", []).append(result.timings_ms.get("context", 0.0))


def _mean(values: list[float]) -> float:
    return round(statistics.mean(values), 3) if values else float("nan")
