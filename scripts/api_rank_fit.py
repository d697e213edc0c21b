"""Fit the name prior (api.RANK_WEIGHTS) from scripts/api_rank_features.py output, and compare
ways of choosing the name at `recv.`.

A conditional logit (softmax over one task's candidates, the truth = the name called there)
over feature sets: the model's log-probability of `name(` with / without the signature block,
the IDE's evidence (api.name_features: name-prior counts, privacy, name-part overlap with the
cursor line, the enclosing function and the lines above), retrieval votes from similar call
sites. Each set is fitted with leave-one-repository-out over the tuning repositories (LORO),
then on all of them and scored on the held-out ones (top-1 over all tasks). The "ide-rank"
set's weights are api.RANK_WEIGHTS.

    SITE=$(python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    for r in rich pip _pytest parso docutils pygls jedi hypothesis; do
        python scripts/api_rank_features.py --repo $SITE/$r \
            --tasks holefill/benchmarks/api_tasks/$r.json --out /tmp/rank/f_$r.jsonl
    done
    python scripts/api_rank_fit.py --tune rich,pip,_pytest,parso,docutils \
        --heldout pygls,jedi,hypothesis --dir /tmp/rank --site-packages $SITE
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from holefill.benchmarks import api as bench
from holefill.context import api

_WORD = re.compile(r"[A-Za-z_]\w*")
COUNTS = ("recv_uses", "elsewhere", "buffer", "same_receiver")
FEATURES = ("lp", "lp_noblock", *api.NAME_FEATURES, "in_block", "lp_is_max", "n_tokens",
            "site_vote", "site_first")


def vectorise(rows: list[dict], doc: str) -> list[list[float]]:
    """The serving code's features (api.name_features) after the two model scores."""
    evidence = {r["name"]: r for r in rows}
    block = {r["name"] for r in rows if r["in_block"]}
    names = [r["name"] for r in rows]
    ide = api.name_features(evidence, names, doc, len(doc))
    top = max(r["lp"] for r in rows)
    return [[r["lp"], r["lp_noblock"], *f, float(r["name"] in block), float(r["lp"] == top),
             float(len(_tokenizer()(
        r["name"], add_special_tokens=False)["input_ids"]))]
        for r, f in zip(rows, ide, strict=True)]


_TOK = []


def _tokenizer():
    if not _TOK:
        from transformers import AutoTokenizer

        from holefill.completion.model import embedded_model_dir

        _TOK.append(AutoTokenizer.from_pretrained(str(embedded_model_dir()[0])))
    return _TOK[0]


_CALL = re.compile(r"([A-Za-z_][\w.]*)\.([A-Za-z_]\w*)\(")


def call_sites(root: Path) -> list[tuple[str, str, str, str]]:
    """(file, called name, context: up to 3 lines before and the line up to the name, the
    line)."""
    out = []
    for path in sorted(root.rglob("*.py")):
        try:
            lines = path.read_text(encoding="utf-8").split("\n")
        except (OSError, UnicodeDecodeError):
            continue
        for i, line in enumerate(lines):
            for m in _CALL.finditer(line):
                context = " ".join(lines[max(0, i - 3):i]) + " " + line[:m.start(2)]
                out.append((str(path), m.group(2), context, line.strip()))
    return out


def words(text: str) -> list[str]:
    return [p for w in _WORD.findall(text) for p in api.split_name(w)]


class SiteVotes:
    """BM25 over the contexts of the repository's call sites: which names are called in
    contexts like the cursor's?"""

    def __init__(self, root: Path) -> None:
        import bm25s

        sites = call_sites(root)
        self.sites = [s[:3] for s in sites]
        self.lines = [s[3] for s in sites]
        self.bm25 = bm25s.BM25()
        self.bm25.index([words(c) or ["_"] for _, _, c in self.sites], show_progress=False)

    def example_lines(self, doc: str, path: str, names: list[str], n: int) -> list[str]:
        """The lines of the n best-matching call sites of candidate names (other files)."""
        hits = self._retrieve(doc, path, names, 4 * n)
        lines: list[str] = []
        for _, _, line in hits:
            if line not in lines:
                lines.append(line)
            if len(lines) >= n:
                break
        return lines

    def _retrieve(self, doc: str, path: str, names: list[str], k: int):
        start = doc.rfind("\n") + 1
        m = re.search(r"([A-Za-z_][\w.]*)?[)\]]?\.\w*$", doc[start:])
        head = doc[start:start + (m.start() if m else 0)]
        recv = m.group(1) or "" if m else ""
        q = words(" ".join(doc[:start].split("\n")[-4:-1]) + " " + head + " " + recv)
        if not q:
            return []
        docs, scores = self.bm25.retrieve([q], k=min(len(self.sites), 400), show_progress=False,
                                          n_threads=1)
        wanted, out = set(names), []
        for d, sc in zip(docs[0], scores[0], strict=True):
            file, name, context = self.sites[int(d)]
            if file != path and name in wanted:
                out.append((name, float(sc), self.lines[int(d)]))
                if len(out) >= k:
                    break
        return out

    def votes(self, doc: str, path: str, names: list[str], k: int = 50) -> list[list[float]]:
        """Per name: its share of the BM25 score of the k best-matching call sites of the
        names (relative to the best name), and whether it is the single best site's name."""
        hits = self._retrieve(doc, path, names, k)
        got: dict[str, float] = {}
        for name, score, _ in hits:
            got[name] = got.get(name, 0.0) + score
        first = hits[0][0] if hits else None
        top = max(got.values(), default=1.0) or 1.0
        return [[got.get(n, 0.0) / top, float(n == first)] for n in names]


