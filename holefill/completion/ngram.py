"""N-gram tables from the user's workspace, for superposed decoding (RESEARCH §2.3, §2.4).

Counts of `next token` after each context of 1..5 tokens (bigram to 6-gram), tokenised with the
model's own tokenizer, kept per order as `context tuple -> {token: count}`. Each file's tokens are
kept too (4 bytes a token), so a save replaces exactly that file's counts. A memory cap prunes the
singletons of the highest orders first, then refuses further files; a table is tagged with the hash
of the tokenizer that built it and refuses to serve another one (ids would mean other strings).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import threading
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CONTEXT_LENGTHS = (1, 2, 3, 4, 5)  # RESEARCH §2.3 `i_length`: bigram .. 6-gram
# Interpolation weights per context length (params/p15_d3_mixed.json); they do not sum to 1.
LAMBDAS = (0.01, 0.04, 0.15, 0.18, 0.12)
MAX_FILE_BYTES = 1_000_000  # generated or vendored blobs teach nothing about the user's style
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", "site-packages", ".tox",
             ".nox", ".venv", "venv", "env", "build", "dist", ".mypy_cache", ".ruff_cache"}
# Rough CPython cost of one stored (context, token) count: dict slot, tuple key share, int.
BYTES_PER_ENTRY = 120


class TokenizerMismatch(ValueError):
    """The table was built with another tokenizer than the model's."""


