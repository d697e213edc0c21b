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
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from holefill.completion import healing
from holefill.completion.decoder import Decoder, UnsupportedModel
from holefill.completion.model import LoadedModel, ModelInfo, load_model
from holefill.completion.postprocess import analyze_cursor, clean_suggestion, should_stop
from holefill.config import Settings

log = logging.getLogger(__name__)

# Prompt window: the prefix is cut at a line start inside an aligned window so that the cut point
# does not move on every keystroke (a moving cut would defeat prefix reuse).
WINDOW_ALIGN_CHARS = 4096
PREFILL_CHUNK = 256  # tokens per prefill step; cancellation is checked between chunks
MAX_SESSIONS = 4  # documents whose KV cache is kept (the PIE issue replaces this with store.py)


@dataclass
class Draft:
    text: str  # exactly what is inserted at the cursor
    score: float  # mean log-probability of the generated tokens


@dataclass
class CompletionRequest:
    text: str  # the whole document
    offset: int  # cursor, as a character offset into `text`
    path: str | None = None
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


Cancelled = Callable[[], bool]


@dataclass
class _Session:
    tokens: list[int]
    cache: object  # KVCache or _HFCache


class _HFCache:
    """transformers DynamicCache behind the KVCache interface (fallback architectures)."""

    def __init__(self, capacity: int) -> None:
        from transformers import DynamicCache

        self.inner = DynamicCache()
        self.length = 0
        self.capacity = capacity

    def truncate(self, length: int) -> None:
        if length < self.length:
            self.inner.crop(length - self.length)  # transformers 5: a negative count to drop
        self.length = length


class _HFDecoder:
    """Fallback for architectures the engine's decoder does not cover: transformers' forward."""

    def __init__(self, hf_model) -> None:
        self.model = hf_model
        self.device = next(hf_model.parameters()).device
        self.dtype_name = str(next(hf_model.parameters()).dtype).removeprefix("torch.")

    def new_cache(self, capacity: int) -> _HFCache:
        return _HFCache(capacity)

    @torch.inference_mode()
    def forward(self, cache: _HFCache, ids: torch.Tensor, all_logits: bool = False,
                **_: object) -> torch.Tensor:
        out = self.model(ids[None].to(self.device), cache=cache.inner, use_cache=True)
        cache.length += ids.shape[0]
        logits = out.logits[0].float()
        return logits if all_logits else logits[-1:]


