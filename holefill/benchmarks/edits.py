"""`holefill bench edits`: KV cache update after real edits, full vs prefix vs PIE.

For commits of a git repository (default: a fixture repository made from standard-library files
with scripted edits — insertions, deletions, replacements, multi-place renames), each modified
Python file is opened at its old version as a ~2,000-token window, the commit's hunks are applied
as editor edits, left to right, and the cache is brought up to date; then a single-line greedy
completion is asked for at the end of the first changed line. Per edit and mode: the update time
and the completion.
"""

from __future__ import annotations

import argparse
import difflib
import random
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from holefill.benchmarks.common import package_dir
from holefill.completion.engine import CompletionEngine, CompletionRequest

MODES = ("full", "prefix", "pie")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", help="git repository to replay (default: generated fixture)")
    parser.add_argument("--max-commits", type=int, default=60)
    parser.add_argument("--max-edits", type=int, default=40)
    parser.add_argument("--window-tokens", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift", action="store_true",
                        help="also measure the refresh threshold's effect over a long edit stream")
    parser.add_argument("--fim", type=int, default=0, metavar="N",
                        help="only the fill-in-the-middle session (a FIM model, fim on): N "
                             "cursor walks, the cache after each step against a fresh encode")


@dataclass
class EditCase:
    old: str  # window of the old file
    edits: list[tuple[int, int, str]]  # (start, end, text), each in the coordinates of the result
    new: str
    cursor: int  # end of the first changed line, in `new`
    kind: str  # insertion | deletion | replacement | multi-place
    position: float  # first edit's offset as a share of the window


# -- fixture repository ---------------------------------------------------------------------

FIXTURE_FILES = ("json/decoder.py", "json/encoder.py", "email/feedparser.py",
                 "email/_policybase.py", "logging/handlers.py", "http/cookies.py")


def make_fixture_repo(path: Path, seed: int = 0, commits_per_file: int = 8) -> Path:
    """A git repository whose history edits real standard-library code in the ways people do."""
    rng = random.Random(seed)
    path.mkdir(parents=True, exist_ok=True)
    git = ["git", "-C", str(path), "-c", "user.name=bench", "-c", "user.email=bench@localhost",
           "-c", "commit.gpgsign=false"]
    subprocess.run(git + ["init", "-q"], check=True)
    stdlib = package_dir("json").parent
    for name in FIXTURE_FILES:
        source = (stdlib / name).read_text(encoding="utf-8")
        target = path / name.replace("/", "_")
        target.write_text(source, encoding="utf-8")
        subprocess.run(git + ["add", target.name], check=True)
        subprocess.run(git + ["commit", "-qm", f"add {name}"], check=True)
        for i in range(commits_per_file):
            text = target.read_text(encoding="utf-8")
            target.write_text(_scripted_edit(text, rng, i), encoding="utf-8")
            subprocess.run(git + ["commit", "-qam", f"edit {name} #{i}", "--allow-empty"],
                           check=True)
    return path


def _scripted_edit(text: str, rng: random.Random, i: int) -> str:
    lines = text.split("\n")
    # Stay in the first ~2,000 tokens (about 7,000 characters), where the windows are.
    limit = max(10, min(len(lines) - 2, _line_at(text, 7000)))
    kind = ("insertion", "deletion", "replacement", "multi-place")[i % 4]
    at = rng.randrange(5, limit)
    if kind == "insertion":
        indent = re.match(r"\s*", lines[at]).group()
        new = [f"{indent}# checked: {rng.randrange(1000)}",
               f"{indent}trace_{rng.randrange(100)} = None"][: rng.randrange(1, 3)]
        lines[at:at] = new
    elif kind == "deletion":
        del lines[at:at + rng.randrange(1, 4)]
    elif kind == "replacement":
        lines[at] = re.sub(r"\b(\w+)\b", lambda m: m.group(1) + "_v2", lines[at], count=1)
    else:
        names = sorted(set(re.findall(r"\b[a-z_]{4,}\b", "\n".join(lines[:limit]))))
        name = rng.choice(names) if names else "self"
        head = "\n".join(lines[:limit])
        return re.sub(rf"\b{name}\b", name + "_renamed", head) + "\n" + "\n".join(lines[limit:])
    return "\n".join(lines)


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset)


# -- edits from history ---------------------------------------------------------------------

