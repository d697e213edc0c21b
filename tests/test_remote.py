"""The openai backend (holefill/completion/remote.py) against a real OpenAI-compatible server:
llama.cpp's server from llama-cpp-python serving the embedded GGUF, and Qwen2.5-Coder-0.5B for
fill-in-the-middle (tests/remote_server.py). What the server did is read from its own log:
client disconnects, prefix-cache hits."""

from __future__ import annotations

import ast
import asyncio
import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from lsprotocol import types
from remote_server import (
    LlamaServer,
    embedded_gguf,
    free_port,
    llama_server,
    qwen_server,
    require_llama_cpp,
)

from holefill.completion.engine import CompletionRequest
from holefill.completion.fim import TEMPLATES, suffix_window
from holefill.completion.model import ModelError
from holefill.completion.remote import (
    EndpointError,
    RemoteEngine,
    base_url,
    build_prompt,
    fim_heal,
    parse_usage,
    unheal,
)
from holefill.config import Settings
from holefill.context.prompt import CLOSE, OPEN, context_header, error_feedback
from holefill.context.report import estimate_tokens
from holefill.kvcache.window import window_chars, window_start

__all__ = ["llama_server", "qwen_server"]  # the fixtures, imported for pytest

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
    on = Settings().updated({"api_context": True})  # on by default since 2026-12-03 (BENCHMARKS: api); explicit here
    prompt, _ = build_prompt(text, len(text), on, path, str(repo), ApiIndex.build(repo), feedback)
    assert prompt.startswith("# Local APIs of shop.cart.Cart") and "# Cart.add_item(" in prompt
    assert prompt.index("# Cart.add_item(") < prompt.index(feedback) < prompt.index(text[-60:])
    assert prompt.endswith(text)
    off, _ = build_prompt(text, len(text), Settings().updated({"api_context": False}), path,
                          str(repo), ApiIndex.build(repo))
    assert off == text[-len(off):]


# -- fill-in-the-middle prompts (no server) ------------------------------------------------------

QWEN = TEMPLATES["qwen"]
PRE, SUF, MID = "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"
# Only the suffix says what the middle must write: `total` and `count`, which it returns.
MEAN = "def mean(values: list[float]) -> float:\n    "
MEAN_SUFFIX = "\n    return total / count\n"


def long_doc() -> str:
    return "".join(f"value_{i} = compute({i}, scale=2)  # line {i}\n" for i in range(200))


def line_start(doc: str, number: int) -> int:
    return doc.index(f"value_{number} = ")


def test_fim_prompt_is_the_local_sessions_layout() -> None:
    """head PRE [window up to the cursor's line] SUF [cursor to the suffix window's end] MID
    [the line before the cursor], with the local session's windows; the suffix is there."""
    doc = long_doc()
    s = Settings().updated({"max_prompt_tokens": 96, "fim_suffix_chars": 300})
    line = line_start(doc, 120)
    offset = line + len("value_120 = comp")
    start = window_start(doc, offset, window_chars(96)[1])
    end = suffix_window(doc, offset, 300)
    assert 0 < start < line and doc[start - 1] == "\n"  # a window, at a line start
    assert offset < end < len(doc) and doc[end - 1] == "\n"
    prompt, hole = build_prompt(doc, offset, s, template=QWEN)
    assert hole is None
    assert prompt == (PRE + doc[start:line] + SUF + doc[offset:end] + MID + "value_120 = comp")
    assert SUF + "ute(120, scale=2)  # line 120\nvalue_121 = " in prompt  # the suffix
    assert "# line 119\n" + SUF in prompt  # the prefix ends at the cursor line's start
    assert prompt == build_prompt(doc, offset, s, template=QWEN)[0]  # deterministic
    # The whole small file when it fits; no head without snippets (plain FIM).
    small = MEAN + MEAN_SUFFIX
    assert build_prompt(small, len(MEAN), Settings(), template=QWEN)[0] == (
        PRE + "def mean(values: list[float]) -> float:\n" + SUF + MEAN_SUFFIX + MID)


