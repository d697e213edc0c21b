"""Transports: stdio and TCP, both tolerant of message bodies that are not valid UTF-8.

pygls drops a message whose body does not decode (a request would never be answered); here such
a body is decoded with replacement characters instead, so the document opens and the server
answers as usual.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import sys
import threading
from typing import BinaryIO

from pygls.io_ import run_async
from pygls.lsp.server import LanguageServer

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"


def _utf8(body: bytes) -> bytes:
    try:
        body.decode("utf-8")
        return body
    except UnicodeDecodeError:
        log.warning("a message was not valid UTF-8; invalid bytes were replaced")
        return body.decode("utf-8", "replace").encode("utf-8")


class Utf8Stdin:
    """The binary input stream, with message bodies made valid UTF-8."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw

    def readline(self) -> bytes:
        return self.raw.readline()

    def read(self, size: int) -> bytes:
        return _utf8(self.raw.read(size))


class _Utf8StreamReader:
    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    async def readline(self) -> bytes:
        return await self.reader.readline()

    async def readexactly(self, size: int) -> bytes:
        return _utf8(await self.reader.readexactly(size))


def serve_stdio(server: LanguageServer) -> None:
    """Serve on stdin/stdout. File descriptor 1 is pointed at stderr first, so that a stray
    print (ours, a library's or a C extension's) cannot corrupt the protocol stream."""
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    server.start_io(stdin=Utf8Stdin(sys.stdin.buffer), stdout=protocol_out)  # type: ignore[arg-type]


def parse_tcp(address: str) -> tuple[str, int]:
    """Parse `HOST:PORT`, `:PORT` or `PORT` (host 127.0.0.1); IPv6 hosts in brackets."""
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = "", address
    host = host.strip("[]") or DEFAULT_HOST
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--tcp {address!r}: expected HOST:PORT or PORT") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"--tcp {address!r}: port out of range")
    return host, number


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_tcp(server: LanguageServer, host: str, port: int) -> None:
    """Serve one client over TCP; the server stops when that client disconnects or exits."""
    if not is_loopback(host):
        log.warning("listening on %s: other machines can connect to this server", host)
    stop = threading.Event()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.protocol.set_writer(writer)  # type: ignore[arg-type]
        await run_async(
            stop_event=stop,
            reader=_Utf8StreamReader(reader),
            protocol=server.protocol,
            logger=log,
            error_handler=server.report_server_error,
        )
        listener.close()

    async def main() -> None:
        nonlocal listener
        listener = await asyncio.start_server(connection, host, port)
        for sock in listener.sockets:
            log.info("listening on %s", sock.getsockname())
        try:
            await listener.serve_forever()
        except asyncio.CancelledError:
            pass

    listener: asyncio.Server
    try:
        asyncio.run(main())
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()
