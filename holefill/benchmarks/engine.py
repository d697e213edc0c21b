"""`holefill bench engine`: our decoder against llama.cpp on the same GGUF and transformers'
forward on the same weights, in one run.

Prefill tokens/s at 512/1024/2048 tokens of real code, decode ms/token at 1k and 2k context,
and the cold start (a new process until the engine is ready, the converted cache warm). The
anchor is llama.cpp (llama-cpp-python, built by the `remote` extra) run in-process on the very
GGUF the built-in model was converted from, with the same token ids and thread count; it is
left out, with the reason, where llama-cpp-python is missing or the model has no GGUF.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch
from transformers import DynamicCache

from holefill.benchmarks.common import sample_code, timed
from holefill.completion.model import load_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefill-lengths", default="512,1024,2048")
    parser.add_argument("--decode-contexts", default="1024,2048")
    parser.add_argument("--decode-steps", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-transformers", action="store_true",
                        help="skip transformers' forward (a 0.5B fp32 reference is slow)")
    parser.add_argument("--no-llamacpp", action="store_true", help="skip the llama.cpp anchor")
    parser.add_argument("--no-cold-start", action="store_true")


def cold_start_s(model: str, threads: int) -> float:
    """Seconds from a new interpreter to a loaded engine (imports included)."""
    code = ("import time; t = time.perf_counter()\n"
            "from holefill.config import Settings\n"
            "from holefill.completion.engine import CompletionEngine\n"
            f"CompletionEngine.load(Settings(model={model!r}, threads={threads}))\n"
            "print(time.perf_counter() - t)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def llamacpp(gguf: str, ids: list[int], prefill_lengths: list[int], contexts: list[int],
             steps: int, repeat: int, threads: int) -> dict:
    from llama_cpp import Llama

    need = max(prefill_lengths + contexts) + steps + 8
    llm = Llama(model_path=gguf, n_ctx=need, n_threads=threads, n_threads_batch=threads,
                n_batch=512, verbose=False)
    prefill, decode = {}, {}
    for n in prefill_lengths:
        def run(n: int = n) -> None:
            llm.reset()
            llm.eval(ids[:n])
        prefill[str(n)] = round(n / timed(run, repeat), 1)
    for ctx in contexts:
        llm.reset()
        llm.eval(ids[:ctx])

        def steps_from(ctx: int = ctx) -> None:
            llm.n_tokens = ctx  # rewind: the same positions every repeat
            for i in range(steps):
                llm.eval([ids[ctx + i]])
        decode[str(ctx)] = round(timed(steps_from, repeat) / steps * 1000, 2)
    return {"prefill_tok_s": prefill, "decode_ms_per_token": decode}


def run(args: argparse.Namespace) -> dict:
    settings = args.settings
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    threads = torch.get_num_threads()
    loaded = load_model(settings.model, settings.device, settings.dtype)
    ours = loaded.decoder()
    prefill_lengths = [int(x) for x in args.prefill_lengths.split(",")]
    contexts = [int(x) for x in args.decode_contexts.split(",")]
    need = max(prefill_lengths + contexts) + args.decode_steps + 8
    ids = loaded.tokenizer(sample_code(need * 5), add_special_tokens=False)["input_ids"][:need]
    if len(ids) < need:
        raise SystemExit(f"sample code has only {len(ids)} tokens, need {need}")
    device = ours.device
    tokens = torch.tensor(ids, device=device)
    capacity = need + 8
    print(f"bench engine: {loaded.info.name}, {ours.dtype_name}, {threads} threads",
          file=sys.stderr)

    def ours_prefill(n: int) -> None:
        cache = ours.new_cache(capacity)
        for s in range(0, n, 256):  # the sessions' chunk size (kvcache/session.py)
            ours.forward(cache, tokens[s:min(n, s + 256)])

    prefill = {str(n): round(n / timed(lambda n=n: ours_prefill(n), args.repeat), 1)
               for n in prefill_lengths}
    decode, eager = {}, {}
    steps = args.decode_steps
    for ctx in contexts:
        cache = ours.new_cache(capacity)
        for s in range(0, ctx, 256):
            ours.forward(cache, tokens[s:min(ctx, s + 256)])

        def ours_decode(ctx: int = ctx, cache=cache) -> None:
            cache.truncate(ctx)
            for i in range(steps):
                ours.forward(cache, tokens[ctx + i : ctx + i + 1])

        decode[str(ctx)] = round(timed(ours_decode, args.repeat) / steps * 1000, 2)
        if ours.use_graphs:  # the same steps without CUDA graphs: what the graphs buy
            ours.use_graphs = False
            eager[str(ctx)] = round(timed(ours_decode, args.repeat) / steps * 1000, 2)
            ours.use_graphs = True
    print(f"  ours: prefill {prefill} tok/s, decode {decode} ms/token", file=sys.stderr)
    report = {
        "suite": "engine",
        "model": loaded.info.name,
        "device": loaded.info.device,
        "dtype": ours.dtype_name,
        "prefill_bf16": ours.prefill_bf16,
        "threads": threads,
        "prefill_tok_s": prefill,
        "decode_ms_per_token": decode,
        "cuda_graphs": ours.use_graphs,
        **({"decode_ms_per_token_without_graphs": eager,
            "graph_speedup": {k: round(eager[k] / decode[k], 2) for k in eager}} if eager else {}),
    }

    gguf = loaded.info.source if loaded.info.source.endswith(".gguf") else ""
    if args.no_llamacpp:
        report["llamacpp"] = "skipped (--no-llamacpp)"
    elif not gguf:
        report["llamacpp"] = "skipped: the model has no GGUF file"
    else:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            report["llamacpp"] = 'skipped: pip install -e ".[remote]" for llama-cpp-python'
        else:
            anchor = llamacpp(gguf, ids, prefill_lengths, contexts, steps, args.repeat, threads)
            print(f"  llama.cpp: {anchor}", file=sys.stderr)
            report["llamacpp"] = anchor
            report["prefill_speedup_vs_llamacpp"] = {
                k: round(prefill[k] / anchor["prefill_tok_s"][k], 2) for k in prefill}
            report["decode_speedup_vs_llamacpp"] = {
                k: round(anchor["decode_ms_per_token"][k] / decode[k], 2) for k in decode}

    if not args.no_transformers:
        hf = loaded.reference()
        hf.to(device)

        @torch.inference_mode()
        def hf_prefill(n: int) -> None:
            hf(tokens[None, :n], use_cache=False)

        hf_prefill_tps = {str(n): round(n / timed(lambda n=n: hf_prefill(n), args.repeat), 1)
                          for n in prefill_lengths}
        hf_decode = {}
        for ctx in contexts:
            with torch.inference_mode():
                hf_cache = DynamicCache()
                hf(tokens[None, :ctx], cache=hf_cache, use_cache=True)

            @torch.inference_mode()
            def hf_decode_steps(ctx: int = ctx, hf_cache=hf_cache) -> None:
                extra = hf_cache.get_seq_length() - ctx
                if extra > 0:
                    hf_cache.crop(-extra)
                for i in range(steps):
                    hf(tokens[None, ctx + i : ctx + i + 1], cache=hf_cache, use_cache=True)

            hf_decode[str(ctx)] = round(timed(hf_decode_steps, args.repeat) / steps * 1000, 2)
        report.update({
            "hf_prefill_tok_s": hf_prefill_tps,
            "hf_decode_ms_per_token": hf_decode,
            "prefill_speedup": {k: round(prefill[k] / hf_prefill_tps[k], 2) for k in prefill},
            "decode_speedup": {k: round(hf_decode[k] / decode[k], 2) for k in decode},
            "hf_reference_dtype": str(next(hf.parameters()).dtype).removeprefix("torch."),
        })
    if not args.no_cold_start:
        del ours
        report["cold_start_s"] = round(cold_start_s(settings.model, threads), 2)
    print(json.dumps({k: v for k, v in report.items() if "speedup" in k}), file=sys.stderr)
    return report