def test_fim_prompt_leaves_the_trailing_blanks_to_the_model() -> None:
    """The cursor line's text goes after MID without its trailing blanks: the model writes an
    indentation as it was trained to spell it (`"   " " total"`), and the drafts lose them."""
    text = "def f(x):\n    y = \n"
    offset = text.index("= ") + 2
    assert fim_heal(text, offset) == " "
    assert build_prompt(text, offset, Settings(), template=QWEN)[0].endswith(MID + "    y =")
    assert fim_heal(MEAN, len(MEAN)) == "    " and fim_heal("x\n\tab", 4) == ""
    assert build_prompt(MEAN, len(MEAN), Settings(), template=QWEN)[0].endswith(SUF + MID)
    assert unheal("    total = 0\n    n = 1", "    ") == "total = 0\n    n = 1"
    assert unheal("  ", "    ") == ""  # still writing the blanks
    assert unheal("  return x", "        ") == "return x"  # another indentation: its own
    assert unheal(" 2", " ") == "2" and unheal("x", "") == "x"


def test_fim_prompt_is_stable_for_the_prefix_cache() -> None:
    """Typing on the cursor's line only appends to the prompt (blanks too: they append
    nothing until the next character); moving to another line keeps the prompt up to the end
    of the prefix window that both share."""
    doc = long_doc()
    s = Settings().updated({"max_prompt_tokens": 96, "fim_suffix_chars": 300})
    line = line_start(doc, 120)
    offset = line + len("value_120 = ")
    prompts = []
    for typed in ["", "c", "co", "com", "comp", "comp ", "comp +", "comp + 1"]:
        text = doc[:offset] + typed + doc[offset:]
        prompts.append(build_prompt(text, offset + len(typed), s, template=QWEN)[0])
    for before, after in zip(prompts, prompts[1:], strict=False):
        assert after.startswith(before), (before[-40:], after[-40:])
    assert prompts[0].endswith(MID + "value_120 =")  # its blank is the model's
    assert prompts[-1] == prompts[0] + " comp + 1"
    assert prompts[5] == prompts[4]  # a blank: nothing yet
    # Another line: the window start stays put, so the prompt up to SUF of the upper line
    # is the lower line's too; what changes begins at the prefix window's end.
    lower = line_start(doc, 122) + 4
    window = window_chars(96)[1]
    assert window_start(doc, lower, window) == window_start(doc, offset, window)
    moved = build_prompt(doc, lower, s, template=QWEN)[0]
    shared = prompts[0][:prompts[0].index(SUF)]
    assert moved.startswith(shared) and not moved.startswith(shared + SUF)


def _hole_files(tmp_path: Path) -> tuple[str, str, str, Settings]:
    (tmp_path / "models.py").write_text(
        "from dataclasses import dataclass\n\n\n@dataclass\nclass Model:\n    count: int = 0\n")
    text = "from models import Model\n\n\ndef bump(model: Model) -> Model:\n    return "
    return text, str(tmp_path / "app.py"), str(tmp_path), Settings().updated(
        {"typed_holes": True})


def test_fim_prompt_has_the_repository_format(tmp_path) -> None:
    """Other files' snippets (here the typed hole's definitions) in Qwen's repository format,
    the current file's path last, the error-round feedback after it, then the FIM prompt; no
    comment block."""
    text, path, ws, s = _hole_files(tmp_path)
    feedback = error_feedback(["name 'nope' is not defined"])
    files = context_header(text, len(text), s, estimate_tokens, path, ws).files
    assert [p for p, _ in files] == ["models.py"] and "class Model:" in files[0][1]
    prompt, hole = build_prompt(text, len(text), s, path, ws, feedback=feedback, template=QWEN)
    assert hole is not None and hole.expected.type == "Model"
    head = f"<|repo_name|>{tmp_path.name}\n" + "".join(
        f"<|file_sep|>{p}\n{t}" for p, t in files) + "<|file_sep|>app.py\n" + feedback
    line = text.rindex("\n") + 1
    assert prompt == head + PRE + text[:line] + SUF + MID + "    return"
    assert OPEN not in prompt and CLOSE not in prompt
    # A file in a package is named by its path in the workspace.
    (tmp_path / "pkg").mkdir()
    nested = build_prompt(text, len(text), s, str(tmp_path / "pkg" / "app.py"), ws,
                          template=QWEN)[0]
    assert "<|file_sep|>pkg/app.py\n" + PRE in nested


