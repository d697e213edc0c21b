"""`holefill bench latency`: server-side latency of single-line suggestions, warm model.

A ~2,000-token Python file; at random lines the user has typed part of the line (the rest is not
there yet), types one more character at the end of it and asks for a suggestion for the rest of
the line. The document keeps its KV session (with edits applied), so the request reuses the
cache, as in an editor. Also reported: the first request at each position (a jump from the
previous position: the edit there and the text up to the cursor are encoded).
"""

from __future__ import annotations

import argparse
import random
import statistics

from holefill.benchmarks.common import percentile, sample_code
from holefill.completion.engine import CompletionEngine, CompletionRequest

STAGES = ("tokenize", "context", "prefill", "decode", "postprocess", "check")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=30, help="measured requests")
    parser.add_argument("--file-tokens", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)


def document(engine: CompletionEngine, n_tokens: int) -> str:
    """The first lines of the sample code that make up about `n_tokens` tokens."""
    lines = sample_code(n_tokens * 6).split("\n")
    out: list[str] = []
    total = 0
    for line in lines:
        total += len(engine.encode(line + "\n"))
        out.append(line)
        if total >= n_tokens:
            break
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> dict:
    settings = args.settings.updated({"max_new_tokens": 48})
    engine = CompletionEngine.load(settings)
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
        reused.append(result.reused_tokens / max(1, result.prompt_tokens))
        suggested += bool(result.items)
        decoded.append(result.timings_ms.get("decode_tokens", 0.0))
    return {
        "suite": "latency",
        "model": engine.info.name,
        "device": engine.info.device,
        "dtype": engine.info.dtype,
        "file_tokens": len(engine.encode(text)),
        "n": len(typing),
        "p50_ms": round(percentile(typing, 50), 1),
        "p95_ms": round(percentile(typing, 95), 1),
        "breakdown_ms": {s: round(statistics.median(v), 1) for s, v in stages.items()},
        "reused_prompt_share": round(statistics.median(reused), 3),
        "with_suggestion": suggested,
        "median_decoded_tokens": statistics.median(decoded),
        "jump_p50_ms": round(percentile(jump, 50), 1),
        "jump_p95_ms": round(percentile(jump, 95), 1),
    }
