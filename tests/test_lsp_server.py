"""The language server against a fake engine (tests/data/fake_server.py): protocol behaviour only.

The fake engine's suggestion is JSON describing the request it got (cursor offset, formatting
options, max_new_tokens, model), so these tests check what the server hands to the engine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import queue
import re
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcRequestCancelled
from pytest_lsp import LanguageClient, client_capabilities

from holefill.lsp_server.documents import cursor_at, position_at, units, word_before
from holefill.lsp_server.transport import is_loopback, parse_tcp

CODE = "import os\n\n\ndef main():\n    path = os.pa\n"
URI = "file:///tmp/holefill-tests/example.py"
DATA = Path(__file__).parent / "data"
UTF16, UTF8 = types.PositionEncodingKind.Utf16, types.PositionEncodingKind.Utf8
INLINE = types.TEXT_DOCUMENT_INLINE_COMPLETION


# --- helpers ------------------------------------------------------------------------------------


async def inline(
    client: LanguageClient, line: int, character: int, uri: str = URI
) -> list[types.InlineCompletionItem]:
    params = types.InlineCompletionParams(
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
    )
    result = await asyncio.wait_for(client.text_document_inline_completion_async(params), 30)
    if result is None:
        return []
    return list(result.items if isinstance(result, types.InlineCompletionList) else result)


async def complete(
    client: LanguageClient, line: int, character: int, uri: str = URI
) -> list[types.CompletionItem]:
    params = types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
    )
    result = await asyncio.wait_for(client.text_document_completion_async(params), 30)
    if result is None:
        return []
    return list(result.items if isinstance(result, types.CompletionList) else result)


def request_seen(item: types.InlineCompletionItem | types.CompletionItem) -> dict[str, Any]:
    """What the fake engine was asked (its suggestion is that, as JSON)."""
    text = item.insert_text
    assert isinstance(text, str)
    return json.loads(text)


async def events(client: LanguageClient, kind: str | None = None) -> list[dict[str, Any]]:
    seen = await asyncio.wait_for(client.protocol.send_request_async("fake/events", {}), 10)
    return [e for e in seen if kind is None or e["event"] == kind]


def configure(client: LanguageClient, settings: Any) -> None:
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=settings))


def send_raw(client: LanguageClient, body: bytes) -> None:
    """Write one message with an arbitrary body straight to the server's stdin."""
    assert client._server is not None and client._server.stdin is not None
    client._server.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)


# --- positions and addresses (no server) ---------------------------------------------------------


def test_utf16_columns_map_to_characters() -> None:
    text = "s = '😀é' + x\nnext\n"
    # UTF-16: the emoji is two code units; UTF-8: four bytes, é two.
    at_x = text.index("x")
    assert cursor_at(text, types.Position(0, 12), UTF16).offset == at_x
    assert cursor_at(text, types.Position(0, 15), UTF8).offset == at_x
    assert cursor_at(text, types.Position(0, 11), types.PositionEncodingKind.Utf32).offset == at_x
    cursor = cursor_at(text, types.Position(0, 12), UTF16)
    assert position_at(text, cursor, cursor.column, UTF16) == types.Position(0, 12)
    assert units("😀", UTF16) == 2 and units("😀", UTF8) == 4


def test_positions_past_the_end_are_clamped() -> None:
    text = "ab\r\ncd\rlast"
    assert cursor_at(text, types.Position(0, 99), UTF16).offset == 2  # end of line 0
    assert cursor_at(text, types.Position(1, 1), UTF16).offset == 5  # "\r\n" is one line end
    assert cursor_at(text, types.Position(2, 4), UTF16).offset == len(text)
    past = cursor_at(text, types.Position(40, 3), UTF16)
    assert (past.offset, past.line, past.column) == (len(text), 2, 4)
    assert cursor_at("", types.Position(5, 5), UTF16).offset == 0
    # Only \n, \r\n and \r end lines (not form feed or U+2028, which str.splitlines splits at).
    assert cursor_at("a\x0cb\u2028c\nz", types.Position(1, 0), UTF16).offset == 6


