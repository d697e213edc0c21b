"""`holefill bench latency`: server-side latency of single-line suggestions, warm model.

A ~2,000-token Python file; at random lines the user has typed part of the line (the rest is not
there yet), types one more character at the end of it and asks for a suggestion for the rest of
the line. The document keeps its KV session (with edits applied), so the request reuses the
cache, as in an editor. Also reported: the first request at each position (a jump from the
previous position: the edit there and the text up to the cursor are encoded).

With `--backend openai --endpoint URL` the same requests go to an OpenAI-compatible server
(remote.py) and, unless `--remote-only`, also to the local engine in the same run, so the two
are compared on the same document, positions and settings. Remote stages: "prefill" is the time
to the first streamed token (network, queueing and the engine's prefill), "decode" the rest.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

from holefill.benchmarks.common import percentile, sample_code
from holefill.completion.engine import CompletionEngine, CompletionRequest

STAGES = ("tokenize", "context", "prefill", "decode", "postprocess", "check")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=30, help="measured requests")
    parser.add_argument("--file-tokens", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--remote-only", action="store_true",
                        help="with --backend openai: skip the local engine's run")
    parser.add_argument("--fresh", type=int, default=5,
                        help="first requests on freshly opened copies of the file (time to "
                             "the first suggestion)")
    parser.add_argument("--no-idle", action="store_true",
                        help="no idle-time maintenance between positions (the server runs it "
                             "while the user pauses)")


def count_tokens(engine: Any, text: str) -> int:
    """The local engine's token count; the remote engine has no tokenizer here: an estimate."""
    if hasattr(engine, "encode"):
        return len(engine.encode(text))
    from holefill.context.report import estimate_tokens

    return estimate_tokens(text)


def document(engine: Any, n_tokens: int) -> str:
    """The first lines of the sample code that make up about `n_tokens` tokens."""
    lines = sample_code(n_tokens * 6).split("\n")
    out: list[str] = []
    total = 0
    for line in lines:
        total += count_tokens(engine, line + "\n")
        out.append(line)
        if total >= n_tokens:
            break
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> dict:
    settings = args.settings.updated({"max_new_tokens": 48})
    if settings.backend != "openai":
        return measure(CompletionEngine.load(settings), args)
    from holefill.completion.remote import RemoteEngine

    remote = RemoteEngine.load(settings)
    try:
        if args.remote_only:
            return measure(remote, args)
        local = CompletionEngine.load(settings.updated({"backend": "local"}))
        text = document(local, args.file_tokens)  # one document, the local tokenizer's count
        results = {"suite": "latency", "local": measure(local, args, text),
                   "openai": measure(remote, args, text)}
        results["openai"]["file_tokens"] = results["local"]["file_tokens"]
    finally:
        remote.close()
    results["openai_over_local_p50"] = round(
        results["openai"]["p50_ms"] / max(1e-9, results["local"]["p50_ms"]), 2)
    return results


def measure(engine: Any, args: argparse.Namespace, text: str | None = None) -> dict:
    """The suite on one engine (local CompletionEngine or RemoteEngine)."""
    if text is None:
        text = document(engine, args.file_tokens)
    rng = random.Random(args.seed)
    lines = text.split("\n")
    # Line ends of non-trivial lines in the second half of the file (long prompts).
    candidates = [i for i, line in enumerate(lines) if len(line.strip()) >= 12
                  and i > len(lines) // 3]
    picks = sorted(rng.sample(candidates, min(args.n, len(candidates))))
    doc_id = "bench://latency"
    typing, jump = [], []
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    reused = []
    engine.complete(CompletionRequest(text=text, offset=len(text) // 2, doc_id=doc_id))  # warm-up
    # Time to the first suggestion: a freshly opened copy of the file, the cursor at the end of
    # a line in its second half (the engine is warm; the document's cache is empty).
    first_ms = []
    fresh_rng = random.Random(args.seed + 1)  # the typing positions stay those of older runs
    for i, index in enumerate(fresh_rng.sample(candidates, min(args.fresh, len(candidates)))):
        end = sum(len(s) + 1 for s in lines[:index]) + len(lines[index])
        t0 = time.perf_counter()
        engine.complete(CompletionRequest(text=text, offset=end, doc_id=f"bench://fresh/{i}"))
        first_ms.append((time.perf_counter() - t0) * 1000)
        engine.forget(f"bench://fresh/{i}")
    idle = getattr(engine, "maintain", None) if not args.no_idle else None
    if idle:
        idle()
    suggested, decoded = 0, []
    for index in picks:
        line = lines[index]
        start = sum(len(s) + 1 for s in lines[:index])
        # The user is writing this line: a random part of it is typed (the rest not yet), they
        # pause (first request), type one more character and pause again (measured request).
        body = line.rstrip()
        indent = len(body) - len(body.lstrip())
        cut = rng.randrange(indent + max(1, (len(body) - indent) // 3), len(body))
        rest = lines[index + 1:]
        before = "\n".join(lines[:index] + [line[:cut]] + rest)
        after = "\n".join(lines[:index] + [line[:cut + 1]] + rest)
        first = engine.complete(CompletionRequest(text=before, offset=start + cut, doc_id=doc_id))
        jump.append(sum(first.timings_ms.get(s, 0.0) for s in STAGES))
        result = engine.complete(CompletionRequest(text=after, offset=start + cut + 1,
                                                   doc_id=doc_id))
        total = sum(result.timings_ms.get(s, 0.0) for s in STAGES)
        typing.append(total)
        for s in STAGES:
            stages[s].append(result.timings_ms.get(s, 0.0))
        if not hasattr(engine, "capabilities") or "cached_prompt_share" in result.timings_ms:
            reused.append(result.reused_tokens / max(1, result.prompt_tokens))
        suggested += bool(result.items)
        decoded.append(result.timings_ms.get("decode_tokens", 0.0))
        if idle:  # the user pauses before moving on: the server's idle-time work runs
            idle()
    return {
        "suite": "latency",
        "model": engine.info.name,
        "device": engine.info.device,
        "dtype": engine.info.dtype,
        "backend": "openai" if hasattr(engine, "capabilities") else "local",
        "file_tokens": count_tokens(engine, text),  # remote-only: an estimate
        "n": len(typing),
        "p50_ms": round(percentile(typing, 50), 1),
        "p95_ms": round(percentile(typing, 95), 1),
        "breakdown_ms": {s: round(statistics.median(v), 1) for s, v in stages.items()},
        # remote: the engine's cached-token share, when it reports one (vLLM does)
        "reused_prompt_share": round(statistics.median(reused), 3) if reused else None,
        "with_suggestion": suggested,
        "median_decoded_tokens": statistics.median(decoded),
        "jump_p50_ms": round(percentile(jump, 50), 1),
        "jump_p95_ms": round(percentile(jump, 95), 1),
        # wall time of the first request on a freshly opened document (everything included)
        "first_suggestion_p50_ms": round(percentile(first_ms, 50), 1) if first_ms else None,
        "first_suggestion_max_ms": round(max(first_ms), 1) if first_ms else None,
        "idle_maintenance": bool(idle),
    }