def prompt_window(text: str, offset: int, max_prompt_tokens: int) -> str:
    """The file text before the cursor, cut at a stable line start to fit the token budget."""
    prefix = text[:offset]
    max_chars = max_prompt_tokens * 3  # code averages ~3.5 characters per token
    if len(prefix) <= max_chars:
        return prefix
    start = len(prefix) - max_chars
    start = (start // WINDOW_ALIGN_CHARS + 1) * WINDOW_ALIGN_CHARS
    newline = prefix.find("\n", start)
    return prefix[newline + 1:] if newline >= 0 else prefix[start:]


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
        except UnsupportedModel as exc:
            log.warning("%s; using transformers' forward", exc)
            self.decoder = _HFDecoder(loaded.hf_model)
            self.info.decoder = "transformers"
            self.info.dtype = self.decoder.dtype_name
        self.vocab = healing.TokenTexts(self.tokenizer)
        self.eos_ids = _eos_ids(self.tokenizer, loaded.hf_model)
        self.capacity = settings.max_prompt_tokens + 256 + 64
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, settings: Settings) -> CompletionEngine:
        if settings.threads > 0:
            torch.set_num_threads(settings.threads)
        loaded = load_model(settings.model, settings.device, settings.dtype)
        return cls(loaded, settings)

    def forget(self, doc_id: str) -> None:
        with self._lock:
            self._sessions.pop(doc_id, None)

    # -- prompt -----------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # -- completion -------------------------------------------------------------------------

    def complete(self, req: CompletionRequest, cancelled: Cancelled | None = None) -> CompletionResult:
        with self._lock:
            return self._complete(req, cancelled or (lambda: False))

    def _complete(self, req: CompletionRequest, cancelled: Cancelled) -> CompletionResult:
        timings: dict[str, float] = {}
        result = CompletionResult(items=[], timings_ms=timings, model=self.info.name)
        offset = max(0, min(req.offset, len(req.text)))
        max_new = req.max_new_tokens or self.settings.max_new_tokens
        max_new = max(1, min(max_new, 256))

        t0 = time.perf_counter()
        ctx = analyze_cursor(req.text, offset, req.tab_size, req.insert_spaces)
        prompt = prompt_window(req.text, offset, self.settings.max_prompt_tokens)
        ids = self.encode(prompt)
        limit = self.capacity - max_new - 1
        if len(ids) > limit:  # the char estimate was too generous: drop tokens from the front
            ids = ids[len(ids) - limit:]
        if self.settings.token_healing:
            ids, heal = healing.back_off(ids, self.vocab)
        else:
            heal = ""
        if not ids:  # empty file: start from a newline so the model has something to condition on
            ids = self.encode("\n")
        t1 = time.perf_counter()
        timings["tokenize"] = (t1 - t0) * 1000

        session = self._session(req.doc_id)
        logits = self._prefill(session, ids, cancelled)
        t2 = time.perf_counter()
        timings["prefill"] = (t2 - t1) * 1000
        result.prompt_tokens = len(ids)
        result.reused_tokens = self._last_reused
        if logits is None:
            result.cancelled = True
            return result

        generated, logprobs, was_cancelled = self._decode(session, logits, heal, max_new, ctx,
                                                          cancelled)
        t3 = time.perf_counter()
        timings["decode"] = (t3 - t2) * 1000
        timings["decode_tokens"] = float(len(logprobs))
        if was_cancelled:
            result.cancelled = True
            return result
        text = clean_suggestion(generated, ctx)
        timings["postprocess"] = (time.perf_counter() - t3) * 1000
        if text:
            score = sum(logprobs) / len(logprobs) if logprobs else 0.0
            result.items.append(Draft(text=text, score=score))
        return result

    def _session(self, doc_id: str | None) -> _Session:
        if doc_id is None:
            return _Session(tokens=[], cache=self.decoder.new_cache(self.capacity))
        session = self._sessions.get(doc_id)
        if session is None:
            session = _Session(tokens=[], cache=self.decoder.new_cache(self.capacity))
            self._sessions[doc_id] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(doc_id)
        return session

    def _prefill(self, session: _Session, ids: list[int], cancelled: Cancelled):
        """Bring the session's cache to `ids` (reusing the longest common prefix) and return the
        logits after the last prompt token, or None when cancelled."""
        common = 0
        for a, b in zip(session.tokens, ids, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(ids) - 1)  # the last prompt token is always re-run for logits
        session.cache.truncate(min(common, session.cache.length))
        session.tokens = session.tokens[:session.cache.length]
        self._last_reused = session.cache.length
        pending = ids[session.cache.length:]
        device = self.decoder.device
        logits = None
        for start in range(0, len(pending), PREFILL_CHUNK):
            if cancelled():
                return None
            chunk = pending[start:start + PREFILL_CHUNK]
            logits = self.decoder.forward(session.cache, torch.tensor(chunk, device=device))
            session.tokens.extend(chunk)
        return logits[-1]

    def _decode(self, session: _Session, logits: torch.Tensor, heal: str, max_new: int, ctx,
                cancelled: Cancelled) -> tuple[str, list[float], bool]:
        """Greedy decoding; the first tokens re-spell `heal`. Returns (text after the cursor,
        log-probabilities, cancelled)."""
        device = self.decoder.device
        out_ids: list[int] = []
        logprobs: list[float] = []
        remaining = heal
        text = ""
        for _ in range(max_new + 4):  # a few extra steps for the healed characters
            if cancelled():
                return "", logprobs, True
            if remaining:
                allowed = self.vocab.allowed(remaining)
                masked = torch.full_like(logits, -math.inf)
                masked[allowed] = logits[allowed]
                scores = masked
            else:
                scores = logits
            token = int(torch.argmax(scores))
            logprobs.append(float(torch.log_softmax(scores, -1)[token]))
            if token in self.eos_ids:
                break
            out_ids.append(token)
            piece = self.vocab.text(token)
            if remaining:
                remaining = remaining[len(piece):] if len(piece) < len(remaining) else ""
            else:
                text = self.tokenizer.decode(out_ids, skip_special_tokens=True)[len(heal):]
                if len(logprobs) >= max_new or should_stop(text, ctx):
                    break
            if session.cache.length >= session.cache.capacity:
                break
            logits = self.decoder.forward(session.cache, torch.tensor([token], device=device))[-1]
            session.tokens.append(token)
        text = self.tokenizer.decode(out_ids, skip_special_tokens=True)
        return text[len(heal):] if text.startswith(heal) else text, logprobs, False


def _eos_ids(tokenizer, hf_model) -> set[int]:
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(hf_model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return ids