def test_fim_prompt_deepseek_names_files_in_comments(tmp_path) -> None:
    """DeepSeek-Coder has no repository tokens: each file under a `# path` line."""
    text, path, ws, s = _hole_files(tmp_path)
    files = context_header(text, len(text), s, estimate_tokens, path, ws).files
    prompt, _ = build_prompt(text, len(text), s, path, ws, template=TEMPLATES["deepseek"])
    line = text.rindex("\n") + 1
    assert prompt == ("".join(f"# {p}\n{t}" for p, t in files) + "# app.py\n"
                      + "<｜fim▁begin｜>" + text[:line] + "<｜fim▁hole｜>" + "<｜fim▁end｜>"
                      + "    return")
    assert prompt.startswith(
        "# models.py\n@dataclass\nclass Model:\n    count: int = 0\n# app.py\n")


def down_engine(**extra: object) -> RemoteEngine:
    """An engine on an endpoint nobody listens on (load only warns)."""
    return RemoteEngine.load(settings(f"http://127.0.0.1:{free_port()}", request_retries=0,
                                      **extra))


def test_fim_template_from_the_model_id_and_its_stops_in_the_body() -> None:
    engine = down_engine(model="Qwen/Qwen2.5-Coder-7B")
    try:
        assert engine.fim is QWEN
        assert engine.capabilities()["fim"] == "available (qwen template, from the model id)"
        body = engine._body("p", 1, 8, 0.0)
        assert body["stop"] == list(QWEN.stops) and "<|endoftext|>" in body["stop"]
        assert body["cache_prompt"] is True and "skip_special_tokens" not in body
        engine.flavour = "vllm"  # vLLM matches stops in the text: special tokens must be in it
        body = engine._body("p", 1, 8, 0.0)
        assert body["skip_special_tokens"] is False and "cache_prompt" not in body
    finally:
        engine.close()
    engine = down_engine(model="my-finetune", fim="starcoder")
    try:
        assert engine.fim is TEMPLATES["starcoder"]
        assert engine.capabilities()["fim"] == (
            "available (starcoder template, from the setting fim)")
    finally:
        engine.close()
    engine = down_engine()  # the model is not known yet
    try:
        assert engine.fim is None and "stop" not in engine._body("p", 1, 8, 0.0)
        assert engine.capabilities()["fim"].startswith("unavailable until the endpoint")
    finally:
        engine.close()


def test_fim_off_gives_the_prefix_only_prompt(tmp_path) -> None:
    engine = down_engine(model="Qwen/Qwen2.5-Coder-7B", fim="off")
    try:
        assert engine.fim is None and "stop" not in engine._body("p", 1, 8, 0.0)
        assert engine.capabilities()["fim"].startswith("off")
    finally:
        engine.close()
    text, path, ws, s = _hole_files(tmp_path)
    assert build_prompt(text, len(text), s, path, ws, template=None)[0] == build_prompt(
        text, len(text), s, path, ws)[0]
    assert build_prompt(text, len(text), s, path, ws)[0].endswith(CLOSE + "\n\n" + text)


def test_bad_fim_setting_is_a_load_error() -> None:
    with pytest.raises(ModelError, match="setting fim: 'bogus' is not one of auto, on, off, qwen"):
        RemoteEngine.load(settings("http://127.0.0.1:9", fim="bogus"))


