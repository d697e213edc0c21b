"""The completion engine as the server holds it: loaded in the background, one generation at a
time on its own thread, a newer request for a document cancelling the older one.

The engine is not thread-safe: every call into it (`complete`, `forget`) runs on one worker
thread, so calls are serialised without blocking the event loop. Loading runs on another thread
and the new engine is only swapped in once it is complete.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

from holefill.config import Settings

if TYPE_CHECKING:  # the engine module imports torch: only load it with the model
    from holefill.completion.engine import CompletionRequest, CompletionResult

log = logging.getLogger(__name__)

EngineFactory = Callable[[Settings], Any]
State = Literal["idle", "loading", "ready", "failed"]
LoadOutcome = Literal["ready", "failed", "superseded"]
IDLE_S = 1.0  # quiet time before idle-time cache maintenance


class Superseded(Exception):
    """A newer request for the same document took over."""


class _Unavailable:
    """The engine could not serve the request now (e.g. its endpoint is down)."""

    def __init__(self, message: str) -> None:
        self.message = message


class _Ticket:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.superseded = False


def default_engine_factory(settings: Settings) -> Any:
    """The engine of `settings.backend`: `CompletionEngine.load` (local) or `RemoteEngine.load`
    (openai), imported only when a model is actually loaded (torch is heavy)."""
    from holefill.completion.model import ModelError

    if settings.backend == "openai":
        from holefill.completion.remote import RemoteEngine

        return RemoteEngine.load(settings)
    if settings.backend != "local":
        raise ModelError(f"backend must be 'local' or 'openai', not {settings.backend!r}")
    from holefill.completion.engine import CompletionEngine

    return CompletionEngine.load(settings)


class EngineHost:
    def __init__(self, factory: EngineFactory) -> None:
        self._factory = factory
        self.engine: Any = None
        self.state: State = "idle"
        self.error: str | None = None
        self._generation = 0
        self._load_lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="holefill-engine")
        self._pending: dict[str, _Ticket] = {}
        self.request_type: Callable[..., Any] | None = None  # CompletionRequest, imported late
        self._idle: asyncio.TimerHandle | None = None
        self._maintenance: _Ticket | None = None
        self._edited = False  # edits since the last maintenance
        self._closed = False
        self.unavailable: str | None = None  # why the engine cannot serve now, while it cannot
        # Shows a message in the editor (text, is_error): the server sets it (showMessage).
        self.notify: Callable[[str, bool], None] | None = None

    def request(self, **fields: Any) -> CompletionRequest:
        if self.request_type is None:
            from holefill.completion.engine import CompletionRequest

            self.request_type = CompletionRequest
        return self.request_type(**fields)

    @property
    def ready(self) -> bool:
        return self.state == "ready" and self.engine is not None

    async def load(self, settings: Settings) -> LoadOutcome:
        """(Re)load the engine. The old engine is dropped first (one model in memory at a time);
        a load that a newer one superseded is discarded."""
        self._generation += 1
        generation = self._generation
        old = self.engine
        self.state, self.error, self.engine = "loading", None, None
        self.unavailable = None
        self.cancel_all()
        if old is not None and hasattr(old, "close") and not self._closed:
            self._executor.submit(old.close)  # the remote engine's connections and loop thread
        async with self._load_lock:
            if generation != self._generation:
                return "superseded"
            try:
                engine = await asyncio.to_thread(self._factory, settings)
            except Exception as exc:  # ModelError and anything else: reported, never raised
                if generation != self._generation:
                    return "superseded"
                self.state, self.error = "failed", str(exc) or type(exc).__name__
                log.debug("model load failed", exc_info=True)
                return "failed"
            if generation != self._generation:
                return "superseded"
            self.engine, self.state = engine, "ready"
            return "ready"

    async def complete(self, key: str, request: CompletionRequest) -> CompletionResult | None:
        """Generate for one request; None when not ready, cancelled or failed. A newer call with
        the same key stops this one between tokens, and this one raises Superseded."""
        ticket = _Ticket()
        self._stop_maintenance()
        if (older := self._pending.get(key)) is not None:
            older.superseded = True
            older.stop.set()
        self._pending[key] = ticket
        try:
            engine = self.engine
            if engine is None or not self.ready or self._closed:
                return None
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                self._executor, _generate, engine, request, ticket.stop
            )
            self._report(result)
            if isinstance(result, _Unavailable):
                return None
            if ticket.superseded:
                raise Superseded()
            if ticket.stop.is_set() or result is None or result.cancelled:
                return None
            return result
        except asyncio.CancelledError:  # $/cancelRequest or shutdown: stop the engine too
            ticket.stop.set()
            raise
        finally:
            if self._pending.get(key) is ticket:
                del self._pending[key]
            if self._edited and not self._pending and not self._closed:
                self._plan_maintenance()

    def _report(self, result: Any) -> None:
        """An outage is shown in the editor once, and its end once, not on every request."""
        if isinstance(result, _Unavailable):
            if self.unavailable is None:
                self._notify(f"holefill: completions unavailable: {result.message}", True)
            self.unavailable = result.message
        elif result is not None and not result.cancelled and self.unavailable is not None:
            self.unavailable = None
            self._notify("holefill: completions available again", False)

    def _notify(self, message: str, error: bool) -> None:
        log.log(logging.ERROR if error else logging.INFO, "%s", message)  # also the output log
        if self.notify is not None:
            try:
                self.notify(message, error)
            except Exception as exc:  # a closed connection must not break completion
                log.debug("notify failed: %s", type(exc).__name__)

    def edit(self, key: str, edits: list[tuple[int, int, str]]) -> None:
        """Hand a document's edits (character offsets, each into the previous text) to its KV
        session, in order with the completions; then plan idle-time maintenance."""
        engine = self.engine
        if engine is None or not self.ready or self._closed or not hasattr(engine, "edit"):
            return
        self._executor.submit(_edit, engine, key, edits)
        self._edited = True
        self._plan_maintenance()

    def forget(self, key: str) -> None:
        if (pending := self._pending.pop(key, None)) is not None:
            pending.stop.set()
        if (engine := self.engine) is not None and not self._closed:
            self._executor.submit(_forget, engine, key)

    def _plan_maintenance(self) -> None:
        """Run the engine's `maintain` (re-encoding drifted sessions) after IDLE_S without
        requests; a request stops it between chunks."""
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(IDLE_S, self._maintain)

    def _maintain(self) -> None:
        engine = self.engine
        if engine is None or self._pending or self._closed or not hasattr(engine, "maintain"):
            return
        self._edited = False
        self._maintenance = ticket = _Ticket()
        self._executor.submit(_run_maintain, engine, ticket.stop)

    def _stop_maintenance(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._maintenance is not None:
            self._maintenance.stop.set()
            self._maintenance = None

    def cancel_all(self) -> None:
        self._stop_maintenance()
        for ticket in self._pending.values():
            ticket.stop.set()

    def close(self) -> None:
        self._closed = True
        self.cancel_all()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _generate(engine: Any, request: CompletionRequest, flag: threading.Event) -> Any:
    if flag.is_set():
        return None
    try:
        return engine.complete(request, cancelled=flag.is_set)
    except Exception as exc:  # a bad input must not take the server down
        if getattr(exc, "unavailable", False):  # e.g. remote.EndpointError: shown to the user
            return _Unavailable(str(exc))
        log.error("completion failed: %s: %s", type(exc).__name__, str(exc)[:200])
        log.debug("completion failure", exc_info=True)
        return None


def _edit(engine: Any, key: str, edits: list[tuple[int, int, str]]) -> None:
    try:
        for start, end, text in edits:
            engine.edit(key, start, end, text)
    except Exception as exc:  # the session is rebuilt from the text on the next request
        log.warning("applying an edit to the model cache failed: %s", type(exc).__name__)
        _forget(engine, key)


def _run_maintain(engine: Any, stop: threading.Event) -> None:
    try:
        engine.maintain(stop.is_set)
    except Exception as exc:
        log.warning("cache maintenance failed: %s", type(exc).__name__)


def _forget(engine: Any, key: str) -> None:
    try:
        engine.forget(key)
    except Exception as exc:
        log.warning("forgetting a document failed: %s", type(exc).__name__)