def test_word_before_cursor() -> None:
    text = "x = os.pat"
    assert word_before(text, cursor_at(text, types.Position(0, 10), UTF16)) == "pat"
    assert word_before(text, cursor_at(text, types.Position(0, 7), UTF16)) == ""


def test_tcp_addresses() -> None:
    assert parse_tcp("2087") == ("127.0.0.1", 2087)
    assert parse_tcp(":2087") == ("127.0.0.1", 2087)
    assert parse_tcp("0.0.0.0:2087") == ("0.0.0.0", 2087)
    assert parse_tcp("[::1]:2087") == ("::1", 2087)
    for bad in ("host:port", "127.0.0.1:70000", ""):
        with pytest.raises(ValueError):
            parse_tcp(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_requests_are_real_completion_requests() -> None:
    """The fake server builds plain namespaces; the real CompletionRequest takes the same fields."""
    from pygls.workspace import TextDocument

    from holefill.completion.engine import CompletionRequest
    from holefill.config import Settings
    from holefill.lsp_server import features
    from holefill.lsp_server.server import create_server

    ls = create_server(Settings(max_new_tokens=11))
    text = "x = 1\nx"
    target = features.Target(
        TextDocument(URI, source=text), text, cursor_at(text, types.Position(1, 1), UTF16), UTF16
    )
    request = features._request(ls, target, {"tabSize": 2, "insertSpaces": True})
    assert isinstance(request, CompletionRequest)
    assert (request.offset, request.doc_id, request.path) == (
        7,
        URI,
        "/tmp/holefill-tests/example.py",
    )
    assert (request.max_new_tokens, request.tab_size, request.insert_spaces) == (11, 2, True)
    bad = features._request(ls, target, {"tabSize": True, "insertSpaces": "yes"})
    assert (bad.tab_size, bad.insert_spaces) == (None, None)


# --- capabilities and the two kinds of client ----------------------------------------------------


async def test_inline_client_gets_inline_items_and_plain_jedi_completion(lsp) -> None:
    client = await lsp.start()
    init = lsp.init_results[client]
    assert init.capabilities.inline_completion_provider is not None
    sync = init.capabilities.text_document_sync
    assert isinstance(sync, types.TextDocumentSyncOptions)
    assert sync.change == types.TextDocumentSyncKind.Incremental
    assert (await lsp.wait_model(client)).startswith("ready")

    lsp.open(client, URI, CODE)
    items = await inline(client, 4, 16)
    assert len(items) == 1
    seen = request_seen(items[0])
    assert seen["offset"] == CODE.index("os.pa") + 5
    assert seen["path"] == "/tmp/holefill-tests/example.py"
    assert items[0].range == types.Range(types.Position(4, 16), types.Position(4, 16))

    completion = await complete(client, 4, 16)
    labels = [item.label for item in completion]
    assert "path" in labels  # jedi
    assert all(item.sort_text != "0" for item in completion)  # no model item for inline clients


async def test_completion_only_client_gets_model_item_first_then_jedi(lsp) -> None:
    client = await lsp.start(capabilities=lsp.completion_client)
    await lsp.wait_until(lambda: any("model ready" in m.message for m in client.log_messages), 30)
    assert client.progress_reports == {}  # the client has no work-done progress: just logs

    lsp.open(client, URI, CODE)
    completion = await complete(client, 4, 16)
    model, *rest = completion
    assert model.sort_text == "0" and model.kind == types.CompletionItemKind.Text
    assert request_seen(model)["offset"] == CODE.index("os.pa") + 5
    # The edit replaces the identifier being typed with itself plus the suggestion.
    assert model.text_edit is not None and model.text_edit.new_text == "pa" + model.insert_text
    assert model.text_edit.range == types.Range(types.Position(4, 14), types.Position(4, 16))
    assert "path" in [item.label for item in rest]
    assert all(item.sort_text > "0" for item in rest)
    # Inline completion still works when asked directly.
    assert len(await inline(client, 4, 16)) == 1


async def test_neovim_capabilities_negotiate_utf8(lsp) -> None:
    client = await lsp.start(capabilities=client_capabilities("neovim@v0.11.0"))
    assert (await lsp.wait_model(client)).startswith("ready")
    text = "s = 'é😀' + os\n"
    lsp.open(client, URI, text)
    completion = await complete(client, 0, len("s = 'é😀' + os".encode()))
    assert request_seen(completion[0])["offset"] == len("s = 'é😀' + os")


async def test_incremental_changes_are_applied(lsp) -> None:
    client = await lsp.start()
    await lsp.wait_model(client)
    lsp.open(client, URI, "a = 1\n")
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(0, 4), types.Position(0, 5)), text="😀 + b"
                )
            ],
        )
    )
    items = await inline(client, 0, 10)  # after "b": 4 + 2 (UTF-16 emoji) + 4
    assert request_seen(items[0])["offset"] == len("a = 😀 + b")
    assert (await events(client, "complete"))[-1]["length"] == len("a = 😀 + b\n")
    # The engine's cache got the edit (character offsets), and idle-time maintenance follows.
    assert [e["edit"] for e in await events(client, "edit")] == [[4, 5, "😀 + b"]]
    await lsp.wait_until_async(lambda: events(client, "maintain"), 5, bool)