def tokenizer_hash(tokenizer) -> str:
    """Stable hash of a tokenizer's vocabulary (token string -> id) and special tokens."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    special = sorted(str(t) for t in (getattr(tokenizer, "all_special_tokens", None) or []))
    blob = json.dumps([vocab, special], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class NgramStats:
    files: int
    tokens: int
    entries: int
    approx_bytes: int
    pruned: int  # entries dropped by the memory cap
    refused: int  # files not added because the cap was reached


class NgramTable:
    def __init__(self, tokenizer, max_bytes: int = 64 * 2**20,
                 context_lengths: tuple[int, ...] = CONTEXT_LENGTHS) -> None:
        if max_bytes <= 0:
            raise ValueError("the n-gram memory cap must be positive")
        # A private copy: fast tokenizers refuse concurrent use ("Already borrowed"), and the
        # table is built on a background thread while the engine tokenises prompts.
        self._tokenize = _encoder(copy.deepcopy(tokenizer))
        self.tokenizer_hash = tokenizer_hash(tokenizer)
        self.max_bytes = max_bytes
        self.context_lengths = tuple(context_lengths)
        self.tables: dict[int, dict[tuple[int, ...], dict[int, int]]] = {
            n: {} for n in self.context_lengths}
        self.totals: dict[int, dict[tuple[int, ...], int]] = {n: {} for n in self.context_lengths}
        self.files: dict[str, array] = {}
        self.entries = 0
        self.tokens = 0
        self.pruned = 0
        self.refused = 0
        self._lock = threading.Lock()

    # -- building ---------------------------------------------------------------------------

    def check(self, tokenizer) -> None:
        """Raise TokenizerMismatch unless `tokenizer` is the one the table was built with."""
        other = tokenizer_hash(tokenizer)
        if other != self.tokenizer_hash:
            raise TokenizerMismatch(
                f"n-gram table built with tokenizer {self.tokenizer_hash}, model has {other}")

    @property
    def approx_bytes(self) -> int:
        return self.entries * BYTES_PER_ENTRY + self.tokens * 4

    def stats(self) -> NgramStats:
        return NgramStats(len(self.files), self.tokens, self.entries, self.approx_bytes,
                          self.pruned, self.refused)

    def update_file(self, key: str, text: str | None) -> bool:
        """Set the content of one file (None removes it). False if the cap refused it."""
        ids = array("I", self._tokenize(text)) if text else array("I")
        with self._lock:
            old = self.files.pop(key, None)
            if old is not None:
                self._count(old, -1)
                self.tokens -= len(old)
            if not ids:
                return True
            if self.approx_bytes + len(ids) * (4 + BYTES_PER_ENTRY) > self.max_bytes:
                self._prune()
                if self.approx_bytes + len(ids) * 4 > self.max_bytes:
                    self.refused += 1
                    return False
            self.files[key] = ids
            self.tokens += len(ids)
            self._count(ids, +1)
            if self.approx_bytes > self.max_bytes:
                self._prune()
            return True

    def _count(self, ids: array, sign: int) -> None:
        n_ids = len(ids)
        for n in self.context_lengths:
            table, totals = self.tables[n], self.totals[n]
            for i in range(n, n_ids):
                ctx = tuple(ids[i - n:i])
                nxt = ids[i]
                row = table.get(ctx)
                if sign > 0:
                    if row is None:
                        row = table[ctx] = {}
                    if nxt not in row:
                        self.entries += 1
                    row[nxt] = row.get(nxt, 0) + 1
                    totals[ctx] = totals.get(ctx, 0) + 1
                elif row is not None and nxt in row:
                    # Counts pruned by the cap may already be gone: floor at zero.
                    left = row[nxt] - 1
                    totals[ctx] -= 1
                    if left <= 0:
                        del row[nxt]
                        self.entries -= 1
                        if not row:
                            del table[ctx]
                            del totals[ctx]
                    else:
                        row[nxt] = left

    def _prune(self) -> None:
        """Drop singleton counts, longest contexts first, until under 90% of the cap."""
        target = int(self.max_bytes * 0.9)
        for n in sorted(self.context_lengths, reverse=True):
            if self.approx_bytes <= target:
                return
            table, totals = self.tables[n], self.totals[n]
            for ctx in list(table):
                row = table[ctx]
                ones = [t for t, c in row.items() if c == 1]
                for t in ones:
                    del row[t]
                self.entries -= len(ones)
                self.pruned += len(ones)
                if row:
                    totals[ctx] -= len(ones)
                else:
                    del table[ctx]
                    del totals[ctx]

    def add_workspace(self, root: str | os.PathLike, cancelled: Callable[[], bool] | None = None,
                      max_files: int = 5000) -> int:
        """Add the workspace's Python files; returns how many were read. Stops when cancelled."""
        done = 0
        for path in python_files(root, max_files):
            if cancelled and cancelled():
                break
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            self.update_file(str(path), text)
            done += 1
        return done

    # -- lookup -----------------------------------------------------------------------------

    def prob(self, context: list[int] | tuple[int, ...], token: int,
             lambdas: tuple[float, ...] = LAMBDAS) -> float:
        """Σ_i λ_i · P(token | last i tokens), over the orders whose context was seen (no
        backoff smoothing; RESEARCH §2.3). 0.0 when no order supports `token`."""
        return self.probs(context, [token], lambdas)[0]

    def probs(self, context: list[int], tokens: Iterable[int],
              lambdas: tuple[float, ...] = LAMBDAS) -> list[float]:
        rows = []
        for n, lam in zip(self.context_lengths, lambdas, strict=False):
            if n > len(context):
                break
            ctx = tuple(context[-n:])
            row = self.tables[n].get(ctx)
            tot = self.totals[n].get(ctx)
            if row and tot:  # read without the lock: a concurrent update may drop either
                rows.append((row, lam / tot))
        return [sum((w * row.get(t, 0) for row, w in rows), 0.0) for t in tokens]


def python_files(root: str | os.PathLike, max_files: int = 5000) -> list[Path]:
    """Python sources under `root`, skipping VCS, virtualenv, cache and build folders."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(os.path.abspath(root)):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            path = Path(dirpath, name)
            try:
                if path.stat().st_size > MAX_FILE_BYTES:
                    continue
            except OSError:
                continue
            found.append(path)
            if len(found) >= max_files:
                return found
    return found


def _encoder(tokenizer) -> Callable[[str], list[int]]:
    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    return encode
