"""Train the exit heads and the stop controller shipped as
holefill/completion/exit_heads.safetensors (RESEARCH §3, holefill/completion/early_exit.py).

Data: Python files of the standard library (offline, split by file; never the pygls/lsprotocol
sources, the held-out benchmark files). For random windows of `--seq-len` tokens the frozen
model gives the hidden state at every head layer and its own greedy token at the end.

- Exit head at layer l: rank-r residual adapter + the model's final norm and LM head restricted to
  the `--vocab` most frequent greedy tokens, trained with cross-entropy to the full model's greedy
  token (what self-speculation needs: agreement with the verifier, not with the truth).
- Stop controller (SEC): a shared Linear(hidden + 3, 3) on every head layer and the final layer,
  labels from first_correct over the layers, depth-weighted cross-entropy. Deviation from SEC:
  STOP means "the final layer is wrong", the condition the engine acts on.

Reproduce the shipped file (about 16 minutes on one core of the shared 2-core dev CPU:
~4 to collect hidden states, ~4 per exit layer, ~2 for the controller):

    nice -n 10 python scripts/train_exit_heads.py --threads 1 \
        --out holefill/completion/exit_heads.safetensors
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import sysconfig
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from holefill.completion.decoder import Decoder  # noqa: E402
from holefill.completion.early_exit import (  # noqa: E402
    STOP,
    ExitHeads,
    confidence,
    model_fingerprint,
    rms,
    sec_labels,
    tokenizer_fingerprint,
)
from holefill.completion.model import load_model  # noqa: E402
from holefill.config import Settings  # noqa: E402

HELD_OUT = ("pygls", "lsprotocol")


def source_files(min_chars: int = 2000) -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for path in sorted(root.rglob("*.py")):
        parts = set(path.relative_to(root).parts)
        if "site-packages" in parts or "dist-packages" in parts or parts & set(HELD_OUT):
            continue
        try:
            if path.stat().st_size > min_chars:
                files.append(path)
        except OSError:
            continue
    return files


def is_val(path: Path) -> bool:
    return hashlib.sha1(path.name.encode()).digest()[0] % 10 == 0


def windows(files: list[Path], tokenizer, n: int, seq_len: int, rng: random.Random
            ) -> list[list[int]]:
    out: list[list[int]] = []
    tries = 0
    while len(out) < n and tries < 20 * n:
        tries += 1
        path = rng.choice(files)
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) < seq_len + 1:
            continue
        s = rng.randrange(0, len(ids) - seq_len)
        out.append(ids[s:s + seq_len])
    return out


@torch.inference_mode()
def collect(dec: Decoder, seqs: list[list[int]], layers: list[int]) -> dict:
    """Hidden states at each head layer and the final layer (fp16), the model's greedy token,
    its logit confidence features and the true next token, for every position but the last."""
    hs: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers + [dec.n_layers]}
    teacher, truth, conf = [], [], []
    bounds = layers + [dec.n_layers]
    for ids in seqs:
        t = torch.tensor(ids)
        cache = dec.new_cache(len(ids))
        x, first = None, 0
        for b in bounds:
            cache.length = 0  # each stage writes its own layers' slots again from 0
            x = dec.forward(cache, t if x is None else None, embeds=x, first_layer=first,
                            n_layers=b, return_hidden=True)
            hs[b].append(x[:-1].half())
            first = b
        logits = dec.logits(x[:-1])
        teacher.append(logits.argmax(-1))
        conf.append(confidence(logits))
        truth.append(t[1:])
    return {"h": {k: torch.cat(v) for k, v in hs.items()}, "teacher": torch.cat(teacher),
            "truth": torch.cat(truth), "conf": torch.cat(conf)}


def ridge_init(h: torch.Tensor, h_final: torch.Tensor, rank: int, ridge: float = 1e-2
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form start (a "tuned lens"): the linear map from rms(h_l) to rms(h_L) - rms(h_l)
    by ridge regression, cut to rank r by SVD; much better than the logit lens at once."""
    x, y = rms(h.float()), rms(h_final.float())
    y = y - x
    gram = x.T @ x + ridge * x.shape[0] * torch.eye(x.shape[1])
    w = torch.linalg.solve(gram, x.T @ y)  # [hidden, hidden]: y ~ x @ w
    u, s, vh = torch.linalg.svd(w)
    down = (u[:, :rank] * s[:rank].sqrt()).T.contiguous()  # [rank, hidden]
    up = (vh[:rank].T * s[:rank].sqrt()).contiguous()  # [hidden, rank]
    return down, up


