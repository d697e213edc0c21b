"""LANCE in the server (RESEARCH §5): the workspace's API index, built in the background at
`initialized` with work-done progress and kept current from didChange (debounced), didSave and
didChangeWatchedFiles; the `holefill/searchApi` method; jedi's completion items in our ranking.
Thin: holefill.context.index and holefill.context.api do the work."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.capabilities import get_capability
from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import to_fs_path

from holefill.lsp_server import completions
from holefill.lsp_server.documents import Cursor, open_document, position_at

if TYPE_CHECKING:
    from holefill.context.index import ApiIndex
    from holefill.lsp_server.server import HolefillServer

log = logging.getLogger("holefill.lsp")

SEARCH_API = "holefill/searchApi"
DEBOUNCE_S = 0.3  # didChange re-indexes the file once typing pauses
WAIT_FOR_INDEX_S = 30.0  # a search during the initial build waits this long for it


def index_of(ls: HolefillServer) -> ApiIndex | None:
    return getattr(ls, "api_index", None)


def attach(ls: HolefillServer) -> None:
    """Hand the index to the engine (the signature block and the name constraint use it)."""
    engine, index = ls.host.engine, index_of(ls)
    if engine is not None and index is not None:
        try:
            engine.api_index = index
        except AttributeError:  # an engine without the attribute (remote backends)
            pass


def start_index(ls: HolefillServer) -> None:
    root = ls.root_path
    if not root or not os.path.isdir(root):
        return
    task = asyncio.ensure_future(build_index(ls, root))
    ls.api_build = task
    ls.background.add(task)
    task.add_done_callback(ls.background.discard)


async def build_index(ls: HolefillServer, root: str) -> None:
    from holefill.context.index import ApiIndex

    token = f"holefill/index/{uuid.uuid4().hex[:8]}"
    progress = bool(get_capability(ls.client_capabilities, "window.work_done_progress", False))
    if progress:
        try:
            await ls.work_done_progress.create_async(token)
            ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(
                title="holefill: indexing the workspace", percentage=0, cancellable=False))
        except Exception as exc:
            log.info("work-done progress unavailable (%s)", type(exc).__name__)
            progress = False
    loop = asyncio.get_running_loop()

    def report(done: int, total: int) -> None:  # on the build thread
        if progress:
            loop.call_soon_threadsafe(
                ls.work_done_progress.report, token, types.WorkDoneProgressReport(
                    message=f"{done}/{total} files", percentage=int(100 * done / max(total, 1))))

    try:
        index = await asyncio.to_thread(ApiIndex.build, root, progress=report)
    except Exception as exc:  # no index: completion works without it
        log.error("indexing the workspace failed: %s", type(exc).__name__)
        message = f"failed: {type(exc).__name__}"
    else:
        ls.api_index = index
        attach(ls)
        stats = index.stats
        message = (f"indexed {stats.files} files in {stats.seconds:.1f} s"
                   + (" (truncated)" if stats.truncated else ""))
        log.info("workspace %s", message)
        await register_watchers(ls)
    if progress:
        ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))


async def register_watchers(ls: HolefillServer) -> None:
    """Ask the client for didChangeWatchedFiles on *.py (files changed outside the editor)."""
    if not get_capability(ls.client_capabilities,
                          "workspace.did_change_watched_files.dynamic_registration", False):
        return
    options = types.DidChangeWatchedFilesRegistrationOptions(
        watchers=[types.FileSystemWatcher(glob_pattern="**/*.py")])
    try:
        await ls.client_register_capability_async(types.RegistrationParams(registrations=[
            types.Registration(id=f"holefill-watch-{uuid.uuid4().hex[:8]}",
                               method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                               register_options=options)]))
    except Exception as exc:
        log.info("file watching unavailable (%s)", type(exc).__name__)


def _indexed_path(ls: HolefillServer, uri: str) -> str | None:
    index = index_of(ls)
    if index is None or not uri.startswith("file:"):
        return None
    path = to_fs_path(uri)
    if not path or not path.endswith(".py") or index.root is None:
        return None
    full = os.path.realpath(path)
    return full if full.startswith(index.root + os.sep) else None


def document_changed(ls: HolefillServer, uri: str, now: bool = False) -> None:
    """Re-index an open document from its buffer, after DEBOUNCE_S of quiet (or now)."""
    path = _indexed_path(ls, uri)
    if path is None:
        return
    timers: dict[str, asyncio.TimerHandle] = ls.__dict__.setdefault("api_timers", {})
    if (pending := timers.pop(uri, None)) is not None:
        pending.cancel()

    def update() -> None:
        timers.pop(uri, None)
        doc, index = open_document(ls.workspace, uri), index_of(ls)
        if doc is not None and index is not None:
            index.update_file(path, doc.source)

    if now:
        update()
    else:
        timers[uri] = asyncio.get_running_loop().call_later(DEBOUNCE_S, update)


def watched_files_changed(ls: HolefillServer, params: types.DidChangeWatchedFilesParams) -> None:
    index = index_of(ls)
    if index is None:
        return
    for change in params.changes:
        path = _indexed_path(ls, change.uri)
        if path is None or (change.type != types.FileChangeType.Deleted
                            and open_document(ls.workspace, change.uri) is not None):
            continue  # an open document: its buffer is what counts
        if change.type == types.FileChangeType.Deleted:
            index.remove_file(path)
        else:
            index.update_file(path)


def _query(params: Any) -> tuple[str, int]:
    """params: a query string, ["query"], or {"query": ..., "limit"?: int}."""
    limit: Any = 10
    if isinstance(params, str):
        query = params
    elif isinstance(params, dict):
        query, limit = params.get("query"), params.get("limit", 10)
    elif hasattr(params, "query"):  # pygls hands unknown methods' params over as namedtuples
        query, limit = params.query, getattr(params, "limit", 10)
    elif isinstance(params, (list, tuple)) and params:
        query = params[0]
    else:
        query = None
    if not isinstance(query, str) or not query.strip():
        raise JsonRpcInvalidParams("params must be a non-empty query string (or {query})")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100:
        raise JsonRpcInvalidParams("params.limit must be an integer from 1 to 100")
    return query, limit


async def search_api(ls: HolefillServer, params: Any) -> list[dict]:
    """Ranked workspace APIs for a query: name, qualname, kind, signature, doc, path, uri,
    line (1-based), score."""
    from holefill.context.api import ApiSearch, hit_json

    query, limit = _query(params)
    build = getattr(ls, "api_build", None)
    if index_of(ls) is None and build is not None and not build.done():
        try:
            await asyncio.wait_for(asyncio.shield(build), WAIT_FOR_INDEX_S)
        except asyncio.TimeoutError:
            pass
    index = index_of(ls)
    if index is None:
        return []
    search = getattr(ls, "api_search", None)
    if search is None or search.index is not index:
        search = ls.api_search = ApiSearch(index)
    loop = asyncio.get_running_loop()
    hits = await loop.run_in_executor(ls.jedi_executor, search.search, query, limit)
    return [hit_json(h) for h in hits]


def ranked_jedi_items(index: ApiIndex | None, text: str, cursor: Cursor, path: str | None,
                      root: str | None, encoding: str | None) -> list[types.CompletionItem]:
    """jedi's items, in the LANCE ranking after `recv.` with a workspace receiver (blocking)."""
    items = completions.jedi_items(text, cursor, path, root, encoding)
    if index is None:
        return items
    try:
        from holefill.context import api

        correlation = api.correlate(index, text, cursor.offset, path, root)
    except Exception as exc:  # ranking is optional; jedi's order stays
        log.warning("API ranking failed: %s", type(exc).__name__)
        return items
    if correlation is None:
        return items
    if not items:  # jedi could not infer the receiver: the index's members, ranked
        return index_items(correlation, text, cursor, encoding)
    return completions.order_items(items, api.order_names(correlation, [i.label for i in items]))


_KINDS = {"method": types.CompletionItemKind.Method, "function": types.CompletionItemKind.Function,
          "class": types.CompletionItemKind.Class, "module": types.CompletionItemKind.Module,
          "property": types.CompletionItemKind.Property,
          "attribute": types.CompletionItemKind.Field}


def index_items(correlation: Any, text: str, cursor: Cursor, encoding: str | None
                ) -> list[types.CompletionItem]:
    typed = correlation.site.typed
    start = position_at(text, cursor, max(cursor.column - len(typed), 0), encoding)
    end = position_at(text, cursor, cursor.column, encoding)
    return [
        types.CompletionItem(
            label=sym.name, kind=_KINDS.get(sym.kind, types.CompletionItemKind.Variable),
            detail=sym.signature, sort_text=f"1{i:05d}",
            text_edit=types.TextEdit(types.Range(start, end), sym.name))
        for i, sym in enumerate(correlation.matching()[: completions.JEDI_MAX_ITEMS])
    ]
