"""ChatLSP-style methods (RESEARCH §6.5): the typed-hole context of a position, and the errors a
completion would cause. Thin: holefill.context.report computes; this module reads the params
and runs it on the jedi thread. Response shapes: holefill/context/report.py's docstring."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import to_fs_path

from holefill.lsp_server.features import target

if TYPE_CHECKING:
    from holefill.lsp_server.server import HolefillServer

EXPECTED_TYPE = "chatlsp/expectedType"
RELEVANT_TYPES = "chatlsp/relevantTypes"
RELEVANT_HEADERS = "chatlsp/relevantHeaders"
ERROR_REPORT = "chatlsp/errorReport"
METHODS = (EXPECTED_TYPE, RELEVANT_TYPES, RELEVANT_HEADERS, ERROR_REPORT)


def _field(params: Any, *path: str) -> Any:
    """params.a.b for attribute-style or dict params (pygls leaves unknown methods' params raw)."""
    value = params
    for key in path:
        value = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
        if value is None:
            raise JsonRpcInvalidParams(f"missing params.{'.'.join(path)}")
    return value


async def handle(ls: HolefillServer, method: str, params: Any) -> Any:
    from holefill.context import report  # jedi-heavy: imported on first use

    uri = _field(params, "textDocument", "uri")
    try:
        position = types.Position(
            line=int(_field(params, "position", "line")),
            character=int(_field(params, "position", "character")),
        )
    except (TypeError, ValueError) as exc:
        raise JsonRpcInvalidParams("params.position must hold integers") from exc
    t = target(ls, str(uri), position)
    if t is None:
        raise JsonRpcInvalidParams(f"document not open: {uri}")
    path = to_fs_path(t.doc.uri) if t.doc.uri.startswith("file:") else None
    args: tuple[Any, ...] = (t.text, t.cursor.offset)
    if method == ERROR_REPORT:
        completion = _field(params, "completion")
        if not isinstance(completion, str):
            raise JsonRpcInvalidParams("params.completion must be a string")
        function, args = report.error_report, (*args, completion)
    else:
        function = {
            EXPECTED_TYPE: report.expected_type_response,
            RELEVANT_TYPES: report.relevant_types_response,
            RELEVANT_HEADERS: report.relevant_headers_response,
        }[method]
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        ls.jedi_executor, lambda: function(*args, path=path, workspace=ls.root_path)
    )


def handler(method: str) -> Any:
    async def hole_method(ls: HolefillServer, params: Any) -> Any:
        return await handle(ls, method, params)

    hole_method.__name__ = method.replace("/", "_")
    return hole_method
