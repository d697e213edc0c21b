"""Every request gets an answer (JSON-RPC 2.0, LSP 3.17): the one gate each message from the
client passes before pygls dispatches it, and the one wrapper around every feature handler.

pygls (2.1) answers a request whose handler raises, but drops, with only a log line, a request it
cannot read: params that do not fit the method's type (`"position": "bad"`, a negative line, an
unknown enum value), a request without params for a method that takes any, an id that is not an
integer or a string, a body that is not JSON, or a request after `shutdown`; the client then
waits forever. Here each of those is answered with its error: InvalidParams (-32602, naming the
offending fields, never their values), InvalidRequest (-32600), MethodNotFound (-32601), ParseError
(-32700, id null) or ServerNotInitialized (-32002). A notification that cannot be read is logged
(method and fields, no values: it may carry source text) and dropped; one whose handler raises is
logged the same way and the server goes on.

pygls hands `json.loads` its message structuring as an object hook, which also runs on every
nested object: a nested `"jsonrpc"` key (say, in configuration settings) made pygls structure a
piece of the params as a message of its own and drop the request. The hook therefore passes
objects through unchanged (`structure_message`) and `admit` structures the whole message once.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cattrs import BaseValidationError, Converter, transform_error
from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcMethodNotFound,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
from pygls.protocol import default_converter
from pygls.protocol.json_rpc import JsonRPCNotification, JsonRPCRequestMessage

if TYPE_CHECKING:
    from pygls.protocol import LanguageServerProtocol

log = logging.getLogger("holefill.lsp")

MAX_REASONS = 5  # fields named in an InvalidParams message

# Requests a server may get before `initialize` has been answered (none but initialize itself);
# notifications before it are dropped, except exit (LSP 3.17, "Initialize Request").
_BEFORE_INIT = {types.INITIALIZE}


def _strict(kind: type, accept: tuple[type, ...]) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise ValueError(f"expected {kind.__name__}, got a boolean")
        if not isinstance(value, accept) or (kind is int and isinstance(value, float)
                                             and not value.is_integer()):  # fmt: skip
            raise ValueError(f"expected {kind.__name__}")
        return kind(value)

    return structure


def converter() -> Converter:
    """pygls' converter, with JSON scalars taken as they are: cattrs coerces, so that
    `"text": null` became the text "None" (and was inserted), `"line": "7"` or `true` a number."""
    conv = default_converter()
    conv.register_structure_hook(str, _strict(str, (str,)))
    conv.register_structure_hook(int, _strict(int, (int, float)))  # 3.0 is an integer
    conv.register_structure_hook(float, _strict(float, (int, float)))
    conv.register_structure_hook(bool, _strict(bool, (bool,)))
    return conv


def is_notification(method: str) -> bool:
    """An LSP notification method (lsprotocol knows no result type for it)."""
    entry = types.METHOD_TO_TYPES.get(method)
    return entry is not None and entry[1] is None


def _camel(path: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path)


def reasons(exc: BaseException) -> str:
    """Which fields did not fit, e.g. `required field missing @ $.params.textDocument.uri`;
    cattrs' messages name types and paths, never the values."""
    if isinstance(exc, BaseValidationError):
        found = [_camel(line) for line in transform_error(exc, path="$")]
    else:
        found = [type(exc).__name__]
    more = len(found) - MAX_REASONS
    return "; ".join(found[:MAX_REASONS]) + (f"; {more} more" if more > 0 else "")


def _answer_id(message: dict[str, Any]) -> Any:
    """The id to answer with: the request's, or null when it has none that a client could match
    (JSON-RPC: "If there was an error in detecting the id ... it MUST be Null")."""
    msg_id = message.get("id")
    return msg_id if isinstance(msg_id, (int, str, float)) and not isinstance(msg_id, bool) else None


def refuse(protocol: LanguageServerProtocol, msg_id: Any, error: JsonRpcException) -> None:
    log.warning("answered with error %d: %s", error.code, error.message)
    protocol._send_response(msg_id, error=error.to_response_error())