def load(directory: Path, repo: str, site: Path) -> list[dict]:
    """Tasks of one repository: feature matrix, truth index (None: not among candidates)."""
    feats = [json.loads(line) for line in (directory / f"f_{repo}.jsonl").open()]
    tasks_file = directory / f"tasks_{repo}.json"
    if not tasks_file.exists():
        tasks_file = Path(bench.__file__).parent / "api_tasks" / f"{repo}.json"
    tasks = bench.load_tasks(tasks_file, str(site / repo))
    votes = SiteVotes(site / repo)
    out = []
    for f in feats:
        if not f["correlated"]:
            out.append({"repo": repo, "x": None, "truth": None, "names": []})
            continue
        names = [r["name"] for r in f["rows"]]
        task = tasks[f["task"]]
        x = [a + b for a, b in zip(vectorise(f["rows"], task["doc"]),
                                   votes.votes(task["doc"], task["path"], names), strict=True)]
        x = torch.tensor(x, dtype=torch.float64)
        out.append({"repo": repo, "x": x, "names": names,
                    "truth": names.index(f["truth"]) if f["truth"] in names else None,
                    "baseline_prior": [r["prior"] for r in f["rows"]]})
    return out


def fit(tasks: list[dict], mask: list[bool], l2: float) -> torch.Tensor:
    usable = [t for t in tasks if t["truth"] is not None]
    w = torch.zeros(len(FEATURES), dtype=torch.float64, requires_grad=True)
    sel = torch.tensor(mask, dtype=torch.float64)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = sum(-torch.log_softmax(t["x"] @ (w * sel), 0)[t["truth"]] for t in usable)
        loss = loss / len(usable) + l2 * (w * sel).pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return (w * sel).detach()


def top1(tasks: list[dict], w: torch.Tensor) -> float:
    right = sum(t["truth"] is not None and int(torch.argmax(t["x"] @ w)) == t["truth"]
                for t in tasks)
    return right / max(len(tasks), 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tune", required=True)
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--dir", default="/tmp/rank")
    parser.add_argument("--site-packages", required=True)
    parser.add_argument("--l2", type=float, default=1e-3)
    args = parser.parse_args()
    site, directory = Path(args.site_packages), Path(args.dir)
    tune = {r: load(directory, r, site) for r in args.tune.split(",") if r}
    held = {r: load(directory, r, site) for r in args.heldout.split(",") if r}
    sets = {
        "lp": [f == "lp" for f in FEATURES],
        "lp_noblock": [f == "lp_noblock" for f in FEATURES],
        "lp+counts": [f in ("lp", *COUNTS, "enclosing", "base_call") for f in FEATURES],
        "lp+counts+privacy": [f in ("lp", *COUNTS, "enclosing", "base_call", "private",
                                    "dunder") for f in FEATURES],
        "all": [f not in ("lp_is_max", "n_tokens") for f in FEATURES],
        "all-noblock-lp": [f not in ("lp_noblock", "lp_is_max", "n_tokens") for f in FEATURES],
        "no-model": [f not in ("lp", "lp_noblock") for f in FEATURES],
        "serve": [f in ("lp", "in_block") or f in api.NAME_FEATURES for f in FEATURES],
        "serve+max+len": [f in ("lp", "in_block", "lp_is_max", "n_tokens")
                          or f in api.NAME_FEATURES for f in FEATURES],
        "lp+max+len": [f in ("lp", "lp_is_max", "n_tokens") for f in FEATURES],
        "ide": [f in api.NAME_FEATURES or f == "in_block" for f in FEATURES],
        # the shipped name prior (api.RANK_WEIGHTS): the ranking, the completion list's order,
        # the constraint's bias; no block (the ranking decides what the block lists)
        "ide-rank": [f in api.NAME_FEATURES for f in FEATURES],
        "site_vote": [f == "site_vote" for f in FEATURES],
        "lp+site": [f in ("lp", "site_vote", "site_first") for f in FEATURES],
        "all-no-site": [f not in ("site_vote", "site_first", "lp_is_max", "n_tokens")
                        for f in FEATURES],
    }
    print("tasks:", {r: len(t) for r, t in {**tune, **held}.items()})
    ceiling = {r: sum(t["truth"] is not None for t in ts) / len(ts)
               for r, ts in {**tune, **held}.items()}
    print("truth among candidates:", {r: round(v, 3) for r, v in ceiling.items()})
    def first_ranked(ts: list[dict]) -> float:  # the shipped ranking (prior), no model
        return sum(t["truth"] == 0 for t in ts if t["truth"] is not None) / len(ts)

    print("prior ranking first:", {r: round(first_ranked(ts), 2)
                                   for r, ts in {**tune, **held}.items()})
    for name, mask in sets.items():
        loro = {}
        for r in tune:
            train = [t for q, ts in tune.items() if q != r for t in ts]
            loro[r] = top1(tune[r], fit(train, mask, args.l2))
        w = fit([t for ts in tune.values() for t in ts], mask, args.l2)
        heldout = {r: top1(ts, w) for r, ts in held.items()}
        print(f"{name:20s} LORO " + " ".join(f"{r} {v:.2f}" for r, v in loro.items())
              + f" | mean {sum(loro.values()) / len(loro):.3f} || held-out "
              + " ".join(f"{r} {v:.2f}" for r, v in heldout.items())
              + f" | mean {sum(heldout.values()) / len(heldout):.3f}")
        if name in ("all", "serve", "ide-rank"):
            print("  weights:", {f: round(float(v), 3) for f, v in zip(FEATURES, w, strict=True)})


if __name__ == "__main__":
    main()
