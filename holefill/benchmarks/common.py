"""Shared pieces of the benchmark suites: sample code, timing, metrics."""

from __future__ import annotations

import difflib
import importlib.util
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def package_dir(name: str) -> Path:
    """Directory of an installed package, located without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name!r} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def sample_code(min_chars: int) -> str:
    """Real Python code of at least `min_chars` characters: the standard library's json and
    email packages, concatenated in a fixed order (deterministic across machines)."""
    parts: list[str] = []
    total = 0
    for pkg in ("json", "email"):
        for path in sorted(package_dir(pkg).glob("*.py")):
            text = path.read_text(encoding="utf-8")
            parts.append(text)
            total += len(text)
            if total >= min_chars:
                return "\n".join(parts)
    return "\n".join(parts)


def timed(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    """Median wall time of `fn` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sync() -> None:
    """CUDA kernels run asynchronously: wait for them so that wall time counts their work."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def exact_match(pred: str, truth: str) -> bool:
    return pred.strip() == truth.strip()


def edit_similarity(pred: str, truth: str) -> float:
    """Levenshtein-style similarity in [0, 1] (difflib's ratio)."""
    return difflib.SequenceMatcher(None, pred.strip(), truth.strip()).ratio()