# --- cancellation -----------------------------------------------------------------------------


async def test_newer_request_cancels_older_one(lsp) -> None:
    client = await lsp.start(options={"maxNewTokens": 400})  # 8 s per generation
    await lsp.wait_model(client)
    lsp.open(client, URI, CODE)
    started = time.monotonic()
    older = asyncio.ensure_future(inline(client, 4, 16))
    await asyncio.sleep(0.3)
    newer_task = asyncio.ensure_future(inline(client, 4, 15))
    assert await asyncio.wait_for(older, 5) == []  # stopped between tokens, empty result
    assert time.monotonic() - started < 4
    first = (await events(client, "complete"))[0]
    assert first["cancelled"] and first["tokens"] < 100
    configure(client, {"maxNewTokens": 3})
    third = await asyncio.wait_for(inline(client, 4, 16), 5)  # supersedes the second in turn
    assert request_seen(third[0])["max_new_tokens"] == 3
    assert await asyncio.wait_for(newer_task, 5) == []


async def test_cancel_request_stops_generation(lsp) -> None:
    client = await lsp.start(options={"maxNewTokens": 400})
    await lsp.wait_model(client)
    lsp.open(client, URI, CODE)
    params = types.InlineCompletionParams(
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
        text_document=types.TextDocumentIdentifier(uri=URI),
        position=types.Position(line=4, character=16),
    )
    pending = asyncio.ensure_future(
        client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="cancel-me"
        )
    )
    await asyncio.sleep(0.3)
    client.cancel_request(types.CancelParams(id="cancel-me"))
    with pytest.raises(JsonRpcRequestCancelled):
        await asyncio.wait_for(pending, 5)
    # The engine saw its cancelled() flag and stopped between tokens.
    first = await lsp.wait_until_async(
        lambda: events(client, "complete"), 5, lambda e: e and e[0].get("cancelled")
    )
    assert first[0]["tokens"] < 100


# --- model loading ------------------------------------------------------------------------------


async def test_requests_during_load_get_empty_results(lsp) -> None:
    client = await lsp.start(options={"model": "slow"})
    lsp.open(client, URI, CODE)
    assert await inline(client, 4, 16) == []
    completion = await complete(client, 4, 16)
    assert completion and all(item.sort_text != "0" for item in completion)  # jedi only
    assert (await lsp.wait_model(client)).startswith("ready")
    assert len(await inline(client, 4, 16)) == 1