def cases_from_repo(repo: Path, encode: Callable[[str], list[int]], window_tokens: int,
                    max_commits: int) -> list[EditCase]:
    log = subprocess.run(["git", "-C", str(repo), "log", "--format=%H", "-n", str(max_commits),
                          "--no-merges"], capture_output=True, text=True, check=True).stdout
    cases: list[EditCase] = []
    for sha in log.split():
        files = subprocess.run(
            ["git", "-C", str(repo), "diff-tree", "--no-commit-id", "-r", "--name-only",
             "--diff-filter=M", sha], capture_output=True, text=True, check=True).stdout.split()
        for name in files:
            if not name.endswith(".py"):
                continue
            old, new = (_show(repo, f"{sha}~1:{name}"), _show(repo, f"{sha}:{name}"))
            if old is None or new is None:
                continue
            case = make_case(old, new, encode, window_tokens)
            if case is not None:
                cases.append(case)
    return cases


def _show(repo: Path, spec: str) -> str | None:
    proc = subprocess.run(["git", "-C", str(repo), "show", spec], capture_output=True)
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", errors="replace")


def make_case(old_file: str, new_file: str, encode: Callable[[str], list[int]],
              window_tokens: int) -> EditCase | None:
    """The hunks of one file change that fall in a ~window_tokens window of the old file."""
    old_lines = old_file.splitlines(keepends=True)
    new_lines = new_file.splitlines(keepends=True)
    ops = [op for op in difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
           .get_opcodes() if op[0] != "equal"]
    if not ops:
        return None
    # Window: whole lines of the old file around the first hunk, which falls anywhere from the
    # window's start to its end (a deterministic spread: PIE's advantage depends on how much
    # cached text follows the edit).
    first_line = ops[0][1]
    start_line = max(0, first_line - (first_line * 7919 + len(old_lines)) % 200)
    end_line, tokens = start_line, 0
    while end_line < len(old_lines) and tokens < window_tokens:
        tokens += len(encode(old_lines[end_line]))
        end_line += 1
    ops = [op for op in ops if op[2] <= end_line and op[1] >= start_line]
    if not ops:
        return None
    old = "".join(old_lines[start_line:end_line])
    edits: list[tuple[int, int, str]] = []
    shift = 0
    for _, i1, i2, j1, j2 in ops:
        a = len("".join(old_lines[start_line:i1]))
        b = a + len("".join(old_lines[i1:i2]))
        text = "".join(new_lines[j1:j2])
        edits.append((a + shift, b + shift, text))
        shift += len(text) - (b - a)
    new = old
    for a, b, text in edits:
        new = new[:a] + text + new[b:]
    first = edits[0]
    line_end = new.find("\n", first[0] + max(0, len(first[2]) - 1))
    cursor = len(new) if line_end < 0 else line_end
    if len(ops) > 1:
        kind = "multi-place"
    elif ops[0][0] == "insert":
        kind = "insertion"
    elif ops[0][0] == "delete":
        kind = "deletion"
    else:
        kind = "replacement"
    return EditCase(old=old, edits=edits, new=new, cursor=cursor, kind=kind,
                    position=edits[0][0] / max(1, len(old)))


# -- measurement ----------------------------------------------------------------------------

def encoded_window(engine: CompletionEngine, text: str):
    """A session holding `text` fully encoded (what the editor had before the edit)."""
    session = engine.new_session()
    session.reset(text, len(text))
    if session.start != 0 or session.end != len(text):
        raise RuntimeError("the session window does not hold the whole case window")
    session.sync(len(session.tokens))
    return session


def copy_session(engine: CompletionEngine, base, mode: str):
    """An independent copy of `base` in another cache mode (saves encoding the window again)."""
    engine.settings = engine.settings.updated({"cache_mode": mode})
    session = engine.new_session()
    for name in ("doc", "start", "end", "encoded", "refreshed_upto"):
        setattr(session, name, getattr(base, name))
    session.tokens, session.ends = list(base.tokens), list(base.ends)
    n = base.encoded
    session.cache.k[:, :, :n] = base.cache.k[:, :, :n]
    session.cache.v[:, :, :n] = base.cache.v[:, :, :n]
    session.cache.length = n
    return session


def measure(engine: CompletionEngine, case: EditCase, base, mode: str) -> tuple[float, str]:
    """(cache update ms, completion) for one case in one mode."""
    session = copy_session(engine, base, mode)
    doc_id = f"bench://edits/{mode}"
    engine.store.put(doc_id, session)
    start = time.perf_counter()
    for a, b, text in case.edits:
        session.apply_edit(a, b, text)
    session.sync(len(session.tokens))
    update_ms = (time.perf_counter() - start) * 1000
    result = engine.complete(CompletionRequest(text=case.new, offset=case.cursor, doc_id=doc_id,
                                               max_new_tokens=24))
    engine.forget(doc_id)
    return update_ms, (result.items[0].text if result.items else "")


