"""Features of every candidate name at `holefill bench api` tasks, for choosing how to rank them.

For each task (a frozen `--tasks` file or generated ones) and each member of the correlated
receiver: the embedded model's log-probability of `name(` at the cursor given the prompt the
engine builds with everything on (signature block + the file before the cursor), without the
block, and (`--examples N`) with N similar call sites from other files as a comment block; the
name-prior evidence counts (`api.prior_features`), the member's place in our ranking and
its kind. One JSON line per task; scripts/api_rank_fit.py reads it (see there for the
commands). New task sets: `-n 40 --save-tasks FILE` instead of `--tasks`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from holefill.benchmarks import api as bench
from holefill.config import Settings
from holefill.context import api
from holefill.context.prompt import context_header


def candidate_logprobs(model, tokenizer, header: str, doc: str, names: list[str],
                       max_tokens: int) -> list[float]:
    """log P(name + "(" | header + the file up to the cursor), one batch over the names; the
    file is cut on the left to fit max_tokens (the header is kept)."""
    context, line = doc, ""
    head = tokenizer(header, add_special_tokens=False)["input_ids"] if header else []
    body = tokenizer(context, add_special_tokens=False)["input_ids"]
    ctx_ids = head + body[-(max_tokens - len(head) - 32):]
    conts = [tokenizer(line + n + "(", add_special_tokens=False)["input_ids"] for n in names]
    # one forward over all candidates' tokens after the cached context: a 4-D mask lets each
    # candidate's tokens see the context and their own earlier tokens only (a token tree)
    flat, owner, pos = [], [], []
    for i, c in enumerate(conts):
        flat += c
        owner += [i] * len(c)
        pos += list(range(len(ctx_ids), len(ctx_ids) + len(c)))
    n, q = len(ctx_ids), len(flat)
    own = torch.tensor(owner)
    p = torch.tensor(pos)
    tree = (own[:, None] == own[None, :]) & (p[:, None] >= p[None, :])
    mask = torch.cat([torch.ones(q, n, dtype=torch.bool), tree], 1)[None, None]
    with torch.inference_mode():
        out = model(torch.tensor([ctx_ids], dtype=torch.long), use_cache=True)
        last = torch.log_softmax(out.logits[0, -1].float(), -1)
        logits = model(torch.tensor([flat], dtype=torch.long), past_key_values=out.past_key_values,
                       attention_mask=mask, position_ids=p[None]).logits[0].float()
        logp = torch.log_softmax(logits, -1)
    scores, at = [], 0
    for c in conts:
        total = float(last[c[0]])
        for j in range(1, len(c)):
            total += float(logp[at + j - 1, c[j]])
        scores.append(total)
        at += len(c)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", required=True)
    parser.add_argument("--tasks")
    parser.add_argument("--save-tasks")
    parser.add_argument("-n", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-candidates", type=int, default=64)
    parser.add_argument("--examples", type=int, default=0,
                        help="also score with a header of this many similar call sites of "
                             "candidate names from other files (lp_examples)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    repo = str(Path(args.repo).resolve())
    index, _ = bench.build_index(repo)
    tasks = (bench.load_tasks(args.tasks, repo) if args.tasks
             else bench.make_tasks(index, repo, args.n, args.seed))
    if args.save_tasks:
        bench.save_tasks(tasks, repo, args.save_tasks)
    from holefill.completion.engine import CompletionEngine

    settings = Settings().updated({"api_context": True, "constrain_api_names": True})
    engine = CompletionEngine.load(settings)
    model, tok = engine.hf_model, engine.tokenizer

    def count(t: str) -> int:
        return len(engine.encode(t))

    votes = None
    if args.examples:
        import sys

        sys.path.insert(0, str(Path(__file__).parent))
        from api_rank_fit import SiteVotes

        votes = SiteVotes(Path(repo))
    with open(args.out, "w", encoding="utf-8") as out:
        for k, task in enumerate(tasks):
            t0 = time.perf_counter()
            full_text = Path(task["path"]).read_text(encoding="utf-8")
            doc = task["doc"]
            index.update_file(task["path"], doc, edited=False)
            try:
                header = context_header(doc, len(doc), settings, count, task["path"], repo,
                                        index, correlate=True)
                corr = header.correlation
                if corr is None:
                    out.write(json.dumps({"task": k, "truth": task["truth"],
                                          "correlated": False}) + "\n")
                    continue
                current = api._current_module(index, doc, task["path"])
                members = corr.ranked
                feats = api.prior_features(index, current, corr.site, members, doc, len(doc))
                names = [s.name for s in members][: args.max_candidates]
                if task["truth"] in corr.names and task["truth"] not in names:
                    names.append(task["truth"])
                if not names:  # a receiver without members: nothing to rank
                    out.write(json.dumps({"task": k, "truth": task["truth"],
                                          "correlated": False}) + "\n")
                    continue
                lps = candidate_logprobs(model, tok, header.text, doc, names,
                                         settings.max_prompt_tokens)
                lps_noblock = candidate_logprobs(model, tok, "", doc, names,
                                                 settings.max_prompt_tokens)
                lps_examples = [0.0] * len(names)
                if votes is not None:
                    lines = votes.example_lines(doc, task["path"], names, args.examples)
                    head = "".join(f"# {line}\n" for line in lines)
                    head = ("# Calls like this one elsewhere in the workspace:\n" + head + "\n"
                            if lines else "")
                    lps_examples = candidate_logprobs(model, tok, head + header.text, doc, names,
                                                      settings.max_prompt_tokens)
                block_names = {line.split("(")[0].split(".")[-1].split()[-1]
                               for line in header.text.splitlines()[1:] if "(" in line}
                rows = []
                for i, name in enumerate(names):
                    sym = members[[s.name for s in members].index(name)]
                    rows.append({"name": name, "lp": lps[i], "lp_noblock": lps_noblock[i],
                                 "lp_examples": lps_examples[i],
                                 "rank": i, "in_block": name in block_names,
                                 "kind": sym.kind, "private": name.startswith("_"),
                                 "dunder": name.startswith("__"),
                                 "prior": corr.prior.get(name, 0.0), **feats[name]})
                out.write(json.dumps({"task": k, "truth": task["truth"], "correlated": True,
                                      "source": corr.source, "owner": corr.owner.qualname,
                                      "n_members": len(members), "rows": rows}) + "\n")
                out.flush()
            finally:
                index.update_file(task["path"], full_text, edited=False)
            print(f"task {k}: {task['truth']} {time.perf_counter() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()