async def test_completion_list_during_load_asks_the_client_to_come_back(lsp) -> None:
    """Completion-only clients cache complete lists per word: while the model loads, the list
    is marked incomplete so that the model's item can appear once it is ready."""
    client = await lsp.start(capabilities=lsp.completion_client, options={"model": "slow"})
    lsp.open(client, URI, CODE)
    params = types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=URI),
        position=types.Position(line=4, character=16),
    )
    early = await asyncio.wait_for(client.text_document_completion_async(params), 30)
    assert early.is_incomplete and all(item.sort_text != "0" for item in early.items)
    for _ in range(60):  # this client has no progress support: ask until the model is ready
        ready = await asyncio.wait_for(client.text_document_completion_async(params), 30)
        if ready.items and ready.items[0].sort_text == "0":
            break
        await asyncio.sleep(0.5)
    assert ready.items[0].sort_text == "0"


async def test_load_failure_is_shown_once_and_jedi_keeps_working(lsp) -> None:
    client = await lsp.start(capabilities=lsp.completion_client, options={"model": "broken"})
    await lsp.wait_until(lambda: client.messages, 30, "window/showMessage")
    lsp.open(client, URI, CODE)
    for _ in range(3):
        assert await inline(client, 4, 16) == []
        completion = await complete(client, 4, 16)
        assert "path" in [item.label for item in completion]
        assert all(item.sort_text != "0" for item in completion)
    errors = [m for m in client.messages if m.type == types.MessageType.Error]
    assert len(errors) == 1 and "broken" in errors[0].message and "not found" in errors[0].message


# --- configuration ------------------------------------------------------------------------------


async def test_initialization_options_and_configuration_changes(lsp) -> None:
    client = await lsp.start(options={"model": "fake-a", "maxNewTokens": 5})
    assert "fake:fake-a" in await lsp.wait_model(client)
    lsp.open(client, URI, CODE)
    seen = request_seen((await inline(client, 4, 16))[0])
    assert (seen["model"], seen["max_new_tokens"]) == ("fake-a", 5)

    configure(client, {"holefill": {"max_new_tokens": 7}})  # server-side: no reload
    await lsp.wait_until(lambda: any("max_new_tokens" in m.message for m in client.log_messages), 5)
    assert request_seen((await inline(client, 4, 16))[0])["max_new_tokens"] == 7

    configure(client, {"model": "fake-b", "device": "cpu"})  # top level; reloads
    assert "fake:fake-b" in await lsp.wait_model(client, count=2)
    assert request_seen((await inline(client, 4, 16))[0])["model"] == "fake-b"
    loads = await events(client, "load")
    assert [e["model"] for e in loads] == ["fake-a", "fake-b"] and loads[1]["device"] == "cpu"

    configure(client, {"maxNewTokens": "many"})  # a bad value: a warning, settings unchanged
    await lsp.wait_until(lambda: client.messages, 5)
    assert client.messages[-1].type == types.MessageType.Warning
    assert request_seen((await inline(client, 4, 16))[0])["max_new_tokens"] == 7


async def test_configuration_pulled_when_the_client_sends_none(lsp) -> None:
    client = await lsp.start()
    await lsp.wait_model(client)
    client.set_configuration({"maxNewTokens": 9}, section="holefill")
    configure(client, None)
    lsp.open(client, URI, CODE)
    await lsp.wait_until(lambda: any("max_new_tokens" in m.message for m in client.log_messages), 5)
    assert request_seen((await inline(client, 4, 16))[0])["max_new_tokens"] == 9


