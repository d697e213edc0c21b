"""Team scale: the completion pipeline on an existing inference engine (vLLM, llama.cpp's server,
TGI) through the OpenAI-compatible `/v1/completions` API.

Everything but decoding is the local engine's: cursor analysis and post-processing
(postprocess.py), the API signature block and the typed-hole context block (context/), the
prompt window (kvcache/window.py), the fill-in-the-middle layout (completion/fim.py), the
suggestion checker and its error rounds (context/). The engine decodes; we stream its tokens
(SSE), stop reading as soon as the post-processor says the line or block is complete, and close
the HTTP request then (vLLM and llama.cpp abort the generation when the client disconnects), or
when the editor cancels.

Prompt layout for the engine's prefix cache (vLLM automatic prefix caching, llama.cpp
`cache_prompt`), in one of two forms:

- prefix only (models without FIM, or setting `fim` off): the stable context blocks first, then
  the file window up to the cursor, whose start stays put while the user types (window.py), so
  consecutive requests share a long prefix.
- fill-in-the-middle, when the setting `fim` names a family or (`auto`) the served model's id
  does (Qwen2.5-Coder, StarCoder, DeepSeek-Coder, CodeLlama; there is no tokenizer here to
  look for the tokens): the local FIM session's layout as text, `head PRE prefix SUF suffix MID
  line`, with the cursor line's text before the cursor after MID, so typing on a line only
  appends to the prompt. The special tokens are spelled out in the prompt string: vLLM (its
  Hugging Face tokenizer) and llama.cpp's servers parse them as special tokens in a completion
  prompt (tests/test_remote.py checks llama-cpp-python's: three FIM tokens, three prompt
  tokens). The template's end tokens go in `stop` (vLLM: with `skip_special_tokens` off, else
  they never appear in the text it matches; llama.cpp ends on them as end-of-generation tokens
  anyway). Blanks at the end of the line before the cursor are left out of the prompt and
  taken off the drafts' start (`fim_heal`, `unheal`): the model writes the indentation itself,
  spelled as it was trained.

Not available here (they need the model's internals): token healing (the prompt is cut at the
cursor), PIE sessions, superposed decoding, early exit and the API-name constraint. Several
drafts come from the engine's own `n`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from holefill.completion import fim
from holefill.completion.engine import (
    Cancelled,
    CompletionRequest,
    CompletionResult,
    RawDraft,
    finish_drafts,
    with_error_rounds,
)
from holefill.completion.model import ModelError, ModelInfo, builtin_model
from holefill.completion.postprocess import CursorContext, analyze_cursor
from holefill.completion.postprocess import should_stop as _should_stop
from holefill.config import Settings
from holefill.context.prompt import context_header
from holefill.context.report import estimate_tokens
from holefill.kvcache.window import prompt_window, window_chars, window_start

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 256
POLL_S = 0.01  # how often a waiting request looks at the editor's cancel flag
BACKOFF_S = 0.25  # first retry delay; doubles per retry
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
DRAFT_TEMPERATURE = 0.6  # n > 1 needs sampling: greedy drafts would all be the same

CAPABILITIES = {
    "typed_holes": "available (context block first in the prompt)",
    "api_context": "available (signature block in the prompt)",
    "error_rounds": "available",
    "constrain_api_names": "unavailable for this backend: needs the model's logits",
    "checks": "available",
    "postprocess": "available",
    "drafts": "available: the engine's own `n` (sampled at temperature 0.6; drafts=1: greedy)",
    "prefix_cache": "the engine's (vLLM automatic prefix caching, llama.cpp cache_prompt)",
    "token_healing": ("unavailable for this backend: the prompt is cut at the cursor (a FIM "
                      "prompt leaves the cursor line's trailing blanks to the model)"),
    "pie": "unavailable for this backend: the KV cache lives in the inference engine",
    "superposed_decoding": "unavailable for this backend: needs the model's embeddings",
    "early_exit": "unavailable for this backend: needs the model's layers",
}


class EndpointError(RuntimeError):
    """The endpoint cannot serve completions now (unreachable, timed out, HTTP error). The
    language server shows it in the editor once per outage."""

    unavailable = True


class _Retryable(Exception):
    """A failure before any output that a later attempt may not have."""


@dataclass
class RemoteOutput:
    """What one streamed request produced."""

    texts: dict[int, str] = field(default_factory=dict)  # choice index -> raw text
    finished: dict[int, bool] = field(default_factory=dict)  # ended by the engine or stop rule
    ttft_ms: float | None = None  # time to the first generated text
    prompt_tokens: int = 0
    cached_tokens: int | None = None  # prompt tokens the engine took from its prefix cache
    completion_tokens: int = 0
    closed_early: bool = False  # we closed the stream: every draft was complete
    chunks: int = 0  # streamed pieces of text (the token count when no usage arrives)


def base_url(endpoint: str) -> str:
    """The server root for `endpoint` ("http://h:8000", ".../v1" and a trailing slash all work);
    ModelError for anything that is not an http(s) URL."""
    url = endpoint.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ModelError(f"backend openai needs --endpoint http(s)://HOST:PORT, got {endpoint!r}")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def build_prompt(text: str, offset: int, settings: Settings, path: str | None = None,
                 workspace: str | None = None, api_index: Any = None, feedback: str = "",
                 template: fim.FimTemplate | None = None) -> tuple[str, Any]:
    """(prompt, hole context or None), laid out like the local engine's session. Deterministic:
    the same input gives byte-identical prompts. No tokenizer here: budgets use `holefill
    context`'s estimate.

    Without a template: the API signature block (LANCE, after `recv.`), the typed-hole context
    block, the error-round feedback, then the file window up to the cursor.

    With a FIM template, the local FIM session's layout (kvcache/fim_session.py), as text with
    the special tokens spelled out: head (the same blocks as other files' snippets in the
    family's repository format, then the current file's path, then the feedback) PRE [window
    up to the start of the cursor's line] SUF [the text from the cursor to the suffix window's
    end] MID [the cursor line's text before the cursor, less its trailing blanks: fim_heal].
    Typing on a line only appends to the prompt; moving to another line changes it from the
    prefix window's end on."""
    header = context_header(text, offset, settings, estimate_tokens, path, workspace, api_index,
                            feedback)
    if template is None:
        return header.text + prompt_window(text, offset, settings.max_prompt_tokens), header.hole
    start = window_start(text, offset, window_chars(settings.max_prompt_tokens)[1])
    line = max(start, text.rfind("\n", 0, offset) + 1)
    end = fim.suffix_window(text, offset, settings.fim_suffix_chars)
    rel, repo = fim.file_names(path, workspace)
    head = template.head(header.files, rel, repo) + feedback
    middle = text[line:offset].rstrip(" \t")  # the blanks are the model's to write (fim_heal)
    prompt = template.prompt(text[start:line], text[offset:end], head) + middle
    return prompt, header.hole


def fim_heal(text: str, offset: int) -> str:
    """The blanks at the end of the cursor line's text before the cursor, which a FIM prompt
    leaves out for the model to write (see `unheal`): a BPE model spells an indented line
    `"   " " total"` or `"\t" "total"`, so a prompt that ends in the blanks' own token (`"    "`)
    makes it write one blank too many. The local engine heals the last token with its logits;
    here the engine only sees text. Typing still only appends to the prompt."""
    line = text[text.rfind("\n", 0, offset) + 1:offset]
    return line[len(line.rstrip(" \t")):]


def unheal(text: str, heal: str) -> str:
    """A draft as it is inserted at the cursor when the prompt ended before the blanks `heal`:
    without them when it starts with them, "" while it is still writing them, else (the model
    wanted another indentation) without its first line's own blanks."""
    if text.startswith(heal):
        return text[len(heal):]
    if heal.startswith(text):
        return ""
    return text[len(text) - len(text.lstrip(" \t")):]


def parse_usage(usage: Any) -> tuple[int, int | None, int]:
    """(prompt tokens, cached prompt tokens or None, completion tokens) from an OpenAI `usage`
    object (vLLM: `prompt_tokens_details.cached_tokens`, with --enable-prompt-tokens-details)."""
    if not isinstance(usage, dict):
        return 0, None, 0
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return (int(usage.get("prompt_tokens") or 0), int(cached) if cached is not None else None,
            int(usage.get("completion_tokens") or 0))


class RemoteEngine:
    """The surface the server and CLI use from CompletionEngine, on an OpenAI-compatible
    endpoint. Thread-safe enough for the host (one call at a time); HTTP runs on a private event
    loop thread so that a cancel closes the request even while the engine is still prefilling."""

    cache_mode = "engine"  # the engine's own prefix cache
    pie_unsupported = "not on the openai backend: the KV cache lives in the inference engine"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base = base_url(settings.endpoint)
        if settings.fim not in fim.FIM_MODES:  # before anything starts: a clear load error
            raise ModelError(f"setting fim: {settings.fim!r} is not one of "
                             f"{', '.join(fim.FIM_MODES)}")
        self.headers = {"Accept": "text/event-stream"}
        if settings.api_key_env:
            key = os.environ.get(settings.api_key_env)
            if not key:
                raise ModelError(f"api_key_env names {settings.api_key_env!r}, which is not set")
            self.headers["Authorization"] = f"Bearer {key}"  # never logged
        # a built-in model's name means local weights: the endpoint's own model is used then
        builtin = settings.model in ("", "embedded") or builtin_model(settings.model) is not None
        self.model_name: str | None = None if builtin else settings.model
        self.api_index: Any = None  # context.index.ApiIndex of the workspace (server/CLI set it)
        self.flavour = ""  # "vllm", "llamacpp", ... from /v1/models (decides extra fields)
        # the FIM template: from the setting, or guessed from the served model's id once known
        self.fim: fim.FimTemplate | None = None
        self.timeout = max(0.5, float(settings.request_timeout_s))
        if not settings.debug_log_source:  # httpx logs every request at INFO: keep it quiet
            logging.getLogger("httpx").setLevel(logging.WARNING)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="holefill-remote")
        self._thread.start()
        self._client: httpx.AsyncClient = self._run(self._make_client(), self.timeout)
        self.info = ModelInfo(name=self.model_name or "(the endpoint's model)", source=self.base,
                              path="", architecture="remote", device=self.base,
                              dtype="server-side", decoder="openai", load_s=0.0,
                              extra={"cache_mode": self.cache_mode})
        self._resolve_fim()

    @classmethod
    def load(cls, settings: Settings) -> RemoteEngine:
        """Connect and learn the served model. An endpoint that is down now is not an error
        (it may come up later: requests retry); one that answers without the model is."""
        start = time.perf_counter()
        engine = cls(settings)
        try:
            engine.resolve_model()
        except EndpointError as exc:
            log.warning("%s; completions will retry it", exc)
        except ModelError:
            engine.close()
            raise
        engine.info.load_s = time.perf_counter() - start
        return engine

    # -- the CompletionEngine surface ---------------------------------------------------------

    def capabilities(self) -> dict[str, str]:
        caps = dict(CAPABILITIES)
        mode = self.settings.fim
        if self.fim is not None:
            origin = "from the model id" if mode == "auto" else "from the setting fim"
            caps["fim"] = f"available ({self.fim.family} template, {origin})"
        elif mode == "off":
            caps["fim"] = "off (setting fim): the prompt ends at the cursor"
        elif self.model_name is None:
            caps["fim"] = ("unavailable until the endpoint names its model (setting fim: auto "
                           "guesses the template from the model id)")
        else:
            caps["fim"] = (f"unavailable: the model id {self.model_name!r} names no FIM family "
                           f"(setting fim: {', '.join(fim.TEMPLATES)} forces one)")
        return caps

    def _resolve_fim(self) -> None:
        """The FIM template for the setting `fim` and the model id (no tokenizer here: `auto`
        goes by the id, fim.for_model_name)."""
        try:
            self.fim = fim.resolve(self.settings.fim, vocab=None, model_name=self.model_name)
        except ValueError as exc:
            raise ModelError(str(exc)) from None
        self.info.extra["fim"] = self.fim.family if self.fim else "off"

    def edit(self, doc_id: str, start: int, end: int, text: str) -> None:
        """Nothing to do: the engine's prefix cache finds the unchanged prefix by itself."""

    def forget(self, doc_id: str) -> None:
        pass

    def maintain(self, cancelled: Cancelled | None = None) -> int:
        return 0

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self._client.aclose(), 2.0)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(2.0)
        if not self._loop.is_running():
            self._loop.close()

    def resolve_model(self) -> str:
        """The model id to request: the configured one (checked against /v1/models), or the
        endpoint's first model. Raises EndpointError when unreachable, ModelError when the
        endpoint does not serve the configured model."""
        try:
            data = self._run(self._get_models(), min(self.timeout, 5.0))
        except httpx.HTTPStatusError as exc:
            code = exc.response.status_code
            if code in (401, 403):
                raise ModelError(f"{self.base} refused the request (HTTP {code}): check the API "
                                 "key (api_key_env)") from None
            raise EndpointError(f"{self.base}/v1/models answered HTTP {code}") from None
        except (httpx.HTTPError, OSError, concurrent.futures.TimeoutError) as exc:
            raise EndpointError(self._unreachable(exc)) from None
        models = [m for m in data.get("data", []) if isinstance(m, dict) and m.get("id")]
        ids = [str(m["id"]) for m in models]
        if not ids:
            raise ModelError(f"{self.base}/v1/models lists no model")
        wanted = self.model_name or ids[0]
        if wanted not in ids:
            raise ModelError(f"{self.base} serves {', '.join(ids)}, not {wanted!r} (--model)")
        self.flavour = str(next(m for m in models if m["id"] == wanted).get("owned_by", ""))
        self.model_name = self.info.name = wanted
        self._resolve_fim()
        return wanted

    def complete(self, req: CompletionRequest, cancelled: Cancelled | None = None
                 ) -> CompletionResult:
        """Error rounds as in the local engine (RESEARCH §6): when the checker rejected every
        draft, ask again with the errors as comments before the file text, within the budget."""
        cancelled = cancelled or (lambda: False)
        return with_error_rounds(lambda feedback: self._complete(req, cancelled, feedback),
                                 self.settings)

    def _complete(self, req: CompletionRequest, cancelled: Cancelled, feedback: str = ""
                  ) -> CompletionResult:
        timings: dict[str, float] = {}
        result = CompletionResult(items=[], timings_ms=timings, model=self.info.name)
        offset = max(0, min(req.offset, len(req.text)))
        max_new = max(1, min(req.max_new_tokens or self.settings.max_new_tokens, MAX_NEW_TOKENS))
        n = max(1, int(getattr(req, "drafts", None) or getattr(self.settings, "drafts", 1) or 1))

        if self.model_name is None:  # the endpoint was down at load time
            try:
                self.resolve_model()  # the model id decides the FIM template
            except EndpointError:
                pass  # the request below retries, then reports it

        t0 = time.perf_counter()
        ctx = analyze_cursor(req.text, offset, req.tab_size, req.insert_spaces)
        tc = time.perf_counter()
        prompt, hole = build_prompt(req.text, offset, self.settings, req.path, req.workspace,
                                    self.api_index, feedback, self.fim)
        heal = fim_heal(req.text, offset) if self.fim is not None else ""
        context_ms = (time.perf_counter() - tc) * 1000
        if self.settings.typed_holes or self.api_index is not None:
            timings["context"] = context_ms
        else:
            context_ms = 0.0
        t1 = time.perf_counter()
        timings["tokenize"] = (t1 - t0) * 1000 - context_ms  # prompt assembly; stages disjoint
        if self.settings.debug_log_source:
            log.debug("remote prompt %r", prompt)

        # n > 1: the engine's own `n`, sampled (greedy drafts would all be the same)
        body = self._body(prompt, n, max_new, 0.0 if n == 1 else DRAFT_TEMPERATURE)
        output = self._stream(body, ctx, cancelled, heal)
        t2 = time.perf_counter()
        if output is None:
            result.cancelled = True
            return result
        ttft = output.ttft_ms if output.ttft_ms is not None else (t2 - t1) * 1000
        timings["prefill"] = ttft  # time to the first token: network, queueing and prefill
        timings["decode"] = (t2 - t1) * 1000 - ttft
        timings["decode_tokens"] = float(output.completion_tokens or output.chunks)
        result.prompt_tokens = output.prompt_tokens
        result.reused_tokens = output.cached_tokens or 0
        if output.cached_tokens is not None:
            timings["cached_prompt_share"] = output.cached_tokens / max(1, output.prompt_tokens)

        # no logprobs: equal scores keep the engine's order
        raws = [RawDraft(unheal(output.texts[i], heal), bool(output.finished.get(i)), 0.0)
                for i in sorted(output.texts)]
        finish_drafts(result, raws, req, offset, ctx,
                      hole.expected if hole is not None else None, self.settings)
        return result

    # -- HTTP ---------------------------------------------------------------------------------

    def _body(self, prompt: str, n: int, max_new: int, temperature: float) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": prompt, "max_tokens": max_new, "n": n, "stream": True,
            "temperature": temperature,
            "stream_options": {"include_usage": True},  # usage (and cached tokens) at the end
        }
        if self.model_name:
            body["model"] = self.model_name
        if self.flavour != "vllm":  # llama.cpp's prompt cache; vLLM warns about unknown fields
            body["cache_prompt"] = True
        if self.fim is not None:
            # the tokens that end the middle, besides the model's EOS (llama.cpp ends on every
            # end-of-generation token by itself)
            body["stop"] = list(self.fim.stops)
            if self.flavour == "vllm":  # vLLM matches stop strings in the decoded text, which
                body["skip_special_tokens"] = False  # leaves special tokens out by default
        return body

    def _run(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _make_client(self) -> httpx.AsyncClient:
        timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 3.0))
        return httpx.AsyncClient(base_url=self.base, headers=self.headers, timeout=timeout,
                                 trust_env=False)  # no proxy variables: the URL is the URL

    async def _get_models(self) -> dict[str, Any]:
        resp = await self._client.get("/v1/models")
        resp.raise_for_status()
        return resp.json()

    def _unreachable(self, exc: BaseException) -> str:
        if isinstance(exc, (httpx.TimeoutException, concurrent.futures.TimeoutError,
                            asyncio.TimeoutError)):
            return (f"the completion endpoint {self.base} did not answer within "
                    f"{self.timeout:g} s (setting request_timeout_s)")
        detail = str(exc) or type(exc).__name__
        return f"the completion endpoint {self.base} is unreachable ({detail})"

    def _stream(self, body: dict[str, Any], ctx: CursorContext, cancelled: Cancelled,
                heal: str = "") -> RemoteOutput | None:
        """Run the streamed request on the loop thread; None when `cancelled()` turned true
        first (its connection is closed before this returns). `heal`: the blanks the prompt
        left out before the cursor (fim_heal), which the stop rule does not see."""
        done = threading.Event()
        future = asyncio.run_coroutine_threadsafe(self._request(body, ctx, done, heal),
                                                  self._loop)
        while True:
            try:
                return future.result(POLL_S)
            except concurrent.futures.TimeoutError:
                if cancelled():
                    future.cancel()  # cancels the task: leaving `client.stream` closes it
                    done.wait(2.0)
                    return None
            except concurrent.futures.CancelledError:
                return None

    async def _request(self, body: dict[str, Any], ctx: CursorContext,
                       done: threading.Event, heal: str = "") -> RemoteOutput:
        try:
            return await asyncio.wait_for(self._with_retries(body, ctx, heal), self.timeout)
        except asyncio.TimeoutError:
            raise EndpointError(self._unreachable(asyncio.TimeoutError())) from None
        finally:
            done.set()

    async def _with_retries(self, body: dict[str, Any], ctx: CursorContext, heal: str = ""
                            ) -> RemoteOutput:
        retries = max(0, int(self.settings.request_retries))
        for attempt in range(retries + 1):
            try:
                return await self._stream_once(body, ctx, heal)
            except _Retryable as exc:
                if attempt == retries:
                    raise EndpointError(str(exc)) from None
                log.info("%s; retry %d of %d", exc, attempt + 1, retries)
                await asyncio.sleep(BACKOFF_S * 2**attempt)
        raise AssertionError("unreachable")

    async def _stream_once(self, body: dict[str, Any], ctx: CursorContext, heal: str = ""
                           ) -> RemoteOutput:
        out = RemoteOutput()
        start = time.perf_counter()
        try:
            async with self._client.stream("POST", "/v1/completions", json=body) as resp:
                if resp.status_code != 200:
                    detail = _error_detail(await resp.aread())
                    message = f"{self.base}/v1/completions answered HTTP {resp.status_code}"
                    message += f": {detail}" if detail else ""
                    if resp.status_code in RETRY_STATUS:
                        raise _Retryable(message)
                    raise EndpointError(message)
                async for line in resp.aiter_lines():
                    if self._take(line, out, ctx, body["n"], start, heal):
                        out.closed_early = True
                        break  # leaving the block closes the response: the engine stops
        except (httpx.TransportError, OSError) as exc:
            if out.texts:  # output already arrived: a retry would duplicate the work
                raise EndpointError(self._unreachable(exc)) from None
            raise _Retryable(self._unreachable(exc)) from None
        return out

    def _take(self, line: str, out: RemoteOutput, ctx: CursorContext, n: int,
              start: float, heal: str = "") -> bool:
        """Fold one SSE line into `out`; True when every draft is complete."""
        if not line.startswith("data:"):
            return False
        data = line[5:].strip()
        if data == "[DONE]":
            return False
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise EndpointError(f"{self.base} sent a malformed stream event") from None
        if isinstance(chunk.get("error"), (dict, str)):
            raise EndpointError(f"{self.base}: {_error_detail(data.encode())}")
        if chunk.get("usage"):
            out.prompt_tokens, out.cached_tokens, out.completion_tokens = parse_usage(
                chunk["usage"])
        timings = chunk.get("timings")  # llama.cpp's own server: prompt tokens from its cache
        if isinstance(timings, dict) and isinstance(timings.get("cache_n"), int):
            out.cached_tokens = timings["cache_n"]
            out.prompt_tokens = out.prompt_tokens or timings["cache_n"] + int(
                timings.get("prompt_n") or 0)
        for choice in chunk.get("choices") or []:
            index = int(choice.get("index") or 0)
            text = out.texts.get(index, "") + (choice.get("text") or "")
            out.texts[index] = text
            if text and out.ttft_ms is None:
                out.ttft_ms = (time.perf_counter() - start) * 1000
            if choice.get("text"):
                out.chunks += 1  # engines stream about one token a chunk
            if choice.get("finish_reason") == "stop" or _should_stop(unheal(text, heal), ctx):
                out.finished[index] = True
        # Close once every draft is complete. An engine that ignores `n` (llama-cpp-python's)
        # sends one choice: after a few chunks with no other index, take it as all there is.
        complete = bool(out.texts) and all(out.finished.get(i) for i in out.texts)
        return complete and (len(out.texts) >= n or out.chunks >= 2 * n)


def _error_detail(raw: bytes) -> str:
    """The `error.message` of an OpenAI-style error body, else its start (no prompt text:
    engines do not echo the prompt in errors)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw[:200].decode("utf-8", "replace").strip()
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or error)[:300]
    return str(error)[:300]
