"""`holefill bench decode_exit`: early exit on next-line tasks from held-out files (RESEARCH §3).

- Lossless speculation: the greedy decode stage plain and with each speculative mode
  (`early_exit=selfspec`: exit-head drafts; `lookup`: prompt-lookup drafts; `selfspec+lookup`:
  lookup where the context has a match, else exit heads), on the same warm KV session, in an
  order that rotates per repeat; speed-up = plain decode time / the mode's decode time over all
  tasks, and whether every output is identical to plain greedy.
- Stop controller: a draft is "wrong" when its first line is not the truth (next-line exact
  match). The controller "flags" a draft when it cuts it; precision and recall of flags for
  wrong drafts, exact match of what is still shown, and the share of decode tokens saved.

The engine runs with drafts=1 (the greedy path) and without the suggestion checker, so that the
numbers are the decoder's own.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from holefill.benchmarks.common import exact_match
from holefill.benchmarks.nextline import make_tasks
from holefill.completion.engine import CompletionEngine, CompletionRequest

# mode -> prefix of its report keys (selfspec keeps the names it had before lookup existed)
SPEC_MODES = {"selfspec": "selfspec", "lookup": "lookup", "selfspec+lookup": "selfspec_lookup"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=20, help="tasks per cursor kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--packages", default="pygls,lsprotocol")
    parser.add_argument("--exit-layer", type=int, default=0, help="0 = the heads' default")
    parser.add_argument("--speculate-tokens", type=int, default=0, help="0 = the setting")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per task and mode")
    parser.add_argument("--spec-modes", default=",".join(SPEC_MODES),
                        help="speculative modes timed against plain greedy "
                             f"(any of {', '.join(SPEC_MODES)})")
    parser.add_argument("--stop-thresholds", default="0.5,0.6,0.7,0.8,0.9",
                        help="extra stop thresholds to sweep (the heads' default always runs)")
    parser.add_argument("--lossy", type=float, default=None, metavar="EXIT_THRESHOLD",
                        help="also run lossy SEC exit (state copying) at this exit threshold")


def _run(engine: CompletionEngine, task: dict, doc_id: str, **settings) -> tuple[str, dict]:
    base = engine.settings
    engine.settings = base.updated(settings)
    try:
        result = engine.complete(CompletionRequest(text=task["text"], offset=len(task["text"]),
                                                   doc_id=doc_id))
    finally:
        engine.settings = base
    text = result.items[0].text if result.items else ""
    return text, result.timings_ms


def _first_line(text: str) -> str:
    return text.split("\n")[0]


def run(args: argparse.Namespace) -> dict:
    settings = args.settings.updated({"max_new_tokens": 48, "drafts": 1,
                                      "check_suggestions": False, "stop_controller": False,
                                      "early_exit": "off"})
    if args.exit_layer:
        settings = settings.updated({"exit_layer": args.exit_layer})
    if args.speculate_tokens:
        settings = settings.updated({"speculate_tokens": args.speculate_tokens})
    engine = CompletionEngine.load(settings)
    heads = engine.exit_heads()
    if heads is None:
        raise SystemExit(f"decode_exit: no exit heads for this model ({engine._heads_error})")
    tasks = make_tasks(args.packages.split(","), args.n, args.seed)
    layer = engine.settings.exit_layer or heads.heads.default_layer
    report: dict = {"suite": "decode_exit", "model": engine.info.name,
                    "dtype": engine.info.dtype, "device": str(engine.decoder.device),
                    "n": len(tasks), "exit_layer": layer,
                    "layers": engine.decoder.n_layers,
                    "speculate_tokens": engine.settings.speculate_tokens}
    thresholds = [heads.heads.stop_threshold] + [
        float(t) for t in args.stop_thresholds.split(",") if t.strip()]
    modes = [m.strip() for m in args.spec_modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(SPEC_MODES))
    if unknown:
        raise SystemExit(f"decode_exit: unknown --spec-modes {unknown}; "
                         f"choose from {', '.join(SPEC_MODES)}")
    plain_ms = tokens = 0.0
    counters = ("spec_rounds", "spec_drafted", "spec_accepted", "lookup_rounds",
                "lookup_drafted", "lookup_accepted")
    spec = {m: {"ms": 0.0, "identical": [], **dict.fromkeys(counters, 0.0)} for m in modes}
    rows = []
    lossy_ms = lossy_exited = 0.0
    lossy_same, lossy_em = [], []
    # warm-up: one task in each mode (first-call allocations, lazy loads)
    if tasks:
        for mode in ("off", *modes):
            _run(engine, tasks[0], "warm", early_exit=mode)
        engine.forget("warm")
    cycle = ["off", *modes]
    for i, task in enumerate(tasks):
        doc = f"task{i}"
        plain, t0 = _run(engine, task, doc)  # encodes the prompt once for all runs below
        texts: dict[str, list[str]] = {m: [] for m in modes}
        for r in range(args.repeat):
            # rotate the order per repeat (and task): no mode always runs first or last
            shift = (r + i) % len(cycle)
            for mode in cycle[shift:] + cycle[:shift]:
                text, t = _run(engine, task, doc, early_exit=mode)
                if mode == "off":
                    plain_ms += t["decode"]
                    tokens += t["decode_tokens"]
                    continue
                acc = spec[mode]
                acc["ms"] += t["decode"]
                for key in counters:
                    acc[key] += t.get(key, 0.0)
                texts[mode].append(text)
        for mode in modes:
            spec[mode]["identical"].append(all(x == plain for x in texts[mode]))
        row = {"wrong": not exact_match(_first_line(plain), task["truth"]),
               "tokens": t0["decode_tokens"], "stop": {}}
        for thr in thresholds:
            text, t = _run(engine, task, doc, stop_controller=True, stop_threshold=thr)
            row["stop"][thr] = {"cut": bool(t.get("stop_cut")), "text": _first_line(text),
                                "tokens": t["decode_tokens"]}
        row["truth"] = task["truth"]
        if args.lossy is not None:
            text, t = _run(engine, task, doc, early_exit="lossy", exit_threshold=args.lossy)
            lossy_ms += t["decode"] * args.repeat  # one run, weighed like the repeated ones
            lossy_exited += t.get("exited", 0.0)
            lossy_same.append(text == plain)
            lossy_em.append(exact_match(_first_line(text), task["truth"]))
        rows.append(row)
        engine.forget(doc)
    report["plain_ms_per_token"] = round(plain_ms / max(tokens, 1), 2)
    for mode in modes:
        report.update(_spec_metrics(SPEC_MODES[mode], spec[mode], plain_ms, tokens))
    if "selfspec" in spec:  # the names these had before the other modes existed
        report["draft_acceptance"] = report["selfspec_acceptance"]
        # tokens emitted per verification pass (accepted drafts + the verifier's own token)
        report["tokens_per_round"] = report["selfspec_tokens_per_round"]
    report["stop"] = {f"{thr:.2f}": _stop_metrics(rows, thr) for thr in thresholds}
    report["stop_threshold"] = round(thresholds[0], 3)
    report.update({k: report["stop"][f"{thresholds[0]:.2f}"][k]
                   for k in ("stop_precision", "stop_recall", "tokens_saved")})
    report["base_em"] = round(1 - statistics.mean(r["wrong"] for r in rows), 3) if rows else None
    report.update(_token_stop(engine, heads, tasks, thresholds[0]))
    if args.lossy is not None and lossy_ms:
        report["lossy"] = {"exit_threshold": args.lossy,
                           "speedup": round(plain_ms / lossy_ms, 3),
                           "exited_share": round(lossy_exited / max(tokens / args.repeat, 1), 3),
                           "identical_share": round(statistics.mean(lossy_same), 3),
                           "em": round(statistics.mean(lossy_em), 3)}
    return report


def _spec_metrics(name: str, acc: dict, plain_ms: float, tokens: float) -> dict:
    """Speed-up vs plain greedy, output identity and draft statistics of one mode. Acceptance:
    drafts the verifier agreed with and that were used, of all drafted."""
    ms, same = acc["ms"], acc["identical"]
    out = {f"{name}_speedup": round(plain_ms / ms, 3) if ms else None,
           f"{name}_identical": all(same),
           f"{name}_identical_share": round(statistics.mean(same), 3) if same else None,
           f"{name}_ms_per_token": round(ms / max(tokens, 1), 2),
           f"{name}_acceptance": round(acc["spec_accepted"] / acc["spec_drafted"], 3)
           if acc["spec_drafted"] else None,
           f"{name}_tokens_per_round": round((acc["spec_accepted"] + acc["spec_rounds"])
                                             / acc["spec_rounds"], 2)
           if acc["spec_rounds"] else None}
    if name == "selfspec_lookup":  # which draft source did the work
        out[f"{name}_lookup_rounds"] = acc["lookup_rounds"]
        out[f"{name}_rounds"] = acc["spec_rounds"]
        out[f"{name}_lookup_acceptance"] = (
            round(acc["lookup_accepted"] / acc["lookup_drafted"], 3)
            if acc["lookup_drafted"] else None)
    return out


def _token_stop(engine: CompletionEngine, heads, tasks: list[dict], thr: float,
                context: int = 512) -> dict:
    """Token-level STOP quality on the same held-out files: teacher-force each task's truth
    line after its prompt; a token is wrong where the model's argmax is not the next true
    token; the controller flags it where P(stop) > thr."""
    dec = engine.decoder
    tp = flagged = wrong_n = total = 0
    for task in tasks:
        ids, ends = engine.tokenize_with_ends(task["text"] + task["truth"])
        first = next((i for i, e in enumerate(ends) if e > len(task["text"])), len(ids))
        lo = max(0, first - context)
        if first >= len(ids) or first == lo:
            continue
        x = dec.forward(dec.new_cache(len(ids) - lo), torch.tensor(ids[lo:], device=dec.device),
                        return_hidden=True)[first - lo - 1:-1]
        logits = dec.logits(x)
        target = torch.tensor(ids[first:], device=logits.device)
        wrong = (logits.argmax(-1) != target).tolist()
        for h, row, w in zip(x, logits, wrong, strict=True):
            f = heads.stop_prob(h, row) > thr
            tp += f and w
            flagged += f
            wrong_n += w
            total += 1
    return {"stop_token_precision": round(tp / flagged, 3) if flagged else None,
            "stop_token_recall": round(tp / wrong_n, 3) if wrong_n else None,
            "token_wrong_rate": round(wrong_n / total, 3) if total else None,
            "stop_token_count": total}


def _stop_metrics(rows: list[dict], thr: float) -> dict:
    cut = [r["stop"][thr]["cut"] for r in rows]
    wrong = [r["wrong"] for r in rows]
    tp = sum(c and w for c, w in zip(cut, wrong, strict=True))
    shown = [r for r in rows if r["stop"][thr]["text"].strip()]
    kept = [r for r, c in zip(rows, cut, strict=True) if not c and r["stop"][thr]["text"].strip()]
    base_tokens = sum(r["tokens"] for r in rows)
    return {
        "stop_precision": round(tp / sum(cut), 3) if sum(cut) else None,
        "stop_recall": round(tp / sum(wrong), 3) if sum(wrong) else None,
        "cut_share": round(sum(cut) / len(rows), 3) if rows else None,
        # exact match of the drafts still shown whole, and of everything still shown
        "kept_em": round(statistics.mean(
            exact_match(r["stop"][thr]["text"], r["truth"]) for r in kept), 3) if kept else None,
        "shown_em": round(statistics.mean(
            exact_match(r["stop"][thr]["text"], r["truth"]) for r in shown), 3) if shown else None,
        # a cut draft's remaining text is right when it is a prefix of the truth
        "shown_prefix_ok": round(statistics.mean(
            r["truth"].strip().startswith(r["stop"][thr]["text"].strip()) for r in shown), 3)
        if shown else None,
        "shown_share": round(len(shown) / len(rows), 3) if rows else None,
        "tokens_saved": round(1 - sum(r["stop"][thr]["tokens"] for r in rows) / base_tokens, 3)
        if base_tokens else None,
    }
