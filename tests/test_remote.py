"""The openai backend (holefill/completion/remote.py) against a real OpenAI-compatible server:
llama.cpp's server from llama-cpp-python serving the embedded GGUF (tests/remote_server.py).
What the server did is read from its own log: client disconnects, prefix-cache hits."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lsprotocol import types
from remote_server import LlamaServer, embedded_gguf, free_port, llama_server, require_llama_cpp

from holefill.completion.engine import CompletionRequest
from holefill.completion.model import ModelError
from holefill.completion.remote import (
    EndpointError,
    RemoteEngine,
    base_url,
    build_prompt,
    parse_usage,
)
from holefill.config import Settings
from holefill.context.prompt import CLOSE, OPEN

__all__ = ["llama_server"]  # the fixture, imported for pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
VECTOR = DATA / "vector.py"
DISCONNECT = "Disconnected from client"
TIMEOUT = 120
# A line the model continues for ~27 tokens before it closes the bracket and ends the line.
NUMBERS = "numbers = [" + ", ".join(str(i) for i in range(1, 41)) + ","


def vector_doc() -> str:
    text = VECTOR.read_text()
    return text[: text.rindex("return self.") + len("return self.")]


def settings(url: str, **extra: object) -> Settings:
    return Settings().updated({"backend": "openai", "endpoint": url, "max_new_tokens": 24,
                               "drafts": 1, **extra})


def disconnects(server: LlamaServer) -> int:
    return server.log().count(DISCONNECT)


def posts(server: LlamaServer) -> int:
    """Completion requests the server has begun answering (its access log)."""
    return server.log().count('"POST /v1/completions')


def generations(server: LlamaServer) -> int:
    """Generations the server ran to their end (llama.cpp prints its timings then)."""
    return len(re.findall(r"^llama_perf_context_print: +eval time", server.log(), re.M))


# -- without a server -----------------------------------------------------------------------


def test_endpoint_urls() -> None:
    assert base_url("http://h:8000") == base_url("http://h:8000/v1/") == "http://h:8000"
    for bad in ("", "h:8000", "ftp://h/x", "http://"):
        with pytest.raises(ModelError, match="--endpoint"):
            base_url(bad)


def test_prompt_is_laid_out_for_the_prefix_cache(tmp_path) -> None:
    """Context block first, file window after; byte-identical for the same input; typing at the
    cursor only appends to it (the engine's prefix cache keeps everything before)."""
    (tmp_path / "models.py").write_text(
        "from dataclasses import dataclass\n\n\n@dataclass\nclass Model:\n    count: int = 0\n")
    text = "from models import Model\n\n\ndef bump(model: Model) -> Model:\n    return "
    path, ws = str(tmp_path / "app.py"), str(tmp_path)
    s = Settings().updated({"typed_holes": True})
    first, hole = build_prompt(text, len(text), s, path, ws)
    assert hole is not None and hole.expected.type == "Model"
    assert first == build_prompt(text, len(text), s, path, ws)[0]
    assert first.startswith(OPEN) and "class Model:" in first
    assert first.endswith(CLOSE + "\n\n" + text)  # block, blank line, then the file
    typed = text + "Mo"
    assert build_prompt(typed, len(typed), s, path, ws)[0] == first + "Mo"
    # Without typed holes the prompt is the window up to the cursor, cut there (no healing).
    assert build_prompt(text, len(text) - 3, Settings(), path, ws)[0] == text[:-3]


def test_prompt_has_the_api_block_and_error_feedback() -> None:
    """After `recv.` the workspace's member signatures come first (as in the local engine's
    prompt), then the error-round feedback, then the file."""
    from holefill.context.index import ApiIndex
    from holefill.context.prompt import error_feedback

    repo = DATA / "api_repo"
    source = (repo / "app.py").read_text()
    text = source[: source.index("cart.add_item") + len("cart.")]
    path = str(repo / "app.py")
    feedback = error_feedback(["name 'nope' is not defined"])
    on = Settings().updated({"api_context": True})  # off by default (BENCHMARKS: api)
    prompt, _ = build_prompt(text, len(text), on, path, str(repo), ApiIndex.build(repo), feedback)
    assert prompt.startswith("# Local APIs of shop.cart.Cart") and "# Cart.add_item(" in prompt
    assert prompt.index("# Cart.add_item(") < prompt.index(feedback) < prompt.index(text[-60:])
    assert prompt.endswith(text)
    off, _ = build_prompt(text, len(text), Settings().updated({"api_context": False}), path,
                          str(repo), ApiIndex.build(repo))
    assert off == text[-len(off):]


def test_usage_with_cached_tokens() -> None:
    usage = {"prompt_tokens": 900, "completion_tokens": 7,
             "prompt_tokens_details": {"cached_tokens": 832}}  # vLLM's shape
    assert parse_usage(usage) == (900, 832, 7)
    assert parse_usage({"prompt_tokens": 5, "completion_tokens": 1}) == (5, None, 1)
    assert parse_usage(None) == (0, None, 0)


def test_endpoint_down_is_a_clear_error_after_retries(caplog) -> None:
    port = free_port()  # nothing listens there
    engine = RemoteEngine.load(settings(f"http://127.0.0.1:{port}", request_retries=2))
    try:
        with caplog.at_level("INFO", logger="holefill.completion.remote"):
            with pytest.raises(EndpointError, match=f"127.0.0.1:{port} is unreachable"):
                engine.complete(CompletionRequest(text=vector_doc(), offset=len(vector_doc())))
        retries = [r for r in caplog.records if re.search(r"retry \d of 2", r.getMessage())]
        assert len(retries) == 2, [r.getMessage() for r in caplog.records]
        assert not any("return self" in r.getMessage() for r in caplog.records)  # no source
    finally:
        engine.close()


# -- against llama.cpp's server ---------------------------------------------------------------


@pytest.mark.slow
def test_completion_through_the_server(llama_server: LlamaServer) -> None:
    engine = RemoteEngine.load(settings(llama_server.url))
    try:
        assert engine.model_name  # learned from /v1/models
        text = vector_doc()
        before, finished = disconnects(llama_server), generations(llama_server)
        result = engine.complete(CompletionRequest(text=text, offset=len(text), doc_id="a"))
        assert result.items and result.items[0].text.strip(), result
        assert "\n" not in result.items[0].text  # line mode: cleaned like the local engine's
        assert result.timings_ms["prefill"] > 0 and "decode" in result.timings_ms
        print("remote suggestion:", repr(result.items[0].text), result.timings_ms)
        # The line was complete before max_new_tokens: we closed the stream, and the server
        # saw the client go instead of generating to the end.
        assert result.timings_ms["decode_tokens"] < 24
        assert _wait(lambda: disconnects(llama_server) > before), llama_server.log()[-800:]
        assert generations(llama_server) == finished
        # One more character typed: the engine's prompt cache holds the whole earlier prompt,
        # only the new token(s) at the end are evaluated.
        engine.complete(CompletionRequest(text=text + "x", offset=len(text) + 1, doc_id="a"))
        remaining = re.findall(r"prefix-match hit, remaining (\d+) prompt", llama_server.log())
        assert remaining and int(remaining[-1]) <= 3, llama_server.log()[-800:]
    finally:
        engine.close()


@pytest.mark.slow
def test_cancel_closes_the_request(llama_server: LlamaServer) -> None:
    """A cancel while the engine generates closes the HTTP request; the server stops."""
    engine = RemoteEngine.load(settings(llama_server.url))
    try:
        # Cancelled as soon as the server has begun to answer. Left open, the request would run
        # to its 16 tokens (no newline in them: the stop rule would not close it) and the
        # server would log a finished generation.
        started, before, finished = posts(llama_server), disconnects(llama_server), \
            generations(llama_server)
        result = engine.complete(CompletionRequest(text=NUMBERS, offset=len(NUMBERS),
                                                   max_new_tokens=16),
                                 lambda: posts(llama_server) > started)
        assert result.cancelled and not result.items, "finished before the cancel"
        assert _wait(lambda: disconnects(llama_server) > before), llama_server.log()[-800:]
        assert generations(llama_server) == finished  # it never ran to its end
    finally:
        engine.close()


@pytest.mark.slow
def test_unknown_model_is_a_load_error(llama_server: LlamaServer) -> None:
    with pytest.raises(ModelError, match="not 'no-such-model'"):
        RemoteEngine.load(settings(llama_server.url, model="no-such-model"))


@pytest.mark.slow
def test_model_info_lists_capabilities(llama_server: LlamaServer) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "holefill.cli", "model", "info", "--json", "--backend", "openai",
         "--endpoint", llama_server.url], capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    caps = info["capabilities"]
    assert info["backend"] == "openai" and info["decoder"] == "openai"
    for name in ("pie", "superposed_decoding", "early_exit", "token_healing",
                 "constrain_api_names"):
        assert caps[name].startswith("unavailable"), caps
    for name in ("typed_holes", "api_context", "error_rounds", "checks", "postprocess", "drafts"):
        assert caps[name].startswith("available"), caps