async def test_formatting_options_reach_the_engine(lsp) -> None:
    client = await lsp.start()
    await lsp.wait_model(client)
    lsp.open(client, URI, CODE)
    message = {
        "jsonrpc": "2.0",
        "id": "formatting-1",
        "method": types.TEXT_DOCUMENT_INLINE_COMPLETION,
        "params": {
            "textDocument": {"uri": URI},
            "position": {"line": 4, "character": 16},
            "context": {"triggerKind": 1},
            "formattingOptions": {"tabSize": 2, "insertSpaces": False},
        },
    }
    # The typed client would drop the non-standard field: send the message as it is.
    answer: concurrent.futures.Future[Any] = concurrent.futures.Future()
    client.protocol._request_futures["formatting-1"] = answer
    send_raw(client, json.dumps(message).encode())
    result = await asyncio.wait_for(asyncio.wrap_future(answer), 5)
    seen = json.loads(result.items[0].insertText)  # pygls gives untyped results as namedtuples
    assert (seen["tab_size"], seen["insert_spaces"]) == (2, False)
    seen = request_seen((await inline(client, 4, 16))[0])  # none sent: none used
    assert (seen["tab_size"], seen["insert_spaces"]) == (None, None)


# --- bad input ------------------------------------------------------------------------------------


async def test_bad_input_gets_empty_results_and_the_server_keeps_serving(lsp) -> None:
    client = await lsp.start()
    await lsp.wait_model(client)
    # A document that was never opened.
    assert await inline(client, 0, 0, uri="file:///tmp/never-opened.py") == []
    assert await complete(client, 0, 0, uri="file:///tmp/never-opened.py") == []
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(
                uri="file:///tmp/nope.py", version=2
            ),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="x = 1")],
        )
    )
    # Positions past the end of a line and of the document are clamped.
    lsp.open(client, URI, CODE)
    assert request_seen((await inline(client, 4, 500))[0])["offset"] == CODE.index("os.pa") + 5
    assert request_seen((await inline(client, 90, 3))[0])["offset"] == len(CODE)
    # The engine failing on an input gives an empty result.
    lsp.open(client, "file:///tmp/raise.py", "RAISE = 1\n")
    assert await inline(client, 0, 5, uri="file:///tmp/raise.py") == []
    # Bytes that are not UTF-8 are replaced; the document opens and completes.
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {
                "textDocument": {
                    "uri": "file:///tmp/latin1.py",
                    "languageId": "python",
                    "version": 1,
                    "text": "name = 'XX'\n",
                }
            },
        }
    ).encode()
    send_raw(client, body.replace(b"XX", "café".encode("latin-1")))
    items = await inline(client, 1, 0, uri="file:///tmp/latin1.py")
    assert request_seen(items[0])["offset"] == len("name = 'caf\ufffd'\n")
    assert (await events(client, "complete"))[-1]["replacement"]
    # Lone surrogates (valid JSON escapes, invalid Unicode).
    lsp.open(client, "file:///tmp/surrogate.py", "s = '\ud800'\nx")
    assert len(await inline(client, 1, 1, uri="file:///tmp/surrogate.py")) == 1
    await complete(client, 1, 1, uri="file:///tmp/surrogate.py")
    # Still serving.
    assert len(await inline(client, 4, 16)) == 1


