"""`holefill bench decode_drafts`: k drafts by superposed decoding vs k sampled passes vs greedy.

Next-line tasks cut from real held-out Python files (`nextline.make_tasks`: pygls 2 and
lsprotocol, newer than the embedded model). Per task, on a warm document session (the prompt is
encoded once, so every method pays only its own decoding):

- greedy: the engine with drafts = 1;
- SPD k = 2..5: the engine with drafts = k, without n-gram and (for --ngram-ks) with the n-gram
  table of the task's package, built leave-one-out (the task's file is in it only up to the
  cursor: what the server would have indexed from a saved file);
- sequential sampling: k passes of the engine with nucleus sampling in place of greedy;
- batched sampling: transformers' generate with num_return_sequences = k against its own greedy
  generate (the engine's decoder has a batch of one), on the last 256 prompt tokens, fixed
  lengths; a ratio of transformers to transformers only.

Quality: exact match and edit similarity of the first line of the best of the k drafts (and of
the first draft). Time: the engine's prefill + decode milliseconds per request (the checker's
time is reported separately: it grows with the number of drafts).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from holefill.benchmarks.common import edit_similarity, exact_match, package_dir
from holefill.benchmarks.nextline import make_tasks
from holefill.completion.engine import CompletionEngine, CompletionRequest
from holefill.completion.ngram import NgramTable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=20, help="tasks per cursor kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--packages", default="pygls,lsprotocol")
    parser.add_argument("--ks", default="2,3,4,5", help="draft counts for superposed decoding")
    parser.add_argument("--ngram-ks", default="3", help="draft counts also run with n-grams")
    parser.add_argument("--spd-temperatures", default="",
                        help="ablation: also run k = 3 at these SPD temperatures (e.g. 0.3,1)")
    parser.add_argument("--samples", type=int, default=5, help="sequential sampled passes")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature")
    parser.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass")
    parser.add_argument("--batched-tasks", type=int, default=6,
                        help="tasks timed with transformers' batched sampling (0: skip)")


def _first_line(text: str) -> str:
    return text.split("\n")[0]


def _scores(preds: list[str], truth: str) -> dict[str, float]:
    lines = [_first_line(p) for p in preds] or [""]
    return {"em_best": float(any(exact_match(p, truth) for p in lines)),
            "es_best": max(edit_similarity(p, truth) for p in lines),
            "em_first": float(exact_match(lines[0], truth)),
            "es_first": edit_similarity(lines[0], truth)}


def _gen_ms(result) -> float:
    t = result.timings_ms
    return t.get("prefill", 0.0) + t.get("decode", 0.0)


def _forwards(result) -> float:
    """Model forward passes of one request (the prefill's included)."""
    return result.timings_ms.get("decode_tokens", 0.0)


def _nucleus(temperature: float, top_p: float, gen: torch.Generator):
    """A token picker for CompletionEngine.pick_token: nucleus sampling instead of the argmax
    (the engine's healing constraint and stop rules stay as they are)."""

    def pick(scores: torch.Tensor) -> int:
        probs = torch.softmax(scores / temperature, -1)
        sorted_p, order = probs.sort(descending=True)
        sorted_p = sorted_p * (sorted_p.cumsum(-1) - sorted_p < top_p)
        # the seeded generator lives on the CPU: draw there, whatever the model's device
        drawn = torch.multinomial((sorted_p / sorted_p.sum()).cpu(), 1, generator=gen)
        return int(order[int(drawn)])

    return pick


def _source_of(task: dict, packages: list[str]) -> Path | None:
    for pkg in packages:
        for path in package_dir(pkg).rglob(task["path"]):
            if path.read_text(encoding="utf-8").startswith(task["text"]):
                return path
    return None


def _tables(engine: CompletionEngine, packages: list[str], max_bytes: int
            ) -> dict[str, NgramTable]:
    tables = {}
    for pkg in packages:
        table = NgramTable(engine.tokenizer, max_bytes)
        table.add_workspace(package_dir(pkg))
        tables[pkg] = table
    return tables


def _hf_batched(engine: CompletionEngine, tasks: list[dict], ks: list[int], gen_tokens: int,
                temperature: float, top_p: float) -> dict:
    model = engine.hf_model
    out: dict = {"tasks": len(tasks), "prompt_tokens": 256, "new_tokens": gen_tokens}
    times: dict[str, list[float]] = {}
    with torch.inference_mode():
        for task in tasks:
            ids = torch.tensor([engine.encode(task["text"])[-256:]])
            for label, kwargs in [("greedy", {"do_sample": False})] + [
                    (f"k{k}", {"do_sample": True, "num_return_sequences": k,
                               "temperature": temperature, "top_p": top_p}) for k in ks]:
                start = time.perf_counter()
                model.generate(ids, max_new_tokens=gen_tokens, min_new_tokens=gen_tokens,
                               attention_mask=torch.ones_like(ids), **kwargs)
                times.setdefault(label, []).append((time.perf_counter() - start) * 1000)
    base = statistics.mean(times["greedy"])
    out["greedy_ms"] = round(base, 1)
    for k in ks:
        out[f"time_ratio_k{k}_vs_greedy"] = round(statistics.mean(times[f"k{k}"]) / base, 3)
    return out


def run(args: argparse.Namespace) -> dict:
    settings = args.settings.updated({"max_new_tokens": 48, "drafts": 1})
    engine = CompletionEngine.load(settings)
    packages = args.packages.split(",")
    tasks = make_tasks(packages, args.n, args.seed)
    ks = [int(k) for k in args.ks.split(",") if k]
    ngram_ks = [int(k) for k in args.ngram_ks.split(",") if k]
    spd_temps = [float(t) for t in args.spd_temperatures.split(",") if t]
    t0 = time.perf_counter()
    tables = _tables(engine, packages, settings.ngram_max_mb * 2**20) if ngram_ks else {}
    build_s = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(args.seed)
    methods: dict[str, dict[str, list[float]]] = {}

    def record(name: str, preds: list[str], truth: str, ms: float, check_ms: float,
               n_items: int, forwards: float) -> None:
        row = methods.setdefault(name, {})
        for key, value in {**_scores(preds, truth), "gen_ms": ms, "check_ms": check_ms,
                           "items": float(n_items), "forwards": forwards}.items():
            row.setdefault(key, []).append(value)

    def request(task: dict, doc_id: str, **changes) -> object:
        engine.settings = settings.updated(changes)
        return engine.complete(CompletionRequest(text=task["text"], offset=len(task["text"]),
                                                 doc_id=doc_id))

    greedy_pick = engine.pick_token
    for i, task in enumerate(tasks):
        doc_id = f"task{i}"
        truth = task["truth"]
        request(task, doc_id)  # encodes the prompt: every timed request below reuses it
        r = request(task, doc_id)
        record("greedy", [d.text for d in r.items], truth, _gen_ms(r),
               r.timings_ms.get("check", 0.0), len(r.items), _forwards(r))
        for k in ks:
            r = request(task, doc_id, drafts=k, ngram=False)
            record(f"spd_k{k}", [d.text for d in r.items], truth, _gen_ms(r),
                   r.timings_ms.get("check", 0.0), len(r.items), _forwards(r))
        for temp in spd_temps:
            r = request(task, doc_id, drafts=3, ngram=False, spd_temperature=temp)
            record(f"spd_k3_T{temp:g}", [d.text for d in r.items], truth, _gen_ms(r),
                   r.timings_ms.get("check", 0.0), len(r.items), _forwards(r))
        if ngram_ks:
            pkg = next(p for p in packages if task["path"] in
                       {q.name for q in package_dir(p).rglob("*.py")})
            table = tables[pkg]
            source = _source_of(task, [pkg])
            key = str(source) if source is not None else None
            if key is not None:
                table.update_file(key, task["text"])  # leave-one-out: only up to the cursor
            engine.set_ngrams(table)
            for k in ngram_ks:
                r = request(task, doc_id, drafts=k, ngram=True)
                record(f"spd_ngram_k{k}", [d.text for d in r.items], truth, _gen_ms(r),
                       r.timings_ms.get("check", 0.0), len(r.items), _forwards(r))
            engine.set_ngrams(None)
            if key is not None:
                table.update_file(key, source.read_text(encoding="utf-8"))
        if args.samples:
            engine.pick_token = _nucleus(args.temperature, args.top_p, gen)
            preds: list[str] = []
            total_ms = total_check = total_fw = 0.0
            try:
                for s in range(1, args.samples + 1):
                    r = request(task, doc_id)
                    preds.append(r.items[0].text if r.items else "")
                    total_ms += _gen_ms(r)
                    total_check += r.timings_ms.get("check", 0.0)
                    total_fw += _forwards(r)
                    if s in ks or s == 1:
                        record(f"sampling_x{s}", [p for p in preds if p], truth, total_ms,
                               total_check, sum(1 for p in preds if p), total_fw)
            finally:
                engine.pick_token = greedy_pick
        engine.forget(doc_id)

    report: dict = {"suite": "decode_drafts", "model": engine.info.name,
                    "dtype": engine.info.dtype, "threads": torch.get_num_threads(),
                    "n": len(tasks), "ngram_build_s": round(build_s, 2),
                    "ngram_tables": {p: vars(t.stats()) for p, t in tables.items()},
                    "sampling": {"temperature": args.temperature, "top_p": args.top_p}}
    summary = {name: {key: round(statistics.mean(v), 3) for key, v in row.items()}
               for name, row in methods.items()}
    report["methods"] = summary
    base_ms = summary["greedy"]["gen_ms"]
    for row in summary.values():
        row["time_ratio_vs_greedy"] = round(row["gen_ms"] / base_ms, 3) if base_ms else None
    if "spd_k3" in summary:
        report["spd_time_ratio_k3_vs_greedy"] = summary["spd_k3"]["time_ratio_vs_greedy"]
        report["best_of_3_exact_match"] = summary["spd_k3"]["em_best"]
    if "spd_ngram_k3" in summary:
        report["spd_ngram_time_ratio_k3_vs_greedy"] = summary["spd_ngram_k3"][
            "time_ratio_vs_greedy"]
        report["best_of_3_exact_match_ngram"] = summary["spd_ngram_k3"]["em_best"]
    if "sampling_x3" in summary:
        report["sampling_x3_time_ratio_vs_greedy"] = summary["sampling_x3"][
            "time_ratio_vs_greedy"]
        report["best_of_3_exact_match_sampling"] = summary["sampling_x3"]["em_best"]
    report["greedy_exact_match"] = summary["greedy"]["em_best"]
    if args.batched_tasks > 0:
        report["hf_batched_sampling"] = _hf_batched(
            engine, tasks[: args.batched_tasks], [k for k in ks if k > 1], 16,
            args.temperature, args.top_p)
    return report
