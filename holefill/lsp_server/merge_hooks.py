"""Merge conflicts in the editor: a diagnostic per conflict block (on open and change) and code
actions that resolve one block or all of them, from holefill.merge.lsp (plain data, no pygls).
Without that module nothing is registered and the document hooks do nothing."""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Any

from lsprotocol import types
from pygls.uris import to_fs_path

from holefill.lsp_server.documents import end_position, open_document

log = logging.getLogger(__name__)

MARKER = "<" * 7  # every conflict starts with at least seven "<" (git's default marker size)
SOURCE = "holefill"


def _merge_module() -> Any:
    try:
        return importlib.import_module("holefill.merge.lsp")
    except ImportError:
        return None
    except Exception as exc:
        log.warning("merge-conflict support unavailable: %s", type(exc).__name__)
        return None


def register(server: Any) -> None:
    server.merge = _merge_module()
    server.conflicted = set()  # URIs with published conflict diagnostics
    if server.merge is None:
        return

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]),
    )
    async def code_action(ls: Any, params: types.CodeActionParams) -> list[types.CodeAction]:
        return await code_actions(ls, params)


def _path(uri: str) -> str | None:
    return to_fs_path(uri) if uri.startswith("file:") else None


def _block_range(text: str, hunk: Any, encoding: str | None) -> types.Range:
    """Lines start_line..end_line, through the end marker's line end (or the document end)."""
    if hunk.end >= len(text) and not text.endswith(("\n", "\r")):
        end = end_position(text, encoding)
    else:
        end = types.Position(hunk.end_line + 1, 0)
    return types.Range(types.Position(hunk.start_line, 0), end)


def _hunks(ls: Any, text: str) -> tuple[list[Any], str | None]:
    try:
        return ls.merge.conflict_hunks(text), None
    except ls.merge.ConflictError as exc:
        return [], str(exc)


def publish_diagnostics(ls: Any, uri: str) -> None:
    if getattr(ls, "merge", None) is None or (doc := open_document(ls.workspace, uri)) is None:
        return
    text = doc.source
    if MARKER not in text and uri not in ls.conflicted:
        return
    hunks, error = _hunks(ls, text) if MARKER in text else ([], None)
    diagnostics = [
        types.Diagnostic(
            range=_block_range(text, hunk, ls.workspace.position_encoding),
            message=f"Merge conflict ({hunk.ours_label or 'ours'} / {hunk.theirs_label or 'theirs'})",
            severity=types.DiagnosticSeverity.Error,
            source=SOURCE,
            code="merge-conflict",
        )
        for hunk in hunks
    ]
    if error:
        diagnostics.append(
            types.Diagnostic(
                range=types.Range(types.Position(0, 0), types.Position(0, 0)),
                message=f"Malformed conflict markers: {error}",
                severity=types.DiagnosticSeverity.Warning,
                source=SOURCE,
            )
        )
    (ls.conflicted.add if diagnostics else ls.conflicted.discard)(uri)
    ls.text_document_publish_diagnostics(
        types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=doc.version)
    )


def clear_diagnostics(ls: Any, uri: str) -> None:
    if uri in getattr(ls, "conflicted", ()):
        ls.conflicted.discard(uri)
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
        )


async def code_actions(ls: Any, params: types.CodeActionParams) -> list[types.CodeAction]:
    """Per conflict block touching the range: resolve it; and resolve all blocks of the file."""
    uri = params.text_document.uri
    doc = open_document(ls.workspace, uri)
    if doc is None or MARKER not in doc.source:
        return []
    text, path, encoding = doc.source, _path(uri), ls.workspace.position_encoding
    hunks, _ = _hunks(ls, text)
    if not hunks:
        return []
    start, end = params.range.start.line, params.range.end.line
    wanted = [h for h in hunks if h.start_line <= end and start <= h.end_line]

    def compute() -> tuple[list[tuple[Any, Any]], str]:
        edits = [(h, ls.merge.resolve_hunk_edit(text, h.index, path)) for h in wanted]
        return edits, ls.merge.resolve_all(text, path)

    try:
        edits, resolved = await asyncio.to_thread(compute)
    except Exception as exc:
        log.warning("resolving conflicts failed: %s", type(exc).__name__)
        return []

    def edit(range_: types.Range, new_text: str) -> types.WorkspaceEdit:
        return types.WorkspaceEdit(changes={uri: [types.TextEdit(range=range_, new_text=new_text)]})

    actions = [
        types.CodeAction(
            title=ls.merge.action_title(pattern, confidence, stage),
            kind=types.CodeActionKind.QuickFix,
            edit=edit(_block_range(text, hunk, encoding), new_text),
            is_preferred=True,
        )
        for hunk, found in edits
        if found is not None
        for new_text, pattern, confidence, stage in [found]
    ]
    if resolved != text:
        whole = types.Range(types.Position(0, 0), end_position(text, encoding))
        actions.append(
            types.CodeAction(
                title="Resolve all conflicts",
                kind=types.CodeActionKind.QuickFix,
                edit=edit(whole, resolved),
            )
        )
    return actions
