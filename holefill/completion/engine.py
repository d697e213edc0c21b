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

from holefill.completion import early_exit, fim, healing, superposed
from holefill.completion.constrain import NameConstraint
from holefill.completion.decoder import Decoder, UnsupportedModel
from holefill.completion.lookup import PromptLookup
from holefill.completion.model import LoadedModel, ModelInfo, load_model
from holefill.completion.postprocess import analyze_cursor, clean_suggestion, should_stop
from holefill.config import Settings
from holefill.context.check import check_suggestion, format_errors
from holefill.context.prompt import context_header, error_feedback
from holefill.kvcache.fim_session import FimIds, FimSession
from holefill.kvcache.pie import pie_unsupported_reason
from holefill.kvcache.session import KVSession
from holefill.kvcache.store import SessionStore
from holefill.kvcache.window import window_chars

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 256
EARLY_EXIT_MODES = ("auto", "off", "selfspec", "lossy", "lookup", "selfspec+lookup")
LOOKUP_MODES = ("lookup", "selfspec+lookup")  # prompt-lookup drafts (completion/lookup.py)


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


@dataclass
class RawDraft:
    """A decoded continuation before post-processing: the text after the cursor, whether the
    model or a stop rule ended it (not the token limit), and its score."""
    text: str
    finished: bool
    score: float


def finish_drafts(result: CompletionResult, raws: list[RawDraft], req: CompletionRequest,
                  offset: int, ctx, expected, settings: Settings) -> None:
    """Post-process, deduplicate and check decoded drafts into `result.items` (best first);
    rejected ones are counted in `result.rejected`. Shared by every decoding path."""
    t0 = time.perf_counter()
    seen: set[str] = set()
    check_ms = 0.0
    items: list[Draft] = []
    for raw in raws:
        text = raw.text
        if not raw.finished and ctx.mode == "block" and "\n" in text:
            # Out of tokens inside a block: a half-written last line is worse than none.
            text = text[:text.rfind("\n")]
        text = clean_suggestion(text, ctx)
        key = " ".join(text.split()) if text else ""
        if not key or key in seen:
            continue
        seen.add(key)
        if settings.check_suggestions:
            t1 = time.perf_counter()
            errors = check_suggestion(req.text, offset, text, req.path, req.workspace, expected)
            check_ms += (time.perf_counter() - t1) * 1000
            if errors:
                result.rejected.append("; ".join(format_errors(errors)))
                continue
        items.append(Draft(text=text, score=raw.score))
    result.items.extend(sorted(items, key=lambda d: -d.score))
    result.timings_ms["postprocess"] = (time.perf_counter() - t0) * 1000 - check_ms
    if settings.check_suggestions:
        result.timings_ms["check"] = check_ms


