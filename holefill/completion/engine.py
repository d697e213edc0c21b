"""CompletionEngine: hole -> drafts. Owns the decoding loop and stopping.

One completion: cut the file before the cursor to a prompt window, back it off to a token
boundary (token healing), reuse the document's cached prefix, prefill what is new, decode greedily
with the first tokens constrained to re-spell the backed-off characters, stop where the
post-processor says the line or block is done, then clean the text.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from holefill.completion import healing
from holefill.completion.decoder import Decoder, UnsupportedModel
from holefill.completion.model import LoadedModel, ModelInfo, load_model
from holefill.completion.postprocess import analyze_cursor, clean_suggestion, should_stop
from holefill.config import Settings
from holefill.context.check import check_suggestion, format_errors
from holefill.context.holes import hole_context
from holefill.context.prompt import context_block
from holefill.kvcache.pie import pie_unsupported_reason
from holefill.kvcache.session import KVSession
from holefill.kvcache.store import SessionStore
from holefill.kvcache.window import window_chars

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 256


@dataclass
class Draft:
    text: str  # exactly what is inserted at the cursor
    score: float  # mean log-probability of the generated tokens


@dataclass
class CompletionRequest:
    text: str  # the whole document
    offset: int  # cursor, as a character offset into `text`
    path: str | None = None
    workspace: str | None = None  # root for cross-file context (jedi Project)
    doc_id: str | None = None  # documents with an id keep their KV cache between requests
    max_new_tokens: int | None = None
    tab_size: int | None = None  # from LSP formattingOptions, when the client sends them
    insert_spaces: bool | None = None


@dataclass
class CompletionResult:
    items: list[Draft]
    timings_ms: dict[str, float] = field(default_factory=dict)
    model: str = ""
    cancelled: bool = False
    prompt_tokens: int = 0
    reused_tokens: int = 0
    rejected: list[str] = field(default_factory=list)  # drafts the checker dropped, and why


Cancelled = Callable[[], bool]


class _HFCache:
    """transformers DynamicCache behind the KVCache interface (fallback architectures)."""

    def __init__(self, capacity: int) -> None:
        from transformers import DynamicCache

        self.inner = DynamicCache()
        self._length = 0
        self.capacity = capacity

    @property
    def length(self) -> int:
        return self._length

    @length.setter
    def length(self, value: int) -> None:
        if value < self._length:
            self.inner.crop(value - self._length)  # transformers 5: a negative count to drop
        self._length = value

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for layer in self.inner.layers
                   for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
                   if t is not None)


class _HFDecoder:
    """Fallback for architectures the engine's decoder does not cover: transformers' forward.
    No hidden slots, so a completion in the middle of a document drops the cache after the
    cursor (prefix reuse only)."""

    supports_hide = False
    inv_freq = None

    def __init__(self, hf_model) -> None:
        self.model = hf_model
        self.device = next(hf_model.parameters()).device
        self.dtype_name = str(next(hf_model.parameters()).dtype).removeprefix("torch.")

    def new_cache(self, capacity: int) -> _HFCache:
        return _HFCache(capacity)

    @torch.inference_mode()
    def forward(self, cache: _HFCache, ids: torch.Tensor, all_logits: bool = False,
                positions: torch.Tensor | None = None, hide: tuple[int, int] | None = None,
                **_: object) -> torch.Tensor:
        if hide is not None and hide[0] < hide[1]:
            raise ValueError("the transformers fallback cannot hide cache slots")
        kwargs = {} if positions is None else {"position_ids": positions[None].to(self.device)}
        out = self.model(ids[None].to(self.device), cache=cache.inner, use_cache=True, **kwargs)
        cache._length += ids.shape[0]
        logits = out.logits[0].float()
        return logits if all_logits else logits[-1:]


class CompletionEngine:
    def __init__(self, loaded: LoadedModel, settings: Settings) -> None:
        self.settings = settings
        self.tokenizer = loaded.tokenizer
        self.hf_model = loaded.hf_model
        self.info: ModelInfo = loaded.info
        try:
            self.decoder = Decoder(loaded.hf_model, loaded.info.dtype)
            self.info.decoder = "holefill"
            self.info.dtype = self.decoder.dtype_name
            self.pie_unsupported = pie_unsupported_reason(loaded.hf_model.config)
        except UnsupportedModel as exc:
            log.warning("%s; using transformers' forward", exc)
            self.decoder = _HFDecoder(loaded.hf_model)
            self.info.decoder = "transformers"
            self.info.dtype = self.decoder.dtype_name
            self.pie_unsupported = "the transformers fallback decoder has no cache editing"
        self.info.extra["cache_mode"] = self.cache_mode
        if self.pie_unsupported:
            self.info.extra["pie_unavailable"] = self.pie_unsupported
        self.vocab = healing.TokenTexts(self.tokenizer)
        self.eos_ids = _eos_ids(self.tokenizer, loaded.hf_model)
        self.newline_id = self.encode("\n")[-1]
        self.store = SessionStore(settings.cache_budget_mb * 2**20)
        self._lock = threading.RLock()

    @classmethod
    def load(cls, settings: Settings) -> CompletionEngine:
        if settings.threads > 0:
            torch.set_num_threads(settings.threads)
        loaded = load_model(settings.model, settings.device, settings.dtype)
        return cls(loaded, settings)

    @property
    def cache_mode(self) -> str:
        mode = self.settings.cache_mode
        return "prefix" if mode == "pie" and self.pie_unsupported else mode

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def tokenize_with_ends(self, text: str) -> tuple[list[int], list[int]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], [end for _, end in enc["offset_mapping"]]

    # -- documents --------------------------------------------------------------------------

    def new_session(self) -> KVSession:
        capacity, _ = window_chars(self.settings.max_prompt_tokens)
        return KVSession(self.decoder, self.tokenize_with_ends, capacity_tokens=capacity,
                         scratch_tokens=MAX_NEW_TOKENS + 64, mode=self.cache_mode,
                         pie_ok=self.pie_unsupported is None)

    def edit(self, doc_id: str, start: int, end: int, text: str) -> None:
        """Apply one edit (document character offsets) to the document's session, if it has
        one. Several edits of one didChange are applied in order, each to the previous text."""
        with self._lock:
            session = self.store.get(doc_id)
            if session is not None:
                try:
                    session.apply_edit(start, end, text)
                except ValueError:  # out of step with the editor: start again later
                    self.store.drop(doc_id)

    def forget(self, doc_id: str) -> None:
        with self._lock:
            self.store.drop(doc_id)

    def maintain(self, cancelled: Cancelled | None = None) -> int:
        """Idle-time work: re-encode sessions whose PIE drift passed the refresh threshold.
        Stops between chunks when `cancelled()`; returns how many sessions were refreshed."""
        done = 0
        for doc_id in self.store.ids():
            if cancelled and cancelled():
                break
            with self._lock:
                session = self.store.get(doc_id, touch=False)
                if session is None or session.drift <= self.settings.refresh_threshold:
                    continue
                if session.refresh(cancelled):
                    done += 1
        return done

    # -- completion -------------------------------------------------------------------------

    def complete(self, req: CompletionRequest, cancelled: Cancelled | None = None
                 ) -> CompletionResult:
        with self._lock:
            session = None
            if req.doc_id is not None:
                session = self.store.get(req.doc_id)
            temporary = session is None and req.doc_id is None
            if session is None:
                session = self.new_session()
                if not temporary:
                    self.store.put(req.doc_id, session)
            try:
                return self._complete(session, req, cancelled or (lambda: False))
            finally:
                session.end_scratch()
                if not temporary:
                    self.store.fit()

    def _complete(self, session: KVSession, req: CompletionRequest, cancelled: Cancelled
                  ) -> CompletionResult:
        timings: dict[str, float] = {}
        result = CompletionResult(items=[], timings_ms=timings, model=self.info.name)
        offset = max(0, min(req.offset, len(req.text)))
        max_new = max(1, min(req.max_new_tokens or self.settings.max_new_tokens, MAX_NEW_TOKENS))

        t0 = time.perf_counter()
        ctx = analyze_cursor(req.text, offset, req.tab_size, req.insert_spaces)
        if not session.tokens:
            session.reset(req.text, offset)
        elif session.doc != req.text:
            session.set_text(req.text)
        if not session.covers(offset):
            session.reset(req.text, offset)
        hole = None
        context_ms = 0.0
        if self.settings.typed_holes:
            tc = time.perf_counter()
            hole = self._hole_context(req, offset)
            block = "" if hole is None else context_block(
                hole, self.settings.context_budget_tokens, lambda t: len(self.encode(t)))
            session.set_header(block + "\n" if block else "")
            context_ms = (time.perf_counter() - tc) * 1000
            timings["context"] = context_ms
        elif session.header:
            session.set_header("")
        state = session.prompt_at(offset)
        heal, extra = state.heal, []
        if heal and not (self.settings.token_healing and len(heal) <= healing.MAX_HEAL_CHARS
                         and self.vocab.allowed(heal).numel()):
            extra, heal = self.encode(heal), ""  # plain prompt: the partial token as it is
        if state.k > 0:
            visible, pending, position = state.k - 1, session.tokens[state.k - 1], state.k - 1
        else:  # cursor at the start of the window: condition on a newline
            visible, pending, position = 0, self.newline_id, 0
        t1 = time.perf_counter()
        timings["tokenize"] = (t1 - t0) * 1000 - context_ms  # stages must not overlap

        if not session.sync(visible, cancelled):
            result.cancelled = True
            return result
        result.prompt_tokens = visible + 1 + len(extra)
        hide = session.begin_scratch(visible)
        if not getattr(self.decoder, "supports_hide", True) and hide[0] < hide[1]:
            session.encoded = visible  # fallback decoder: drop the cache after the cursor
            session.dirty = []
            session.end_scratch()
            hide = (visible, visible)
        result.reused_tokens = self._reused(session, visible)
        logits = session.scratch_forward([pending] + extra, position, hide)[-1]
        t2 = time.perf_counter()
        timings["prefill"] = (t2 - t1) * 1000

        generated, logprobs, was_cancelled, finished = self._decode(
            session, logits, position + 1 + len(extra), hide, heal, max_new, ctx, cancelled)
        if not finished and ctx.mode == "block" and "\n" in generated:
            # Out of tokens inside a block: a half-written last line is worse than none.
            generated = generated[:generated.rfind("\n")]
        t3 = time.perf_counter()
        timings["decode"] = (t3 - t2) * 1000
        timings["decode_tokens"] = float(len(logprobs))
        if was_cancelled:
            result.cancelled = True
            return result
        text = clean_suggestion(generated, ctx)
        timings["postprocess"] = (time.perf_counter() - t3) * 1000
        if text and self.settings.check_suggestions:
            t4 = time.perf_counter()
            errors = check_suggestion(req.text, offset, text, req.path, req.workspace,
                                      hole.expected if hole is not None else None)
            timings["check"] = (time.perf_counter() - t4) * 1000
            if errors:
                result.rejected.append("; ".join(format_errors(errors)))
                text = None
        if text:
            score = sum(logprobs) / len(logprobs) if logprobs else 0.0
            result.items.append(Draft(text=text, score=score))
        return result

    def _hole_context(self, req: CompletionRequest, offset: int):
        try:
            return hole_context(req.text, offset, req.path, req.workspace)
        except Exception as exc:  # analysis must never break completion
            log.warning("typed-hole context failed: %s", type(exc).__name__)
            return None

    def _reused(self, session: KVSession, visible: int) -> int:
        """Prompt tokens that were already in the cache before this request."""
        return max(0, visible - session.last_sync_tokens)

    def _decode(self, session: KVSession, logits: torch.Tensor, position: int,
                hide: tuple[int, int], heal: str, max_new: int, ctx, cancelled: Cancelled
                ) -> tuple[str, list[float], bool, bool]:
        """Greedy decoding into the session's scratch slots; the first tokens re-spell `heal`.
        Returns (text after the cursor, log-probabilities, cancelled, finished: the model or
        the stop rule ended it, not the token limit)."""
        out_ids: list[int] = []
        logprobs: list[float] = []
        remaining = heal
        finished = False
        for _ in range(max_new + 8):  # a few extra steps for the healed characters
            if cancelled():
                return "", logprobs, True, False
            if remaining:
                allowed = self.vocab.allowed(remaining)
                scores = torch.full_like(logits, -math.inf)
                scores[allowed] = logits[allowed]
            else:
                scores = logits
            token = int(torch.argmax(scores))
            logprobs.append(float(torch.log_softmax(scores, -1)[token]))
            if token in self.eos_ids:
                finished = True
                break
            out_ids.append(token)
            if remaining:
                piece = self.vocab.text(token)
                remaining = remaining[len(piece):] if len(piece) < len(remaining) else ""
            else:
                text = self.tokenizer.decode(out_ids, skip_special_tokens=True)[len(heal):]
                if should_stop(text, ctx):
                    finished = True
                    break
                if len(logprobs) >= max_new:
                    break
            if session.scratch_room <= 0:
                break
            logits = session.scratch_forward([token], position, hide)[-1]
            position += 1
        text = self.tokenizer.decode(out_ids, skip_special_tokens=True)
        return (text[len(heal):] if text.startswith(heal) else text), logprobs, False, finished


def _eos_ids(tokenizer, hf_model) -> set[int]:
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(hf_model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return ids