def fim_walks(engine: CompletionEngine, n: int, seed: int) -> dict:
    """The FIM session (kvcache/fim_session.py) through typing and line moves: per step, the
    next token after the cached prompt from the updated cache against a fresh encode of the same
    prompt (argmax agreement, KL), and the update time against the fresh encode's."""
    import torch

    from holefill.kvcache.fim_session import FimSession
    from holefill.kvcache.session import PREFILL_CHUNK

    rng = random.Random(seed)
    texts = [(package_dir(f.split("/")[0]) / f.split("/")[1]).read_text(encoding="utf-8")
             for f in FIXTURE_FILES]
    steps: dict[str, list[dict]] = {"type": [], "next_line": [], "jump_down": [], "jump_up": []}
    for walk in range(n):
        text = texts[walk % len(texts)]
        starts = [i for i, ch in enumerate(text) if ch == "\n"][40:-40]
        line_end = rng.choice(starts)
        session = engine.new_session()
        if not isinstance(session, FimSession):
            raise SystemExit("bench edits --fim needs a model with FIM on (e.g. --model "
                             "qwen2.5-coder-0.5b with HOLEFILL_FIM=on)")
        session.reset(text, line_end)
        session.sync(session.prepare(line_end, [], engine.can_heal).visible)
        moves = [("type", line_end - rng.randrange(1, 6))]  # a few characters back on the line
        nxt = text.find("\n", line_end + 1)
        moves.append(("next_line", nxt if nxt > 0 else line_end))
        down = starts[min(len(starts) - 1, starts.index(line_end) + rng.randrange(3, 12))]
        moves.append(("jump_down", down))
        up = starts[max(0, starts.index(line_end) - rng.randrange(3, 12))]
        moves.append(("jump_up", up))
        for kind, cursor in moves:
            t0 = time.perf_counter()
            prompt = session.prepare(cursor, [], engine.can_heal)
            session.sync(prompt.visible)
            update_ms = (time.perf_counter() - t0) * 1000
            hide = session.begin_scratch(prompt.visible)
            got = session.scratch_forward(session.tokens[prompt.visible:], prompt.visible,
                                          hide)[-1]
            session.end_scratch()
            t1 = time.perf_counter()
            fresh = engine.decoder.new_cache(len(session.tokens) + 8)
            ids = torch.tensor(session.tokens)
            for a in range(0, len(ids), PREFILL_CHUNK):  # as a session encodes
                out = engine.decoder.forward(fresh, ids[a:a + PREFILL_CHUNK])
            fresh_ms = (time.perf_counter() - t1) * 1000
            want = out[-1]
            lp, lq = torch.log_softmax(want, -1), torch.log_softmax(got, -1)
            steps[kind].append({"agree": float(int(want.argmax()) == int(got.argmax())),
                                "kl": float((lp.exp() * (lp - lq)).sum()),
                                "update_ms": update_ms, "fresh_ms": fresh_ms,
                                "drift": session.drift})
    return {kind: {"n": len(rows),
                   "argmax_agreement": round(statistics.mean(r["agree"] for r in rows), 3),
                   "kl_median": round(statistics.median(r["kl"] for r in rows), 5),
                   "update_ms_median": round(statistics.median(r["update_ms"] for r in rows), 1),
                   "fresh_encode_ms_median": round(statistics.median(r["fresh_ms"] for r in rows),
                                                   1)}
            for kind, rows in steps.items()}


