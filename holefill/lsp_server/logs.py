"""Logging for the server: stderr (stdout carries the protocol) and `window/logMessage`.

Logs hold no source text unless `debug_log_source` is on: our own messages never include it, and
pygls' messages (which format whole requests, responses and document changes) keep only their
short scalar arguments (method names, ids); anything else is replaced by a placeholder.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import threading
from typing import TYPE_CHECKING

from lsprotocol import types

from holefill.config import Settings

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

_SCALAR = re.compile(r"[\w$/.:@#-]{0,120}")
_LEVELS = {
    logging.ERROR: types.MessageType.Error,
    logging.WARNING: types.MessageType.Warning,
    logging.INFO: types.MessageType.Info,
}


class RedactSource(logging.Filter):
    """Strip request/response payloads from pygls' log records."""

    def __init__(self) -> None:
        super().__init__()
        self.enabled = True

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.enabled or not record.name.startswith("pygls") or not record.args:
            return True
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        record.args = tuple(_redact(arg) for arg in args)
        return True


def _redact(arg: object) -> object:
    if arg is None or isinstance(arg, (bool, int, float)):
        return arg
    if isinstance(arg, str) and _SCALAR.fullmatch(arg):
        return arg
    return "<redacted: set debug_log_source to log payloads>"


_redactor = RedactSource()


def setup_logging(settings: Settings) -> None:
    """Log to stderr at the configured level."""
    root = logging.getLogger()
    if not any(getattr(h, "_holefill", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(_redactor)
        handler._holefill = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    apply_settings(settings)


def apply_settings(settings: Settings) -> None:
    level = logging.getLevelName(settings.log_level.upper())
    level = level if isinstance(level, int) else logging.INFO
    logging.getLogger().setLevel(min(level, logging.WARNING))
    logging.getLogger("holefill").setLevel(level)
    # pygls logs every message body at INFO; keep it quiet unless debugging.
    logging.getLogger("pygls").setLevel(level if level <= logging.DEBUG else logging.WARNING)
    _redactor.enabled = not settings.debug_log_source


class ClientLogHandler(logging.Handler):
    """Forward holefill's log records to the client with `window/logMessage` (thread-safe)."""

    def __init__(self, server: LanguageServer, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.INFO)
        self.server = server
        self.loop = loop
        self.loop_thread = threading.get_ident()  # created on the loop's thread
        self.addFilter(_redactor)
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "to_client", True) is False:  # sent to the client another way
            return
        try:
            params = types.LogMessageParams(
                type=_LEVELS.get(record.levelno, types.MessageType.Log), message=self.format(record)
            )
            if self.loop.is_closed():
                return
            if threading.get_ident() == self.loop_thread:
                self.server.window_log_message(params)
            else:
                self.loop.call_soon_threadsafe(self.server.window_log_message, params)
        except Exception:  # logging must never take the server down
            pass


def attach_client_logs(server: LanguageServer) -> None:
    logger = logging.getLogger("holefill")
    for handler in list(logger.handlers):
        if isinstance(handler, ClientLogHandler):
            logger.removeHandler(handler)
    logger.addHandler(ClientLogHandler(server, asyncio.get_running_loop()))
