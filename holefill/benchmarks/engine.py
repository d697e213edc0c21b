"""`holefill bench engine`: our decoder vs transformers' forward on the same weights, one run.

Prefill tokens/s at 512/1024/2048 tokens of real code, decode ms/token at 1k and 2k context.
"""

from __future__ import annotations

import argparse

import torch
from transformers import DynamicCache

from holefill.benchmarks.common import sample_code, timed
from holefill.completion.decoder import Decoder
from holefill.completion.model import load_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefill-lengths", default="512,1024,2048")
    parser.add_argument("--decode-contexts", default="1024,2048")
    parser.add_argument("--decode-steps", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)


def run(args: argparse.Namespace) -> dict:
    settings = args.settings
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    loaded = load_model(settings.model, settings.device, settings.dtype)
    hf = loaded.hf_model
    ours = Decoder(hf, loaded.info.dtype)
    prefill_lengths = [int(x) for x in args.prefill_lengths.split(",")]
    contexts = [int(x) for x in args.decode_contexts.split(",")]
    need = max(prefill_lengths + contexts) + args.decode_steps + 8
    ids = loaded.tokenizer(sample_code(need * 5), add_special_tokens=False)["input_ids"][:need]
    if len(ids) < need:
        raise SystemExit(f"sample code has only {len(ids)} tokens, need {need}")
    device = ours.device
    tokens = torch.tensor(ids, device=device)
    capacity = need + 8

    def ours_prefill(n: int) -> None:
        cache = ours.new_cache(capacity)
        ours.forward(cache, tokens[:n])

    @torch.inference_mode()
    def hf_prefill(n: int) -> None:
        hf(tokens[None, :n], use_cache=False)

    prefill, hf_prefill_tps = {}, {}
    for n in prefill_lengths:
        prefill[str(n)] = round(n / timed(lambda n=n: ours_prefill(n), args.repeat), 1)
        hf_prefill_tps[str(n)] = round(n / timed(lambda n=n: hf_prefill(n), args.repeat), 1)

    decode, hf_decode, eager = {}, {}, {}
    steps = args.decode_steps
    for ctx in contexts:
        cache = ours.new_cache(capacity)
        ours.forward(cache, tokens[:ctx])

        def ours_decode(ctx: int = ctx, cache=cache) -> None:
            cache.truncate(ctx)
            for i in range(steps):
                ours.forward(cache, tokens[ctx + i : ctx + i + 1])

        decode[str(ctx)] = round(timed(ours_decode, args.repeat) / steps * 1000, 2)
        if ours.use_graphs:  # the same steps without CUDA graphs: what the graphs buy
            ours.use_graphs = False
            eager[str(ctx)] = round(timed(ours_decode, args.repeat) / steps * 1000, 2)
            ours.use_graphs = True

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

    return {
        "suite": "engine",
        "model": loaded.info.name,
        "device": loaded.info.device,
        "dtype": ours.dtype_name,
        "prefill_bf16": ours.prefill_bf16,
        "threads": torch.get_num_threads(),
        "prefill_tok_s": prefill,
        "hf_prefill_tok_s": hf_prefill_tps,
        "decode_ms_per_token": decode,
        "hf_decode_ms_per_token": hf_decode,
        "prefill_speedup": {k: round(prefill[k] / hf_prefill_tps[k], 2) for k in prefill},
        "decode_speedup": {k: round(hf_decode[k] / decode[k], 2) for k in decode},
        "cuda_graphs": ours.use_graphs,
        **({"decode_ms_per_token_without_graphs": eager,
            "graph_speedup": {k: round(eager[k] / decode[k], 2) for k in eager}} if eager else {}),
        "hf_reference_dtype": str(next(hf.parameters()).dtype).removeprefix("torch."),
    }