async def test_malformed_requests_get_error_answers(lsp) -> None:
    """The two requests of issue 17 that were never answered, and their relatives."""
    client = await lsp.start()
    await lsp.wait_model(client)
    lsp.open(client, URI, CODE)

    async def error(method: str, params: Any) -> JsonRpcException:
        # Sent as it is: the typed client would not send such params.
        msg_id = f"malformed-{len(client.protocol._request_futures)}-{time.monotonic()}"
        answer: concurrent.futures.Future[Any] = concurrent.futures.Future()
        client.protocol._request_futures[msg_id] = answer
        message = {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}
        send_raw(client, json.dumps(message).encode())
        with pytest.raises(JsonRpcException) as info:
            await asyncio.wait_for(asyncio.wrap_future(answer), 10)
        return info.value

    bad = await error(INLINE, {"textDocument": {}, "position": "bad"})
    assert bad.code == -32602 and "$.params.position.line" in bad.message
    assert "$.params.textDocument.uri" in bad.message
    negative = {"line": -1, "character": 0}
    actions = {"textDocument": {"uri": URI}, "range": {"start": negative, "end": negative},
               "context": {"diagnostics": []}}  # fmt: skip
    assert (await error("textDocument/codeAction", actions)).code == -32602
    assert (await error("no/such/method", {})).code == -32601
    assert (await error("textDocument/didSave", {"textDocument": {"uri": URI}})).code == -32600
    # A malformed notification is dropped (and logged); the document is as it was.
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text="x")]))  # fmt: skip
    send_raw(client, json.dumps({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
        "textDocument": {"uri": URI, "version": 3},
        "contentChanges": [{"text": "y"}, {"text": None}]}}).encode())  # fmt: skip
    assert request_seen((await inline(client, 0, 5))[0])["offset"] == 1  # "x", clamped
    assert (await events(client, "edit"))[-1]["edit"] == [0, len(CODE), "x"]


async def test_five_megabyte_file(lsp) -> None:
    client = await lsp.start(capabilities=lsp.completion_client)
    await lsp.wait_until(lambda: any("model ready" in m.message for m in client.log_messages), 30)
    line = "value_{0} = compute(value_{0}, 'some text to make the line long enough')\n"
    text = "".join(line.format(i) for i in range(70_000))
    assert len(text.encode()) > 5_000_000
    lsp.open(client, "file:///tmp/big.py", text)
    started = time.monotonic()
    completion = await complete(client, 70_000, 0, uri="file:///tmp/big.py")
    assert request_seen(completion[0])["offset"] == len(text)
    middle = await inline(client, 35_000, 5, uri="file:///tmp/big.py")
    assert request_seen(middle[0])["offset"] == sum(len(line.format(i)) for i in range(35_000)) + 5
    assert time.monotonic() - started < 20
    assert len(await inline(client, 4, 16, uri="file:///tmp/big.py")) == 1


async def test_close_forgets_the_document(lsp) -> None:
    client = await lsp.start()
    await lsp.wait_model(client)
    lsp.open(client, URI, CODE)
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=URI))
    )
    await lsp.wait_until_async(lambda: events(client, "forget"), 5, bool)
    assert await inline(client, 4, 16) == []


async def test_logs_hold_no_source_text(lsp, capfd) -> None:
    secret = "SECRET_IDENTIFIER_4711"
    client = await lsp.start(options={"logLevel": "debug"})
    await lsp.wait_model(client)
    lsp.open(client, URI, f"{secret} = 1\n{secret}")
    await inline(client, 1, 5)
    await complete(client, 1, 5)
    await inline(client, 1, 5, uri="file:///tmp/not-open.py")
    await asyncio.sleep(0.2)
    messages = " ".join(m.message for m in client.log_messages)
    assert "ready" in messages
    err = capfd.readouterr().err
    assert "pygls" in err  # debug logging was on
    assert secret not in err and secret not in messages


# --- TCP ------------------------------------------------------------------------------------------