def train_adapter(h: torch.Tensor, target: torch.Tensor, w_sub: torch.Tensor, norm: torch.Tensor,
                  init: tuple[torch.Tensor, torch.Tensor], epochs: int, batch: int, lr: float,
                  seed: int, h_final: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy to the model's greedy token, or with `h_final` distillation of the full
    model's distribution over the draft vocabulary (soft targets)."""
    g = torch.Generator().manual_seed(seed)
    down = init[0].clone().requires_grad_()
    up = init[1].clone().requires_grad_()
    opt = torch.optim.Adam([down, up], lr=lr)
    n = h.shape[0]
    steps = epochs * ((n + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            logits = head_logits(h[idx].float(), down, up, w_sub, norm)
            if h_final is None:
                loss = F.cross_entropy(logits, target[idx], ignore_index=-1)
            else:
                with torch.no_grad():
                    soft = torch.softmax(head_logits(h_final[idx].float(), None, None, w_sub,
                                                     norm), -1)
                loss = F.cross_entropy(logits, soft)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return down.detach(), up.detach()


def head_logits(h: torch.Tensor, down: torch.Tensor | None, up: torch.Tensor | None,
                w_sub: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    x = rms(h)
    a = x if down is None else x + (x @ down.T) @ up.T
    return (norm * rms(a)) @ w_sub.T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="holefill/completion/exit_heads.safetensors")
    ap.add_argument("--layers", default="6,8,12", help="exit-head layers (first E layers)")
    ap.add_argument("--default-layer", type=int, default=8, help="self-speculation exit layer")
    ap.add_argument("--rank", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=8192, help="draft vocabulary size")
    ap.add_argument("--seqs", type=int, default=160)
    ap.add_argument("--val-seqs", type=int, default=40)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--stop-precision", type=float, default=0.85,
                    help="pick the lowest STOP threshold with this token precision on val")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--soft", action="store_true",
                    help="distil the full model's distribution instead of its greedy token")
    ap.add_argument("--cache", help="keep the collected hidden states in this file (re-runs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    loaded = load_model(Settings().model, "cpu", "float32")
    hf, tok = loaded.hf_model, loaded.tokenizer
    # The engine's CPU format (int8 decode, bf16 prefill GEMMs): ~2x faster collection, and the
    # hidden states the heads will see at run time.
    dec = Decoder(hf, "int8", prefill_bf16=True)
    layers = sorted(int(x) for x in args.layers.split(","))
    if args.default_layer not in layers:
        raise SystemExit("--default-layer must be one of --layers")
    files = source_files()
    train_files = [p for p in files if not is_val(p)]
    val_files = [p for p in files if is_val(p)]
    rng = random.Random(args.seed)
    if args.cache and Path(args.cache).is_file():
        train, val = torch.load(args.cache)
    else:
        train = collect(dec, windows(train_files, tok, args.seqs, args.seq_len, rng), layers)
        val = collect(dec, windows(val_files, tok, args.val_seqs, args.seq_len, rng), layers)
        if args.cache:
            torch.save((train, val), args.cache)
    print(f"files {len(train_files)} train / {len(val_files)} val; positions "
          f"{len(train['teacher'])} / {len(val['teacher'])}; collect "
          f"{time.perf_counter() - t0:.0f}s", flush=True)

    counts = torch.bincount(train["teacher"], minlength=dec.vocab_size)
    vocab = counts.argsort(descending=True)[:args.vocab].sort().values
    index = torch.full((dec.vocab_size,), -1, dtype=torch.long)
    index[vocab] = torch.arange(len(vocab))
    cover = float((index[val["teacher"]] >= 0).float().mean())
    w_sub = hf.lm_head.weight.detach().float()[vocab]
    norm = hf.model.norm.weight.detach().float()
    report: dict = {"vocab_coverage_val": round(cover, 4), "layers": {}}
    down, up = {}, {}
    for layer in layers:
        init = ridge_init(train["h"][layer], train["h"][dec.n_layers], args.rank)
        down[layer], up[layer] = train_adapter(
            train["h"][layer], index[train["teacher"]], w_sub, norm, init, args.epochs,
            args.batch, args.lr, args.seed + layer,
            train["h"][dec.n_layers] if args.soft else None)
        with torch.no_grad():
            hv = val["h"][layer].float()
            lens = vocab[head_logits(hv, None, None, w_sub, norm).argmax(-1)]
            conf, ours = torch.softmax(head_logits(hv, down[layer], up[layer], w_sub, norm),
                                       -1).max(-1)
            ours = vocab[ours]
        agree = ours == val["teacher"]
        report["layers"][layer] = {
            "agree_logit_lens": round(float((lens == val["teacher"]).float().mean()), 4),
            "agree_trained": round(float(agree.float().mean()), 4),
            # drafting stops below a confidence: how often it goes on, and how often rightly
            "by_confidence": {f"{t}": [round(float((conf >= t).float().mean()), 3),
                                       round(float(agree[conf >= t].float().mean()), 3)]
                              for t in (0.3, 0.5, 0.7, 0.9)}}
        print(f"layer {layer}: {report['layers'][layer]} ({time.perf_counter() - t0:.0f}s)",
              flush=True)

    stop_w, stop_b, thr, stop_report = train_stop(train, val, layers, dec.n_layers, down, up,
                                                  w_sub, norm, vocab, args)
    report["stop"] = stop_report
    meta = {"model_name": loaded.info.name, "model_fingerprint": model_fingerprint(hf),
            "tokenizer_fingerprint": tokenizer_fingerprint(tok),
            "default_layer": str(args.default_layer), "stop_threshold": f"{thr:.3f}",
            "rank": str(args.rank), "train_report": json.dumps(report)}
    heads = ExitHeads(down=down, up=up, vocab=vocab, stop_weight=stop_w, stop_bias=stop_b,
                      meta=meta)
    heads.save(args.out)
    print(json.dumps(report, indent=1))
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 2**20:.1f} MiB) in "
          f"{time.perf_counter() - t0:.0f}s")