def run(args: argparse.Namespace) -> dict:
    if args.fim:
        engine = CompletionEngine.load(args.settings)
        return {"suite": "edits", "model": engine.info.name, "fim": engine.info.extra.get("fim"),
                "fim_walks": fim_walks(engine, args.fim, args.seed)}
    # The session's window must hold the whole ~window_tokens window of the old file.
    engine = CompletionEngine.load(
        args.settings.updated({"max_prompt_tokens": args.window_tokens * 3 // 2}))
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(args.repo) if args.repo else make_fixture_repo(Path(tmp) / "fixture",
                                                                   args.seed)
        cases = cases_from_repo(repo, engine.encode, args.window_tokens, args.max_commits)
    rng = random.Random(args.seed)
    if len(cases) > args.max_edits:
        cases = rng.sample(cases, args.max_edits)
    rows = []
    for case in cases:
        row = {"kind": case.kind, "position": round(case.position, 3)}
        base = encoded_window(engine, case.old)
        for mode in MODES:
            row[f"{mode}_ms"], row[f"{mode}_text"] = measure(engine, case, base, mode)
        rows.append(row)
    report: dict = {"suite": "edits", "model": engine.info.name, "dtype": engine.info.dtype,
                    "repo": args.repo or "fixture", "n_edits": len(rows)}
    if args.drift:
        report["drift"] = drift(engine, args.seed)
    if not rows:
        return report
    report.update(_summary(rows))
    report["by_kind"] = {kind: _summary([r for r in rows if r["kind"] == kind])
                         for kind in sorted({r["kind"] for r in rows})}
    first_half = [r for r in rows if r["position"] < 0.5]
    if first_half:
        report["first_half"] = _summary(first_half)
    report["rows"] = [{k: v for k, v in r.items() if not k.endswith("_text")} for r in rows]
    if getattr(args, "plot", None):
        plot(rows, args.plot)
    return report


def drift(engine: CompletionEngine, seed: int, n_edits: int = 30,
          thresholds: tuple[float, ...] = (0.05, 0.1, 0.3, 1e9)) -> dict:
    """PIE keeps stale context in shifted tokens; the refresh threshold bounds it. Over a stream
    of `n_edits` line insertions into a ~1,500-token window, after each edit: KL(full || PIE) of
    the next-token distribution at the end of the window, per threshold (1e9 = never refresh),
    and how many refreshes (full re-encodes) that cost."""
    import torch

    rng = random.Random(seed)
    text = (package_dir("json") / "decoder.py").read_text(encoding="utf-8")[:5000]
    edits = []
    doc = text
    for i in range(n_edits):
        lines = doc.split("\n")
        at = rng.randrange(1, len(lines) - 5)
        offset = len("\n".join(lines[:at])) + 1
        insert = f"# note {i}: {rng.choice(['check', 'todo', 'fixme'])} value_{i} = {i}\n"
        edits.append((offset, insert))
        doc = doc[:offset] + insert + doc[offset:]

    def next_logprobs(session) -> torch.Tensor:
        session.sync(len(session.tokens) - 1)
        hide = session.begin_scratch(len(session.tokens) - 1)
        out = session.scratch_forward([session.tokens[-1]], len(session.tokens) - 1, hide)[-1]
        session.end_scratch()
        return torch.log_softmax(out, -1)

    result = {}
    for threshold in thresholds:
        engine.settings = engine.settings.updated({"cache_mode": "pie"})
        session = engine.new_session()
        session.reset(text, len(text))
        session.sync(len(session.tokens))
        kls, refreshes = [], 0
        for offset, insert in edits:
            session.apply_edit(offset, offset, insert)
            session.sync(len(session.tokens))
            if session.drift > threshold:
                session.refresh()
                refreshes += 1
            fresh = engine.new_session()
            fresh.reset(session.doc, len(session.doc))
            ref, got = next_logprobs(fresh), next_logprobs(session)
            kls.append(float(torch.sum(ref.exp() * (ref - got))))
        name = "never" if threshold >= 1e9 else str(threshold)
        result[name] = {"mean_kl": round(statistics.mean(kls), 5),
                        "max_kl": round(max(kls), 5), "refreshes": refreshes}
    return result


def _summary(rows: list[dict]) -> dict:
    return {
        "n": len(rows),
        "median_update_ms": {m: round(statistics.median(r[f"{m}_ms"] for r in rows), 1)
                             for m in MODES},
        "median_ratio_pie_vs_full": round(statistics.median(
            r["pie_ms"] / max(r["full_ms"], 1e-6) for r in rows), 3),
        "median_ratio_prefix_vs_full": round(statistics.median(
            r["prefix_ms"] / max(r["full_ms"], 1e-6) for r in rows), 3),
        "agreement_pie_vs_full": round(sum(r["pie_text"] == r["full_text"] for r in rows)
                                       / len(rows), 3),
        "agreement_prefix_vs_full": round(sum(r["prefix_text"] == r["full_text"] for r in rows)
                                          / len(rows), 3),
    }


def plot(rows: list[dict], out: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install matplotlib") from None
    fig, ax = plt.subplots(figsize=(7, 4))
    for mode, marker in zip(MODES, "o^s", strict=True):
        ax.scatter([r["position"] for r in rows], [r[f"{mode}_ms"] for r in rows], label=mode,
                   marker=marker, alpha=0.7)
    ax.set_xlabel("position of the first edit in the window (share of the window)")
    ax.set_ylabel("cache update time (ms)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("KV cache update after an edit, ~2,000-token windows")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