def _frame(message: dict[str, Any], body: bytes | None = None) -> bytes:
    body = body if body is not None else json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _answer(stream: Any, msg_id: int) -> dict[str, Any]:
    """Read messages until the response to `msg_id`."""
    while True:
        length = 0
        while (line := stream.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        assert length, "connection closed"
        message = json.loads(stream.read(length))
        if message.get("id") == msg_id and "method" not in message:
            return message


def test_tcp_serves_one_client_on_loopback(lsp) -> None:
    env = {**os.environ, "PYTHONPATH": str(DATA.parents[1])}
    server = subprocess.Popen(
        [*lsp.fake_server, "--tcp", "127.0.0.1:0"], env=env, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in server.stderr], daemon=True).start()
    try:
        while "listening on" not in (line := lines.get(timeout=30)):
            pass
        host, port = re.search(r"\('([\d.]+)', (\d+)\)", line).groups()  # type: ignore[union-attr]
        assert host == "127.0.0.1"
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            stream = sock.makefile("rb")
            sock.sendall(_frame({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                 "params": {"capabilities": {}, "processId": None}}))  # fmt: skip
            assert "inlineCompletionProvider" in _answer(stream, 1)["result"]["capabilities"]
            sock.sendall(_frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
            did_open = {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
                "textDocument": {"uri": URI, "languageId": "python", "version": 1,
                                 "text": "# XX\nimport os\nos.pa"}}}  # fmt: skip
            raw = json.dumps(did_open).encode().replace(b"XX", b"caf\xe9")  # not UTF-8
            sock.sendall(_frame({}, raw))
            sock.sendall(_frame({"jsonrpc": "2.0", "id": 2, "method": "textDocument/completion",
                "params": {"textDocument": {"uri": URI}, "position": {"line": 2, "character": 5}}}))  # fmt: skip
            labels = [item["label"] for item in _answer(stream, 2)["result"]["items"]]
            assert "path" in labels
            sock.sendall(_frame({"jsonrpc": "2.0", "id": 3, "method": "shutdown"}))
            assert _answer(stream, 3)["result"] is None
            sock.sendall(_frame({"jsonrpc": "2.0", "method": "exit"}))
            assert server.wait(timeout=15) == 0
    finally:
        if server.poll() is None:
            server.kill()


# --- merge conflicts ------------------------------------------------------------------------------

CONFLICTED = """def f():
<<<<<<< ours
    return 1
||||||| base
    return 0
=======
    return 0
>>>>>>> theirs
"""


async def test_merge_code_actions_from_a_stub_resolver() -> None:
    """The LSP side of conflict resolution, independent of the classifier's state."""
    from types import SimpleNamespace

    from pygls.workspace import Workspace

    from holefill.lsp_server import merge_hooks

    merge = pytest.importorskip("holefill.merge.lsp")
    workspace = Workspace(None)
    uri = "file:///tmp/holefill-tests/conflicted.py"
    text = CONFLICTED.rstrip("\n")  # the end marker is the last line, without a line end
    workspace.put_text_document(types.TextDocumentItem(uri, "python", 1, text))
    published: list[types.PublishDiagnosticsParams] = []
    stub = SimpleNamespace(
        conflict_hunks=merge.conflict_hunks,
        ConflictError=merge.ConflictError,
        action_title=merge.action_title,
        resolve_hunk_edit=lambda text, index, path: ("    return 1\n", "OURS", 0.9, "classifier"),
        resolve_all=lambda text, path: "def f():\n    return 1\n",
    )
    ls = SimpleNamespace(
        workspace=workspace, merge=stub, conflicted=set(),
        text_document_publish_diagnostics=published.append,
    )  # fmt: skip
    merge_hooks.publish_diagnostics(ls, uri)
    (diagnostic,) = published[-1].diagnostics
    end = types.Position(7, len(">>>>>>> theirs"))  # the document's end
    assert diagnostic.range == types.Range(types.Position(1, 0), end)
    params = types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(types.Position(3, 0), types.Position(3, 0)),
        context=types.CodeActionContext(diagnostics=[diagnostic]),
    )
    one, everything = await merge_hooks.code_actions(ls, params)
    assert one.title == "Resolve conflict (classifier: OURS, p=0.90)"
    assert one.edit.changes[uri] == [types.TextEdit(diagnostic.range, "    return 1\n")]
    assert everything.title == "Resolve all conflicts"
    whole = types.Range(types.Position(0, 0), end)
    assert everything.edit.changes[uri] == [types.TextEdit(whole, "def f():\n    return 1\n")]
    # Outside the block only "resolve all" is offered; without conflicts, nothing.
    params.range = types.Range(types.Position(0, 0), types.Position(0, 3))
    assert [a.title for a in await merge_hooks.code_actions(ls, params)] == [
        "Resolve all conflicts"
    ]
    workspace.put_text_document(types.TextDocumentItem(uri, "python", 2, "x = 1\n"))
    merge_hooks.publish_diagnostics(ls, uri)
    assert published[-1].diagnostics == [] and await merge_hooks.code_actions(ls, params) == []