def admit(protocol: LanguageServerProtocol, message: Any, initialized: bool) -> Any | None:
    """The structured message for pygls to dispatch, or None when it was answered (or, for a
    notification, dropped) here."""
    if not isinstance(message, dict):  # a batch, a number, a string: LSP sends single objects
        refuse(protocol, None, JsonRpcInvalidRequest("a message must be a JSON object"))
        return None
    method = message.get("method")
    if "method" not in message:
        if "id" in message:  # a response to one of our requests
            return _response(protocol, message)
        log.warning("ignored a message with neither a method nor an id")
        return None
    request = "id" in message
    if message.get("jsonrpc") != "2.0" or not isinstance(method, str):
        problem = 'a message needs "jsonrpc": "2.0" and a string method'
        return _refuse_or_drop(protocol, message, request, JsonRpcInvalidRequest(problem))
    if not request:
        return _notification(protocol, message, method, initialized)
    msg_id = message["id"]
    if not isinstance(msg_id, (int, str)) or isinstance(msg_id, bool):
        problem = "id must be an integer or a string"
        refuse(protocol, _answer_id(message), JsonRpcInvalidRequest(problem))
        return None
    if getattr(protocol, "_shutdown", False):
        refuse(protocol, msg_id, JsonRpcInvalidRequest(f"{method}: the server is shutting down"))
        return None
    if not initialized and method not in _BEFORE_INIT:
        refuse(protocol, msg_id, JsonRpcServerNotInitialized(f"{method} before initialize"))
        return None
    if initialized and method == types.INITIALIZE:
        refuse(protocol, msg_id, JsonRpcInvalidRequest("initialize may only be sent once"))
        return None
    if is_notification(method):
        problem = f"{method} is a notification: send it without an id"
        refuse(protocol, msg_id, JsonRpcInvalidRequest(problem))
        return None
    if method not in protocol.fm.builtin_features and method not in protocol.fm.features:
        refuse(protocol, msg_id, JsonRpcMethodNotFound.of(method))
        return None
    message_type = protocol.get_message_type(method)
    if message_type is None:  # our own methods: pygls' generic request (params may be omitted)
        message_type, message = JsonRPCRequestMessage, {"params": None, **message}
    try:
        return protocol._converter.structure(message, message_type)
    except Exception as exc:
        problem = f"invalid params for {method}: {reasons(exc)}"
        refuse(protocol, msg_id, JsonRpcInvalidParams(problem))
        return None


def _refuse_or_drop(
    protocol: LanguageServerProtocol, message: dict[str, Any], request: bool, error: JsonRpcException
) -> None:
    if request:
        refuse(protocol, _answer_id(message), error)
    else:
        log.warning("dropped a notification: %s", error.message)
    return None


def _notification(
    protocol: LanguageServerProtocol, message: dict[str, Any], method: str, initialized: bool
) -> Any | None:
    if not initialized and method != types.EXIT:
        log.warning("dropped %s: it came before initialize", method)
        return None
    message_type = protocol.get_message_type(method)
    if message_type is None:  # unknown: pygls ignores it (with a warning), params never read
        message_type, message = JsonRPCNotification, {"params": None, **message}
    try:
        return protocol._converter.structure(message, message_type)
    except Exception as exc:
        log.warning("dropped %s: invalid params (%s)", method, reasons(exc))
        return None


def _response(protocol: LanguageServerProtocol, message: dict[str, Any]) -> Any | None:
    """A response the client sent to one of our requests. One that cannot be read still settles
    the request waiting for it (with an error), so that nothing on our side waits forever."""
    try:
        return protocol.structure_response(message)  # type: ignore[attr-defined]
    except Exception as exc:
        log.warning("a malformed response from the client (%s)", reasons(exc.__cause__ or exc))
    if not isinstance(message.get("id"), (int, str)):
        return None
    error = types.ResponseError(code=JsonRpcInternalError.CODE, message="malformed response")
    return types.ResponseErrorMessage(id=message["id"], error=error)


def unreadable(protocol: LanguageServerProtocol, error: Exception) -> bool:
    """Answer a message body that is not JSON (ParseError, id null); True when it was one."""
    if not isinstance(error, (json.JSONDecodeError, RecursionError)):
        return False
    refuse(protocol, None, JsonRpcParseError(f"the message is not JSON ({type(error).__name__})"))
    return True


def guarded(method: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    """`handler` with its unexpected exceptions logged (method and exception type; the frames at
    debug level, never the exception's message, which may quote source text). A request then gets
    InternalError (-32603); a notification's failure ends there. JSON-RPC errors raised on purpose
    (InvalidParams ...) and cancellation pass through."""
    notification = is_notification(method)

    def failed(exc: Exception) -> None:
        log.error("%s failed: %s", method, type(exc).__name__)
        log.debug("%s failure at\n%s", method, "".join(traceback.format_tb(exc.__traceback__)))
        if not notification:
            raise JsonRpcInternalError(f"{method} failed: {type(exc).__name__}") from None

    if asyncio.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await handler(*args, **kwargs)
            except JsonRpcException:
                raise
            except Exception as exc:
                return failed(exc)

        return run_async

    @functools.wraps(handler)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except JsonRpcException:
            raise
        except Exception as exc:
            return failed(exc)

    return run