def test_fim_request_through_a_mock_endpoint() -> None:
    """The whole request path without a model: the served id picks the template, the body
    carries the FIM prompt and the stops, and the draft loses the blanks the prompt left out."""
    bodies: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [
                {"id": "Qwen/Qwen2.5-Coder-7B", "owned_by": "vllm"}]})
        bodies.append(json.loads(request.content))
        chunks = ["    total", " = sum(values)\n", "    count = len(values)\n"]
        events = [{"choices": [{"index": 0, "text": c, "finish_reason": None}]} for c in chunks]
        events.append({"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})

    engine = RemoteEngine(settings("http://mock:8000"))
    try:
        async def mock_client() -> httpx.AsyncClient:
            await engine._client.aclose()
            return httpx.AsyncClient(base_url=engine.base, transport=httpx.MockTransport(handler))

        engine._client = engine._run(mock_client(), 5.0)
        assert engine.fim is None
        engine.resolve_model()
        assert engine.fim is QWEN and engine.flavour == "vllm"
        text = MEAN + MEAN_SUFFIX
        result = engine.complete(CompletionRequest(text=text, offset=len(MEAN)))
        body = bodies[-1]
        assert body["prompt"] == build_prompt(text, len(MEAN), engine.settings,
                                              template=QWEN)[0]
        assert body["prompt"].endswith(SUF + MEAN_SUFFIX + MID)
        assert body["stop"] == list(QWEN.stops) and body["skip_special_tokens"] is False
        assert [item.text for item in result.items] == ["total = sum(values)\n    count = "
                                                        "len(values)"]
    finally:
        engine.close()


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
    assert caps["fim"].startswith("unavailable: the model id"), caps  # SmolLM2: no FIM tokens


@pytest.mark.slow
def test_fim_completion_through_the_server(qwen_server: LlamaServer) -> None:
    """Qwen2.5-Coder-0.5B fills a middle that only the suffix explains: `return total / count`
    follows the cursor, so the right middle computes both (without the suffix the model
    returns `sum(values) / len(values)` at once). Greedy: drafts=1, temperature 0."""
    # The server reads the special tokens spelled out in the prompt as special tokens.
    reply = httpx.post(f"{qwen_server.url}/v1/completions", timeout=TIMEOUT, json={
        "prompt": PRE + SUF + MID, "max_tokens": 1, "temperature": 0.0}).json()
    assert reply["usage"]["prompt_tokens"] == 3, reply
    engine = RemoteEngine.load(settings(qwen_server.url, error_rounds=0))
    try:
        assert "qwen2.5-coder" in (engine.model_name or "")  # the id is the GGUF's path
        assert engine.fim is QWEN, engine.capabilities()["fim"]
        text = MEAN + MEAN_SUFFIX
        result = engine.complete(CompletionRequest(text=text, offset=len(MEAN), doc_id="m"))
        assert result.items, result.rejected
        middle = result.items[0].text
        print("fim suggestion:", repr(middle), result.timings_ms)
        tree = ast.parse(MEAN + middle + MEAN_SUFFIX)  # spliced, it is valid Python
        stored = {node.id for node in ast.walk(tree)
                  if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
        assert {"total", "count"} <= stored, middle  # the names only the suffix needs
        read = {node.id for node in ast.walk(ast.parse(textwrap.dedent("    " + middle)))
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
        assert "values" in read, middle  # computed from the argument (never executed here)
        # Typing on the line only appends to the prompt: the server's cache holds the rest.
        typed = MEAN + "total" + MEAN_SUFFIX
        engine.complete(CompletionRequest(text=typed, offset=len(MEAN) + 5, doc_id="m"))
        remaining = re.findall(r"prefix-match hit, remaining (\d+) prompt", qwen_server.log())
        assert remaining and int(remaining[-1]) <= 3, qwen_server.log()[-800:]
    finally:
        engine.close()


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