async def test_merge_conflicts_get_diagnostics_and_code_actions(lsp) -> None:
    pytest.importorskip("holefill.merge.lsp")
    client = await lsp.start()
    assert lsp.init_results[client].capabilities.code_action_provider
    uri = "file:///tmp/holefill-tests/conflicted.py"
    lsp.open(client, uri, CONFLICTED)
    await lsp.wait_until(lambda: client.diagnostics.get(uri), 10, "conflict diagnostics")
    (diagnostic,) = client.diagnostics[uri]
    assert diagnostic.range == types.Range(types.Position(1, 0), types.Position(8, 0))
    assert "ours" in diagnostic.message and "theirs" in diagnostic.message

    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(types.Position(2, 4), types.Position(2, 4)),
            context=types.CodeActionContext(diagnostics=[diagnostic]),
        )
    )
    assert actions is not None
    titles = [action.title for action in actions]
    # theirs equals the base, so the structured stage takes ours without the classifier.
    assert titles[0] == "Resolve conflict (structured: ours-only, p=0.92)"
    assert titles[-1] == "Resolve all conflicts"
    (hunk_edit,) = actions[0].edit.changes[uri]
    assert hunk_edit.range == diagnostic.range and hunk_edit.new_text == "    return 1\n"
    (all_edit,) = actions[-1].edit.changes[uri]
    assert all_edit.new_text == "def f():\n    return 1\n"

    # Resolving the conflict clears the diagnostics; elsewhere there are no actions.
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="x = 1\n")],
        )
    )
    # (pytest-lsp stores the published list as a tuple)
    await lsp.wait_until(
        lambda: client.diagnostics.get(uri) is not None and len(client.diagnostics[uri]) == 0,
        10,
        "cleared diagnostics",
    )
    no_actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(types.Position(0, 0), types.Position(0, 0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert not no_actions


# --- ChatLSP methods ------------------------------------------------------------------------------

HOLE_CODE = """from dataclasses import dataclass


@dataclass
class Item:
    name: str
    price: float


def cheapest(items: list[Item]) -> Item:
    return \n"""


def plain(value: object) -> object:
    """pygls hands back untyped results as namedtuples: make them dicts and lists."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


async def test_chatlsp_methods_give_the_typed_hole_context(lsp) -> None:
    client = await lsp.start()
    uri = "file:///tmp/holefill-tests/hole.py"
    lsp.open(client, uri, HOLE_CODE)
    position = {"textDocument": {"uri": uri}, "position": {"line": 10, "character": 11}}

    async def call(method: str, params: dict) -> object:
        result = await asyncio.wait_for(client.protocol.send_request_async(method, params), 60)
        return plain(result)

    expected = await call("chatlsp/expectedType", position)
    assert expected["type"] == "Item" and expected["source"] == "return"
    types_ = await call("chatlsp/relevantTypes", position)
    assert [t["name"] for t in types_] == ["Item"] and "price: float" in types_[0]["text"]
    await call("chatlsp/relevantHeaders", position)
    report = await call("chatlsp/errorReport", {**position, "completion": "undefined_thing"})
    assert any("undefined_thing" in e for e in report["typeErrors"])
    clean = await call("chatlsp/errorReport", {**position, "completion": "items[0]"})
    assert not clean["parseErrors"] and not clean["typeErrors"]
    with pytest.raises(Exception, match="not open"):
        await call("chatlsp/expectedType", {**position, "textDocument": {"uri": "file:///x.py"}})