# -- end to end through `holefill serve` --------------------------------------------------------


def inline_params(uri: str, position: types.Position) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        text_document=types.TextDocumentIdentifier(uri=uri), position=position)


async def inline(client, uri: str, position: types.Position) -> list[str]:
    result = await asyncio.wait_for(
        client.text_document_inline_completion_async(inline_params(uri, position)), TIMEOUT)
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    return [item.insert_text for item in items if isinstance(item.insert_text, str)]


def end_of(text: str) -> types.Position:
    lines = text.split("\n")
    return types.Position(line=len(lines) - 1, character=len(lines[-1]))


@pytest.mark.slow
async def test_serve_with_the_openai_backend(lsp) -> None:
    """Inline completion arrives; a superseded request is closed on the server; the endpoint
    going down gives an editor-visible error, and completions come back with it."""
    require_llama_cpp()
    server = LlamaServer(embedded_gguf())
    await asyncio.to_thread(server.start)
    try:
        client = await lsp.start(command=lsp.real_server, options={
            "backend": "openai", "endpoint": server.url, "maxNewTokens": 48, "drafts": 1,
            "errorRounds": 0})  # one HTTP request per completion: the counts below are exact
        ready = await lsp.wait_model(client, timeout=TIMEOUT)
        assert ready.startswith("ready"), ready
        text = vector_doc()
        uri = VECTOR.as_uri()
        lsp.open(client, uri, text)
        first = await inline(client, uri, end_of(text))
        assert first and first[0].strip(), first

        # A newer request for a document supersedes the older one while the server answers
        # it: the older HTTP request is closed, and the server sees its client go. Left open,
        # it would run to its 12 tokens (no newline in them) and log a finished generation.
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"holefill": {"maxNewTokens": 12}}))
        numbers_uri = (DATA / "numbers.py").as_uri()
        lsp.open(client, numbers_uri, NUMBERS)
        started, before, finished = posts(server), disconnects(server), generations(server)
        older = asyncio.ensure_future(inline(client, numbers_uri, end_of(NUMBERS)))
        await lsp.wait_until(lambda: posts(server) > started, 30, "the older request")
        newer = asyncio.ensure_future(inline(client, numbers_uri, end_of(NUMBERS)))
        assert await older == []
        await newer  # ran to its 12 tokens
        await lsp.wait_until(lambda: generations(server) > finished, 30, "the newer one")
        assert disconnects(server) == before + 1, server.log()[-1500:]
        assert generations(server) == finished + 1, server.log()[-1500:]
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"holefill": {"maxNewTokens": 48}}))

        # The endpoint goes down: the request gets no items and the editor an error message.
        server.stop()
        assert await inline(client, uri, end_of(text)) == []
        error = await lsp.wait_until(lambda: [
            m for m in client.messages  # window/showMessage
            if m.type == types.MessageType.Error and "unreachable" in m.message], 30, "an error")
        assert server.url in error[0].message
        assert await inline(client, uri, end_of(text)) == []
        assert len([m for m in client.messages if "unreachable" in m.message]) == 1  # no storm

        # It comes back on the same address: so do the suggestions.
        await asyncio.to_thread(server.start)
        again = await inline(client, uri, end_of(text))
        assert again and again[0].strip(), again
        await lsp.wait_until(lambda: any(
            "available again" in m.message for m in client.messages), 30, "recovery")
    finally:
        server.close()


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