def with_error_rounds(complete: Callable[[str], CompletionResult], settings: Settings
                      ) -> CompletionResult:
    """Error rounds (RESEARCH §6): `complete(feedback)` once with no feedback; when the checker
    rejected every draft, again with the errors as comments in the prompt, at most
    `error_rounds` times and only while the rounds' time budget lasts."""
    result = complete("")
    rounds, spent_ms = 0, 0.0
    while (not result.items and result.rejected and not result.cancelled
           and rounds < settings.error_rounds and spent_ms < settings.error_round_budget_ms):
        rounds += 1
        start = time.perf_counter()
        retry = complete(error_feedback(list(dict.fromkeys(result.rejected))))
        spent_ms += (time.perf_counter() - start) * 1000
        retry.rejected = result.rejected + retry.rejected
        result = retry
    if rounds:
        result.timings_ms["error_rounds"] = float(rounds)
        result.timings_ms["error_rounds_ms"] = spent_ms
    return result


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
        if settings.early_exit not in EARLY_EXIT_MODES:  # before the model is touched
            raise ValueError(f"setting early_exit: {settings.early_exit!r} is not one of "
                             f"{', '.join(EARLY_EXIT_MODES)}")
        self.settings = settings
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.info: ModelInfo = loaded.info
        try:
            self.decoder = loaded.decoder()
            self.info.decoder = "holefill"
            self.info.dtype = self.decoder.dtype_name
            self.pie_unsupported = pie_unsupported_reason(loaded.config)
        except UnsupportedModel as exc:
            log.warning("%s; using transformers' forward", exc)
            self.decoder = _HFDecoder(loaded.reference())
            self.info.decoder = "transformers"
            self.info.dtype = self.decoder.dtype_name
            self.pie_unsupported = "the transformers fallback decoder has no cache editing"
        self.info.extra["cache_mode"] = self.cache_mode
        if self.pie_unsupported:
            self.info.extra["pie_unavailable"] = self.pie_unsupported
        self.vocab = healing.TokenTexts(self.tokenizer)
        self.eos_ids = set(loaded.eos_ids)
        # Fill-in-the-middle where the tokenizer has the tokens (a bad `fim` is a clear error)
        vocab = self.tokenizer.get_vocab()
        self.fim = fim.resolve(settings.fim, vocab=vocab)
        if settings.fim == "auto" and not self.info.extra.get("fim_by_default", True):
            self.fim = None  # measured worse with FIM (model.BuiltinModel.fim_by_default)
        self.fim_ids: FimIds | None = None
        special_ids = set(getattr(self.tokenizer, "all_special_ids", []) or [])
        self._special = {t: i for t, i in vocab.items() if len(t) > 2 and t[0] in "<▁" and
                         i in special_ids or t in fim.SPECIAL_TOKENS}
        if self.fim is not None:
            self.fim_ids = FimIds(vocab[self.fim.prefix], vocab[self.fim.suffix],
                                  vocab[self.fim.middle])
            self.eos_ids |= {vocab[t] for t in self.fim.stops if t in vocab}
        self.info.extra["fim"] = self.fim.family if self.fim else (
            "off (auto: prefix-only measures better for this model)"
            if fim.detect(vocab) is not None and settings.fim == "auto" else "off")
        self.newline_id = self.encode("\n")[-1]
        self.store = SessionStore(settings.cache_budget_mb * 2**20)
        # full sessions being encoded in idle time to replace quick first windows (maintain)
        self._growing: dict[str, KVSession] = {}
        self._lock = threading.RLock()
        self.ngrams = None  # workspace n-gram table for superposed drafts (set_ngrams)
        self.api_index = None  # context.index.ApiIndex of the workspace (the server/CLI sets it)
        superposed.params_from(settings)  # a bad drafts/ngram setting is a clear error now
        early_exit.check_threshold(settings.stop_threshold)
        early_exit.check_threshold(settings.exit_threshold)
        self._heads: early_exit.BoundHeads | None = None  # loaded on first use
        self._heads_error: str | None = None
        self.last_decode: dict[str, float] = {}  # early-exit counters of the last _decode
        # The greedy path's choice of token from the (masked) scores; `bench decode_drafts`
        # swaps in nucleus sampling to compare sampled drafts on the same decoding loop.
        self.pick_token: Callable[[torch.Tensor], int] = _argmax

    @property
    def hf_model(self):
        """The transformers model with the engine's weights (built on first use)."""
        return self.loaded.reference()

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
        """Token ids of document text: a special token's spelling in the text (a file about
        tokenizers) is text, never the special token."""
        return self.tokenizer(text, add_special_tokens=False,
                              split_special_tokens=True)["input_ids"]

    def tokenize_with_ends(self, text: str) -> tuple[list[int], list[int]]:
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                             split_special_tokens=True)
        return enc["input_ids"], [end for _, end in enc["offset_mapping"]]

    # -- documents --------------------------------------------------------------------------

    def new_session(self) -> KVSession:
        capacity, before = window_chars(self.settings.max_prompt_tokens)
        if self.fim_ids is not None:
            return FimSession(self.decoder, self.tokenize_with_ends, capacity_tokens=capacity,
                              scratch_tokens=MAX_NEW_TOKENS + 64, ids=self.fim_ids,
                              prefix_chars=before, suffix_chars=self.settings.fim_suffix_chars,
                              mode=self.cache_mode, pie_ok=self.pie_unsupported is None)
        return KVSession(self.decoder, self.tokenize_with_ends, capacity_tokens=capacity,
                         scratch_tokens=MAX_NEW_TOKENS + 64, mode=self.cache_mode,
                         pie_ok=self.pie_unsupported is None)

    def can_heal(self, text: str) -> bool:
        """Whether the prompt may end before `text` (the partial token at the cursor) with the
        first generated tokens constrained to re-spell it (token healing)."""
        return (self.settings.token_healing and len(text) <= healing.MAX_HEAL_CHARS
                and bool(self.vocab.allowed(text).numel()))

    def fim_head(self, files: list[tuple[str, str]], req: CompletionRequest, feedback: str
                 ) -> list[int]:
        """Token ids before the FIM prompt: snippets of other files in the model family's
        repository format, then the error round's feedback (as comments atop the file)."""
        assert self.fim is not None
        rel, repo = fim.file_names(req.path, req.workspace)
        ids: list[int] = []
        for text, special in self.fim.head_parts(files, rel, repo):
            ids += [self._special[text]] if special and text in self._special else (
                self.encode(text))
        ids += self.encode(feedback) if feedback else []
        capacity, _ = window_chars(self.settings.max_prompt_tokens)
        return ids[-(capacity // 3):]  # never more than a third of the cache

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
            self._growing.pop(doc_id, None)

    def set_ngrams(self, table) -> None:
        """Use a workspace n-gram table (ngram.NgramTable) for superposed drafts; a table built
        with another tokenizer raises ngram.TokenizerMismatch. None detaches it."""
        if table is not None:
            table.check(self.tokenizer)
        self.ngrams = table

    def maintain(self, cancelled: Cancelled | None = None) -> int:
        """Idle-time work: replace a fresh document's quick first window with the full one
        (encoded aside, swapped in when done), and re-encode sessions whose PIE drift passed
        the refresh threshold. Stops between chunks when `cancelled()` (what was encoded is
        kept for the next idle time); returns how many sessions were grown or refreshed."""
        done = 0
        for doc_id in self.store.ids():
            if cancelled and cancelled():
                break
            with self._lock:
                session = self.store.get(doc_id, touch=False)
                if session is None:
                    continue
                if session.partial:
                    done += self._grow(doc_id, session, cancelled)
                    continue
                if session.drift <= self.settings.refresh_threshold:
                    continue
                if session.refresh(cancelled):
                    done += 1
        return done

    def _grow(self, doc_id: str, quick: KVSession, cancelled: Cancelled | None) -> bool:
        """Encode the full window at the quick session's document and cursor in a session of
        its own; True once it replaced the quick one."""
        full = self._growing.get(doc_id)
        if full is None:
            full = self._growing[doc_id] = self.new_session()
        if not full.tokens:
            full.reset(quick.doc, quick.cursor)
        elif full.doc != quick.doc:
            full.set_text(quick.doc)
        if isinstance(full, FimSession):
            target = full.prepare(quick.cursor, quick.head, self.can_heal).visible
        else:
            if not full.covers(quick.cursor):
                full.reset(quick.doc, quick.cursor)
            full.set_header(quick.header)
            target = max(0, full.prompt_at(quick.cursor).k - 1)
        full.cursor = quick.cursor
        if not full.sync(target, cancelled):
            return False
        self.store.put(doc_id, full)
        del self._growing[doc_id]
        return True

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
                return self._complete_with_rounds(session, req, cancelled or (lambda: False))
            finally:
                session.end_scratch()
                if not temporary:
                    self.store.fit()

    def _complete_with_rounds(self, session: KVSession, req: CompletionRequest,
                              cancelled: Cancelled) -> CompletionResult:
        def complete(feedback: str) -> CompletionResult:
            session.end_scratch()  # a round starts from the document's cache
            return self._complete(session, req, cancelled, feedback)

        return with_error_rounds(complete, self.settings)

    def _complete(self, session: KVSession, req: CompletionRequest, cancelled: Cancelled,
                  feedback: str = "") -> CompletionResult:
        timings: dict[str, float] = {}
        result = CompletionResult(items=[], timings_ms=timings, model=self.info.name)
        offset = max(0, min(req.offset, len(req.text)))
        max_new = max(1, min(req.max_new_tokens or self.settings.max_new_tokens, MAX_NEW_TOKENS))

        t0 = time.perf_counter()
        ctx = analyze_cursor(req.text, offset, req.tab_size, req.insert_spaces)
        # An editor's fresh document starts with a small window near the cursor (a fast first
        # suggestion) until idle time encodes the full one (maintain); one-shot requests (no
        # doc_id: CLI, benchmarks) take the full window at once.
        quick = req.doc_id is not None and (not session.tokens or session.partial)
        if not session.tokens:
            session.reset(req.text, offset, quick=quick)
        elif session.doc != req.text:
            session.set_text(req.text)
        if not session.covers(offset):
            session.reset(req.text, offset, quick=quick)
        session.cursor = offset
        tc = time.perf_counter()
        # LANCE (RESEARCH §5) after `recv.`, the typed hole (§6) and the error round's feedback
        header = context_header(req.text, offset, self.settings, lambda t: len(self.encode(t)),
                                req.path, req.workspace, self.api_index, feedback,
                                correlate=self.settings.constrain_api_names)
        hole, correlation = header.hole, header.correlation
        fim_session = isinstance(session, FimSession)
        if not fim_session and (header.text or session.header):
            session.set_header(header.text)
        context_ms = (time.perf_counter() - tc) * 1000
        if self.settings.typed_holes or correlation is not None:
            timings["context"] = context_ms
        else:
            context_ms = 0.0
        if fim_session:
            # FIM order: head, PRE prefix SUF suffix MID line; the middle goes on from there
            head = self.fim_head(header.files, req, feedback)
            fim_prompt = session.prepare(offset, head, self.can_heal, quick=quick)
            heal, extra = fim_prompt.heal, []
            visible = position = fim_prompt.visible
            pending = session.tokens[visible]
            ngram_context = fim_prompt.prefix_tail[-5:]
        else:
            state = session.prompt_at(offset)
            heal, extra = state.heal, []
            if heal and not self.can_heal(heal):
                extra, heal = self.encode(heal), ""  # plain prompt: the partial token as it is
            if state.k > 0:
                visible, pending, position = state.k - 1, session.tokens[state.k - 1], state.k - 1
            else:  # cursor at the start of the window: condition on a newline
                visible, pending, position = 0, self.newline_id, 0
            ngram_context = session.tokens[max(0, visible - 5):visible]
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
        hidden = None
        if self._uses_heads():  # the stop controller reads the prompt's last hidden state
            logits, hidden = early_exit.first_step(self.decoder, session.cache,
                                                   [pending] + extra, position, hide)
        else:
            logits = session.scratch_forward([pending] + extra, position, hide)[-1]
        t2 = time.perf_counter()
        timings["prefill"] = (t2 - t1) * 1000
        # Several drafts by superposed decoding; after `recv.` the API-name constraint (greedy
        # path) takes precedence.
        if (self.settings.drafts > 1 and superposed.available(self.decoder)
                and not (correlation is not None and self.settings.constrain_api_names)):
            context = ngram_context + ([] if fim_session else [pending]) + extra
            return superposed.complete_drafts(
                self, session, req, result, ctx, hole, offset, logits, position + 1 + len(extra),
                hide, heal, max_new, context, cancelled, t2)

        names = None
        if correlation is not None and self.settings.constrain_api_names:
            names = NameConstraint.at_cursor([s.name for s in correlation.matching()],
                                             self.vocab, correlation.site.typed, heal,
                                             correlation.prior, self.settings.api_name_prior)
        generated, logprobs, was_cancelled, finished = self._decode(
            session, logits, position + 1 + len(extra), hide, heal, max_new, ctx, cancelled,
            names, hidden, session.tokens[:visible] + [pending] + extra)
        timings["decode"] = (time.perf_counter() - t2) * 1000
        timings["decode_tokens"] = float(len(logprobs))
        timings.update(self.last_decode)
        if was_cancelled:
            result.cancelled = True
            return result
        score = sum(logprobs) / len(logprobs) if logprobs else 0.0
        finish_drafts(result, [RawDraft(generated, finished, score)], req, offset, ctx,
                      hole.expected if hole is not None else None, self.settings)
        return result

    def _reused(self, session: KVSession, visible: int) -> int:
        """Prompt tokens that were already in the cache before this request."""
        return max(0, visible - session.last_sync_tokens)

    def _decode(self, session: KVSession, logits: torch.Tensor, position: int,
                hide: tuple[int, int], heal: str, max_new: int, ctx, cancelled: Cancelled,
                names: NameConstraint | None = None, hidden: torch.Tensor | None = None,
                context: list[int] | None = None) -> tuple[str, list[float], bool, bool]:
        """Greedy decoding into the session's scratch slots; the first tokens re-spell `heal`.
        Returns (text after the cursor, log-probabilities, cancelled, finished: the model or
        the stop rule ended it, not the token limit). `names` constrains the attribute name
        after `recv.` to the receiver's members (LANCE). `hidden`: the final hidden state
        behind `logits` (the stop controller's input; early_exit.first_step). `context`: the
        prompt's token ids (prompt-lookup drafts)."""
        stepper, stop_at = self._early_exit_stepper(session, position, hide, context)
        self.last_decode = {}
        out_ids: list[int] = []
        spelled = ""  # generated text, token by token (what `names` checks)
        logprobs: list[float] = []
        remaining = heal
        finished = False
        for _ in range(max_new + 8):  # a few extra steps for the healed characters
            if cancelled():
                return "", logprobs, True, False
            allowed = names.allowed(spelled) if names is not None else None
            # the workspace's name prior, mixed in where the candidate names part ways
            bias = names.bias(spelled, allowed) if allowed is not None else None
            if allowed is None and remaining:
                allowed = self.vocab.allowed(remaining)
            if allowed is not None:
                scores = torch.full_like(logits, -math.inf)
                scores[allowed] = (logits[allowed] if bias is None
                                   else logits[allowed] + bias.to(logits))  # device, dtype
            else:
                scores = logits
            token = self.pick_token(scores)
            if (stop_at is not None and allowed is None and hidden is not None
                    and self._heads.stop_prob(hidden, logits) > stop_at):
                # SEC stop: the model is likely wrong from here on; cut before this token
                self.last_decode["stop_cut"] = 1.0
                finished = True
                break
            logprobs.append(float(torch.log_softmax(scores, -1)[token]))
            if token in self.eos_ids:
                finished = True
                break
            out_ids.append(token)
            spelled += self.vocab.text(token)
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
            if stepper is not None:
                if stepper.room <= 0:
                    break
                # no speculation under a mask: a constrained token rarely matches a draft
                logits, hidden = stepper.step(token, speculate=not remaining and names is None)
                position += 1
                continue
            if session.scratch_room <= 0:
                break
            logits = session.scratch_forward([token], position, hide)[-1]
            position += 1
        if stepper is not None:
            stepper.settle()
            st = stepper.stats
            self.last_decode.update(spec_rounds=float(st.rounds), spec_drafted=float(st.drafted),
                                    spec_accepted=float(st.accepted), exited=float(st.exited),
                                    lookup_rounds=float(st.lookup_rounds),
                                    lookup_drafted=float(st.lookup_drafted),
                                    lookup_accepted=float(st.lookup_accepted))
        text = self.tokenizer.decode(out_ids, skip_special_tokens=True)
        return (text[len(heal):] if text.startswith(heal) else text), logprobs, False, finished

    # -- early exit -------------------------------------------------------------------------

    def early_exit_mode(self) -> str:
        """The early-exit mode in effect: `auto` is `lookup` on our decoder on the CPU (bit for
        bit greedy's output, 1.38-1.45x there) and `off` elsewhere (on CUDA the plain steps
        replay a CUDA graph that the verification passes do not use)."""
        mode = self.settings.early_exit
        if mode != "auto":
            return mode
        cpu = isinstance(self.decoder, Decoder) and self.decoder.device.type == "cpu"
        return "lookup" if cpu else "off"

    def _uses_heads(self) -> bool:
        s = self.settings
        return ((self.early_exit_mode() not in ("off", "lookup") or s.stop_controller)
                and self.exit_heads() is not None)

    def exit_heads(self) -> early_exit.BoundHeads | None:
        """The trained exit heads on this decoder, loaded on first use; None (logged once)
        for the transformers fallback or a heads file trained for another model."""
        if self._heads is None and self._heads_error is None:
            if not isinstance(self.decoder, Decoder):
                self._heads_error = "the transformers fallback decoder has no early exit"
            else:
                try:
                    heads = early_exit.ExitHeads.load(
                        self.settings.exit_heads or early_exit.DEFAULT_PATH, self.decoder,
                        self.tokenizer)
                    self._heads = heads.bind(self.decoder)
                except (OSError, ValueError) as exc:
                    self._heads_error = str(exc)
            if self._heads_error:
                log.warning("early exit and stop controller off: %s", self._heads_error)
        return self._heads

    def _early_exit_stepper(self, session: KVSession, position: int, hide: tuple[int, int],
                            context: list[int] | None = None
                            ) -> tuple[early_exit.Stepper | None, float | None]:
        """(stepper for self-speculation or for the stop controller's hidden states, or None
        for plain steps; the STOP probability threshold, or None)."""
        s, mode = self.settings, self.early_exit_mode()
        # prompt lookup needs no heads, only our decoder (split forwards, cache rewinds)
        lookup = (PromptLookup(context or []) if mode in LOOKUP_MODES
                  and isinstance(self.decoder, Decoder) else None)
        if not self._uses_heads():
            if lookup is None:
                return None, None
            return early_exit.Stepper(self.decoder, session.cache, position, hide,
                                      tokens=s.speculate_tokens, lookup=lookup), None
        heads = self._heads
        spec = heads if mode in ("selfspec", "lossy", "selfspec+lookup") else None
        layer = s.exit_layer or heads.heads.default_layer
        stepper = early_exit.Stepper(self.decoder, session.cache, position, hide, spec, layer,
                                     s.speculate_tokens, s.speculate_confidence,
                                     s.exit_threshold if mode == "lossy" else None,
                                     lookup)
        stop_at = None
        if s.stop_controller:
            stop_at = s.stop_threshold or heads.heads.stop_threshold
        return stepper, stop_at


def _argmax(scores: torch.Tensor) -> int:
    return int(torch.argmax(scores))
