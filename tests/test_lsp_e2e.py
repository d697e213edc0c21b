"""End to end: pytest-lsp clients against the real `holefill serve` with the embedded model."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.slow

VECTOR = Path(__file__).parent / "data" / "vector.py"


def document() -> str:
    """vector.py cut after the last "return self.", where the tests put the cursor."""
    text = VECTOR.read_text()
    return text[: text.rindex("return self.") + len("return self.")]


TIMEOUT = 240  # loading and the first prefill on a busy 2-core machine


def end_of(text: str) -> types.Position:
    lines = text.split("\n")
    return types.Position(line=len(lines) - 1, character=len(lines[-1]))


def inline_params(uri: str, position: types.Position) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=position,
    )


async def inline(client: LanguageClient, uri: str, position: types.Position) -> list[str]:
    result = await asyncio.wait_for(
        client.text_document_inline_completion_async(inline_params(uri, position)), TIMEOUT
    )
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    return [item.insert_text for item in items if isinstance(item.insert_text, str)]


async def test_inline_client_gets_a_model_suggestion(lsp) -> None:
    client = await lsp.start(command=lsp.real_server, options={"maxNewTokens": 24})
    ready = await lsp.wait_model(client, timeout=TIMEOUT)
    assert ready.startswith("ready"), ready
    text = document()
    uri = VECTOR.as_uri()
    lsp.open(client, uri, text)
    suggestions = await inline(client, uri, end_of(text))
    assert suggestions and suggestions[0].strip(), suggestions
    print("inline suggestion:", repr(suggestions[0]))

    # A newer request for the same document stops the older one; the newer one answers.
    older = asyncio.ensure_future(inline(client, uri, end_of(text)))
    newer = asyncio.ensure_future(inline(client, uri, end_of(text)))
    assert await older == []
    assert (await newer)[0].strip()


async def test_completion_only_client_gets_model_item_and_jedi_items(lsp) -> None:
    client = await lsp.start(
        command=lsp.real_server,
        capabilities=lsp.completion_client,
        options={"max_new_tokens": 24},
    )
    await lsp.wait_until(
        lambda: any("holefill: model" in m.message for m in client.log_messages),
        TIMEOUT,
        "the model to load",
    )
    assert any("model ready" in m.message for m in client.log_messages)
    text = document()
    uri = VECTOR.as_uri()
    lsp.open(client, uri, text)
    result = await asyncio.wait_for(
        client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=end_of(text)
            )
        ),
        TIMEOUT,
    )
    assert isinstance(result, types.CompletionList)
    model, *jedi = result.items
    assert model.sort_text == "0" and model.insert_text and model.insert_text.strip()
    assert model.text_edit is not None and model.text_edit.new_text.endswith(model.insert_text)
    print("completion item:", repr(model.insert_text))
    labels = {item.label for item in jedi}
    assert {"x", "y", "length", "scale", "dot"} <= labels


async def test_bad_input_with_the_real_engine(lsp) -> None:
    """Unknown document, positions past the end, lone surrogates and bytes that are not UTF-8:
    empty results or suggestions, never an error, and the server keeps serving."""
    client = await lsp.start(command=lsp.real_server, options={"maxNewTokens": 8})
    assert (await lsp.wait_model(client, timeout=TIMEOUT)).startswith("ready")
    assert await inline(client, "file:///tmp/never-opened.py", types.Position(0, 0)) == []
    text = document()
    lsp.open(client, VECTOR.as_uri(), text)
    await inline(client, VECTOR.as_uri(), types.Position(10_000, 10_000))  # clamped to the end
    await inline(client, VECTOR.as_uri(), types.Position(3, 500))  # clamped to the line end
    lsp.open(client, "file:///tmp/surrogate.py", "s = '\ud800'\nname = s.")
    await inline(client, "file:///tmp/surrogate.py", types.Position(1, 9))
    body = (
        b'{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": '
        b'{"uri": "file:///tmp/latin1.py", "languageId": "python", "version": 1, '
        b'"text": "# caf\xe9\\nimport os\\nos."}}}'
    )
    assert client._server is not None and client._server.stdin is not None
    client._server.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await inline(client, "file:///tmp/latin1.py", types.Position(2, 3))
    # Still serving real suggestions.
    assert (await inline(client, VECTOR.as_uri(), end_of(text)))[0].strip()


MEAN_BEFORE = "def mean(values):\n    "
MEAN_AFTER = "\n    return total / count\n\n\nprint(mean([1.0, 2.0, 6.0]))\n"


async def test_the_code_model_fills_the_middle_through_lsp(lsp, code_model) -> None:
    """Qwen2.5-Coder-0.5B with fill-in-the-middle: `return total / count` follows the cursor,
    so the right middle defines both names (a prefix-only model writes `return ...` at once).
    Then typing on the line keeps serving from the document's cache."""
    client = await lsp.start(command=lsp.real_server,
                             options={"model": code_model, "fim": "on", "maxNewTokens": 32,
                                      "drafts": 1})
    ready = await lsp.wait_model(client, timeout=TIMEOUT)
    assert ready.startswith("ready") and "Qwen2.5-Coder" in ready, ready
    uri = "file:///tmp/holefill_mean.py"
    text = MEAN_BEFORE + MEAN_AFTER
    lsp.open(client, uri, text)
    suggestions = await inline(client, uri, types.Position(line=1, character=4))
    assert suggestions, "no suggestion"
    middle = suggestions[0]
    print("fim suggestion:", repr(middle))
    tree = ast.parse(MEAN_BEFORE + middle + MEAN_AFTER)  # it parses where it goes
    stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
              and isinstance(n.ctx, ast.Store)}
    assert {"total", "count"} <= stored, middle  # what only the text after the cursor asks for
    # The user types the first characters of the suggestion: the server still answers with
    # a continuation of what was typed that fits the file.
    typed = middle.split("\n")[0][:5]
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(1, 4), types.Position(1, 4)), text=typed)]))
    again = await inline(client, uri, types.Position(line=1, character=4 + len(typed)))
    assert again, "no suggestion after typing"
    ast.parse(MEAN_BEFORE + typed + again[0] + MEAN_AFTER)
