"""One KV session per open document: its token ids and the engine's KV cache, kept current
through edits.

The session encodes a window of the document's text (the whole file unless it is long). Cache slot
i holds token i of the window at position i. An edit re-tokenises the window (fast tokenizers do
~2,000 tokens in about a millisecond, and re-tokenising keeps the boundaries exactly those of the
new text), finds the changed token span by a prefix/suffix diff, and then, by mode:

- `full`: forget the cache; everything is encoded again at the next request.
- `prefix`: keep the cache up to the edit, re-encode the rest (llama.cpp's prompt cache).
- `pie`: keep the prefix, move the suffix to its new slots rotating its keys by the shift (PIE),
  and mark the new tokens dirty; dirty spans are encoded, left to right, before the next use.

A completion at a cursor uses the tokens before the token the cursor is in; the generated tokens
are written to scratch slots after the window at the cursor's positions, with the window's text
after the cursor hidden, and dropped afterwards, so a completion never disturbs the document's
cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from holefill.kvcache.pie import shift_slots
from holefill.kvcache.window import chars_before_cursor, window_start

MODES = ("full", "prefix", "pie")
PREFILL_CHUNK = 256
# A fresh document's first window (reset(quick=True)): ~170 tokens before the cursor, encoded in
# about half a second by a 0.5B model on our 2-core CPU; idle time replaces it with the full
# window (CompletionEngine.maintain).
QUICK_WINDOW_CHARS = 600

Tokenize = Callable[[str], tuple[list[int], list[int]]]  # text -> (ids, end offsets in chars)
Cancelled = Callable[[], bool]


@dataclass
class EditResult:
    """What one edit did to the session (for tests, logs and the edits benchmark)."""

    start: int  # first changed token
    removed: int  # old tokens replaced
    inserted: int  # new tokens
    shifted: int  # cached suffix tokens moved and rotated (pie)
    dropped: int  # cached tokens forgotten (they will be encoded again)


@dataclass
class PromptState:
    k: int  # tokens of the window before the cursor's token (the prompt)
    heal: str  # characters between that token boundary and the cursor


class KVSession:
    def __init__(self, decoder, tokenize: Tokenize, capacity_tokens: int, scratch_tokens: int,
                 mode: str = "pie", pie_ok: bool = True) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown cache mode {mode!r} (one of {', '.join(MODES)})")
        self.decoder = decoder
        self.tokenize = tokenize
        self.capacity_tokens = capacity_tokens
        self.mode = mode if (pie_ok or mode != "pie") else "prefix"
        self.cache = decoder.new_cache(capacity_tokens + scratch_tokens)
        self.doc = ""
        # Text before the window (the typed-hole context block): the session encodes
        # header + doc[start:end]; a changed header is one more edit at the front.
        self.header = ""
        self.start = 0  # window [start, end) in document characters
        self.end = 0
        self.tokens: list[int] = []
        self.ends: list[int] = []  # end offset of each token, in window characters
        self.encoded = 0  # slots [0, encoded) hold tokens[:encoded]
        self.dirty: list[tuple[int, int]] = []  # token spans in [0, encoded) not yet encoded
        self.edited_since_refresh = 0
        self.refreshed_upto = 0  # slots [0, refreshed_upto) were encoded with no PIE edit since
        self.last_sync_tokens = 0  # tokens the last sync() ran through the model
        self.partial = False  # a quick first window, to be replaced in idle time
        self.cursor = 0  # where the last completion was (the engine sets it)

    # -- document text ----------------------------------------------------------------------

    def reset(self, doc: str, cursor: int, quick: bool = False) -> None:
        """Forget the cache and take a new window around `cursor` (`quick`: a small one)."""
        self.doc = doc
        self.partial, self.cursor = quick, cursor
        max_chars = chars_before_cursor(self.capacity_tokens)
        if quick:
            max_chars = min(max_chars, QUICK_WINDOW_CHARS)
        for _ in range(8):
            start = window_start(doc, cursor, max_chars)
            self.start, self.end = start, min(len(doc), start + max_chars + max_chars // 2)
            self._retokenize()
            if self.covers(cursor):
                break
            max_chars //= 2  # dense text: the token cap cut the window before the cursor
        self.encoded = 0
        self.dirty = []
        self.edited_since_refresh = 0
        self.refreshed_upto = 0

    @property
    def text(self) -> str:
        """What the session encodes."""
        return self.header + self.doc[self.start:self.end]

    def _retokenize(self) -> None:
        ids, ends = self.tokenize(self.text)
        h = len(self.header)
        if len(ids) > self.capacity_tokens:  # keep the window inside the cache
            self.end = self.start + max(0, ends[self.capacity_tokens - 1] - h)
            ids, ends = self.tokenize(self.text)
            while len(ids) > self.capacity_tokens and self.end > self.start:
                self.end = self.start + max(0, ends[-2] - h)
                ids, ends = self.tokenize(self.text)
        self.tokens, self.ends = ids, ends

    def set_header(self, header: str) -> EditResult | None:
        """Replace the text before the window (the context block)."""
        if header == self.header:
            return None
        self.header = header
        return self._retokenize_and_update()

    def set_text(self, doc: str) -> list[EditResult]:
        """Bring the session to `doc` by the single edit that spans all differences."""
        if doc == self.doc:
            return []
        prefix = _common_prefix(doc, self.doc)
        suffix = _common_prefix(doc[prefix:][::-1], self.doc[prefix:][::-1])
        result = self.apply_edit(prefix, len(self.doc) - suffix, doc[prefix:len(doc) - suffix])
        return [result] if result else []

    def apply_edit(self, start: int, end: int, text: str) -> EditResult | None:
        """Replace document characters [start, end) with `text` and update tokens and cache."""
        if not 0 <= start <= end <= len(self.doc):
            raise ValueError(f"edit [{start}, {end}) outside a document of {len(self.doc)} chars")
        old_len = len(self.doc)
        self.doc = self.doc[:start] + text + self.doc[end:]
        delta_chars = len(text) - (end - start)
        if end < self.start or (end == self.start and (start < end or self.start > 0)):
            # Before the window (an insertion exactly at its start counts as before it, unless
            # the window starts the document): the window's text only moves.
            self.start += delta_chars
            self.end += delta_chars
            return None
        if start > self.end or (start == self.end and self.end < old_len):
            return None  # after a window that does not reach the end of the document
        if start < self.start:  # straddles the window start: the window starts here now
            self.start = start
            self.end = max(start + len(text), self.end + delta_chars)
            self._retokenize()
            dropped = self.encoded
            self.encoded, self.dirty, self.refreshed_upto = 0, [], 0
            return EditResult(0, 0, len(self.tokens), 0, dropped)
        self.end = start + len(text) if end > self.end else self.end + delta_chars
        return self._retokenize_and_update()

    def _retokenize_and_update(self) -> EditResult:
        old = self.tokens
        self._retokenize()
        new = self.tokens
        i = 0
        limit = min(len(old), len(new))
        while i < limit and old[i] == new[i]:
            i += 1
        q = 0
        while q < limit - i and old[len(old) - 1 - q] == new[len(new) - 1 - q]:
            q += 1
        j, m = len(old) - q, len(new) - q - i
        return self._update_cache(i, j, m)

    def _update_cache(self, i: int, j: int, m: int) -> EditResult:
        delta = m - (j - i)
        result = EditResult(start=i, removed=j - i, inserted=m, shifted=0, dropped=0)
        if i >= self.encoded:
            return result
        if self.mode == "full":
            result.dropped = self.encoded
            self.encoded, self.dirty, self.refreshed_upto = 0, [], 0
            return result
        if self.mode == "prefix" or j >= self.encoded or self.encoded + delta > len(self.tokens):
            result.dropped = self.encoded - i
            self.encoded = i
            self.dirty = [(a, min(b, i)) for a, b in self.dirty if a < i]
            self.refreshed_upto = min(self.refreshed_upto, i)
            return result
        # PIE: move the cached suffix [j, encoded) to [i + m, encoded + delta), rotating keys.
        shift_slots(self.cache, j, self.encoded, i + m, self.decoder.inv_freq)
        result.shifted = self.encoded - j
        spans = []
        for a, b in self.dirty:
            if b <= i:
                spans.append((a, b))
            elif a >= j:
                spans.append((a + delta, b + delta))
            else:  # overlaps the edit: its outer parts join the new span
                spans.append((min(a, i), max(b + delta, i + m) if b > j else i + m))
        if m:
            spans.append((i, i + m))
        self.dirty = _merge(spans)
        self.encoded += delta
        self.edited_since_refresh += m + (j - i)
        self.refreshed_upto = min(self.refreshed_upto, i)
        return result

    def retarget(self, new: list[int], blocks: list[tuple[int, int, int]]) -> EditResult:
        """Bring the session to the token sequence `new` however it differs (several places,
        moved text): the runs of cached tokens that reappear in `new` (`blocks` of (old start,
        new start, length), increasing in both: segment_blocks for the FIM layout) move to
        their new slots with their keys rotated by the shift (PIE); everything else is marked
        for encoding."""
        clean = _clean_spans(self.encoded, self.dirty)
        blocks = [b for blk in blocks for b in _within(blk, clean)]
        # Move left-shifted blocks left to right and right-shifted ones right to left, so no
        # block overwrites slots another still has to read (blocks keep their order).
        left = [b for b in blocks if b[1] < b[0]]
        right = [b for b in blocks if b[1] > b[0]]
        for a, b, n in left + right[::-1]:
            shift_slots(self.cache, a, a + n, b, self.decoder.inv_freq)
        kept = sum(n for _, _, n in blocks)
        end = max((b + n for _, b, n in blocks), default=0)
        gaps, pos = [], 0
        for _, b, n in sorted(blocks, key=lambda x: x[1]):
            if b > pos:
                gaps.append((pos, b))
            pos = b + n
        first_change = 0
        for a, b, n in sorted(blocks, key=lambda x: x[1]):
            if a == b == first_change:
                first_change += n
            else:
                break
        inserted = sum(b - a for a, b in gaps) + max(0, len(new) - end)
        result = EditResult(start=first_change, removed=self.encoded - kept,
                            inserted=inserted, shifted=sum(n for a, b, n in blocks if a != b),
                            dropped=self.encoded - kept)
        # Drift: changes that some kept token after them did not see (an append is none).
        last_new = max((b for _, b, _ in blocks), default=0)
        last_old = max((a for a, _, _ in blocks), default=0)
        stale = sum(min(b, last_new) - a for a, b in gaps if a < last_new)
        removed_before, pos = 0, 0
        for a, _, n in sorted(blocks):
            removed_before += max(0, min(a, last_old) - pos)
            pos = a + n
        self.edited_since_refresh += stale + removed_before
        self.tokens = new
        self.ends = []  # no character offsets: the layout is the caller's
        self.encoded = end
        self.dirty = _merge(gaps)
        self.refreshed_upto = min(self.refreshed_upto, first_change)
        return result

    # -- encoding ---------------------------------------------------------------------------

    @property
    def drift(self) -> float:
        """Share of the cached tokens edited by PIE since the last full encode."""
        return self.edited_since_refresh / max(1, self.encoded)

    def sync(self, upto: int, cancelled: Cancelled | None = None) -> bool:
        """Encode dirty spans and extend the cache to hold tokens[:upto]. False if cancelled."""
        device = self.decoder.device
        self.last_sync_tokens = 0
        for a, b in list(self.dirty):
            for s in range(a, b, PREFILL_CHUNK):
                if cancelled and cancelled():
                    return False
                e = min(b, s + PREFILL_CHUNK)
                self.cache.length = s
                self.decoder.forward(self.cache, torch.tensor(self.tokens[s:e], device=device))
                self.last_sync_tokens += e - s
                self.dirty[0] = (e, b)
            self.dirty.pop(0)
        self.cache.length = self.encoded
        upto = min(upto, len(self.tokens))
        while self.encoded < upto:
            if cancelled and cancelled():
                return False
            e = min(upto, self.encoded + PREFILL_CHUNK)
            self.cache.length = self.encoded
            self.decoder.forward(self.cache, torch.tensor(self.tokens[self.encoded:e],
                                                          device=device))
            self.last_sync_tokens += e - self.encoded
            if self.refreshed_upto == self.encoded:
                self.refreshed_upto = e
            self.encoded = e
        self.cache.length = self.encoded
        return True

    def refresh(self, cancelled: Cancelled | None = None) -> bool:
        """Re-encode the cached tokens from scratch (drift control), chunk by chunk from where the
        last refresh stopped; every chunk boundary leaves a consistent cache. False if
        interrupted."""
        if not self.sync(self.encoded, cancelled):
            return False
        device = self.decoder.device
        while self.refreshed_upto < self.encoded:
            if cancelled and cancelled():
                return False
            s = self.refreshed_upto
            e = min(self.encoded, s + PREFILL_CHUNK)
            self.cache.length = s
            self.decoder.forward(self.cache, torch.tensor(self.tokens[s:e], device=device))
            self.refreshed_upto = e
        self.cache.length = self.encoded
        self.edited_since_refresh = 0
        return True

    # -- completion -------------------------------------------------------------------------

    def covers(self, cursor: int) -> bool:
        """Whether the window serves a completion at document offset `cursor`."""
        if not self.start <= cursor <= self.end:
            return False
        if self.end < len(self.doc) and cursor > self.end - 256:
            return False  # too close to a cut window end
        return True

    def prompt_at(self, cursor: int) -> PromptState:
        """The prompt for a cursor: tokens before the token holding the character before the
        cursor, and the characters of that token up to the cursor."""
        h = len(self.header)
        rel = h + cursor - self.start
        k = _first_end_at_or_after(self.ends, rel) if rel > 0 else 0
        k = min(k, len(self.tokens))
        token_start = self.ends[k - 1] if k > 0 else 0
        return PromptState(k=k, heal=self.text[token_start:rel])

    def begin_scratch(self, visible: int) -> tuple[int, int]:
        """Start a completion that sees tokens[:visible] of the cache: returns the slot range
        hidden from the scratch tokens (the cached window text from `visible` on)."""
        self.cache.length = self.encoded
        visible = min(visible, self.encoded)
        return (visible, self.encoded)

    def scratch_forward(self, ids: list[int] | torch.Tensor, first_position: int,
                        hide: tuple[int, int]) -> torch.Tensor:
        ids_t = torch.as_tensor(ids, device=self.decoder.device).reshape(-1)
        positions = torch.arange(first_position, first_position + ids_t.shape[0],
                                 device=self.decoder.device)
        return self.decoder.forward(self.cache, ids_t, positions=positions, hide=hide)

    def end_scratch(self) -> None:
        self.cache.length = self.encoded

    @property
    def scratch_room(self) -> int:
        return self.cache.capacity - self.cache.length

    def nbytes(self) -> int:
        return self.cache.nbytes()


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix of two strings (binary search over slice comparisons, which
    run in C: a 5 MB document costs milliseconds, not a Python loop per character)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _first_end_at_or_after(ends: list[int], rel: int) -> int:
    """Index of the first token whose end offset is >= rel (binary search)."""
    lo, hi = 0, len(ends)
    while lo < hi:
        mid = (lo + hi) // 2
        if ends[mid] < rel:
            lo = mid + 1
        else:
            hi = mid
    return lo


PROBE = 16  # tokens a run between two segments must share to be looked for


def segment_blocks(old: list[list[int]], new: list[list[int]]) -> list[tuple[int, int, int]]:
    """Kept runs between two sequences made of the same segments in the same order (the FIM
    layout: head, PRE, prefix, SUF, suffix, MID, line), increasing in both: per segment, its
    common prefix, its common suffix and, between them, the longest run that starts where one
    of the two middles starts (a window that slid: the cursor moved down, and the suffix window
    now starts inside the old one and ends elsewhere; or up). Text that moves from one segment
    to another is re-encoded: it is short (a line), and matching runs across segments of
    repetitive code aligns the wrong copies."""
    blocks: list[tuple[int, int, int]] = []
    oa = na = 0
    for a, b in zip(old, new, strict=True):
        limit = min(len(a), len(b))
        p = 0
        while p < limit and a[p] == b[p]:
            p += 1
        q = 0
        while q < limit - p and a[len(a) - 1 - q] == b[len(b) - 1 - q]:
            q += 1
        if p:
            blocks.append((oa, na, p))
        run = _sliding_run(a[p:len(a) - q], b[p:len(b) - q])
        if run is not None:
            i, j, n = run
            blocks.append((oa + p + i, na + p + j, n))
        if q:
            blocks.append((oa + len(a) - q, na + len(b) - q, q))
        oa += len(a)
        na += len(b)
    return blocks


def _sliding_run(a: list[int], b: list[int]) -> tuple[int, int, int] | None:
    """The longest common run of `a` and `b` that starts at the start of one of them, found by
    its first PROBE tokens; None when there is none that long."""
    best = None
    for x, y, swap in ((a, b, False), (b, a, True)):  # y's start inside x
        if len(y) < PROBE or len(x) < PROBE:
            continue
        probe, first = y[:PROBE], y[0]
        start = 0
        while True:
            try:
                i = x.index(first, start)
            except ValueError:
                break
            start = i + 1
            if x[i:i + PROBE] != probe:
                continue
            n = PROBE
            while i + n < len(x) and n < len(y) and x[i + n] == y[n]:
                n += 1
            if best is None or n > best[2]:
                best = (0, i, n) if swap else (i, 0, n)
    return best


def _clean_spans(encoded: int, dirty: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The slot ranges of [0, encoded) that hold valid keys and values."""
    out, pos = [], 0
    for a, b in dirty:
        if a > pos:
            out.append((pos, a))
        pos = max(pos, b)
    if encoded > pos:
        out.append((pos, encoded))
    return out


def _within(block: tuple[int, int, int], clean: list[tuple[int, int]]
            ) -> list[tuple[int, int, int]]:
    """The parts of a block whose old slots lie in the clean ranges."""
    a, b, n = block
    out = []
    for lo, hi in clean:
        s, e = max(a, lo), min(a + n, hi)
        if e > s:
            out.append((s, b + s - a, e - s))
    return out