def train_stop(train: dict, val: dict, layers: list[int], n_layers: int, down: dict, up: dict,
               w_sub: torch.Tensor, norm: torch.Tensor, vocab: torch.Tensor,
               args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, float, dict]:
    bounds = layers + [n_layers]

    def features(data: dict) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats, correct = [], []
        with torch.no_grad():
            for b in bounds:
                h = data["h"][b].float()
                if b == n_layers:
                    conf, pred = data["conf"], data["teacher"]
                else:
                    logits = head_logits(h, down[b], up[b], w_sub, norm)
                    conf, pred = confidence(logits), vocab[logits.argmax(-1)]
                feats.append(torch.cat([rms(h), conf], -1))
                correct.append(pred == data["truth"])
        return feats, sec_labels(torch.stack(correct))

    feats, labels = features(train)
    weights = torch.tensor([b / n_layers for b in bounds])
    weights = weights / weights.sum()
    dim = feats[0].shape[1]
    lin = torch.nn.Linear(dim, 3)
    opt = torch.optim.Adam(lin.parameters(), lr=3e-3)
    n = labels.shape[1]
    g = torch.Generator().manual_seed(args.seed)
    for _ in range(6):
        order = torch.randperm(n, generator=g)
        for i in range(0, n, 1024):
            idx = order[i:i + 1024]
            loss = sum(w * F.cross_entropy(lin(f[idx]), lab[idx])
                       for w, f, lab in zip(weights, feats, labels, strict=True))
            opt.zero_grad()
            loss.backward()
            opt.step()
    vfeats, vlabels = features(val)
    with torch.no_grad():
        p_stop = torch.softmax(lin(vfeats[-1]), -1)[:, STOP]
    wrong = vlabels[-1] == STOP
    sweep = {}
    thr = 0.99
    for t in [x / 20 for x in range(2, 20)]:
        cut = p_stop > t
        prec = float((cut & wrong).sum() / cut.sum().clamp(min=1))
        rec = float((cut & wrong).sum() / wrong.sum().clamp(min=1))
        sweep[f"{t:.2f}"] = {"precision": round(prec, 3), "recall": round(rec, 3)}
        if prec >= args.stop_precision and cut.sum() >= 20 and t < thr:
            thr = t
    report = {"val_final_wrong_rate": round(float(wrong.float().mean()), 3), "sweep": sweep,
              "threshold": thr}
    print(json.dumps(report), flush=True)
    return lin.weight.detach(), lin.bias.detach(), thr, report


if __name__ == "__main__":
    main()
