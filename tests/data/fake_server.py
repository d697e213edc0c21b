"""holefill's language server with a fake engine, for the fast LSP tests.

The fake engine has the real engine's shape. Its behaviour follows the settings:
- model "broken...": loading fails with ModelError; "slow...": loading takes 2 s;
- each generated "token" takes 20 ms and generation stops between tokens when cancelled;
- a document containing RAISE (or a lone surrogate, as with a real tokenizer) makes it raise.
The suggestion is JSON describing the request, so tests can check what the server sent.
The custom request `fake/events` returns what the engine saw (`{"since": n}`: from the n-th event
on), and `fake/document` the text and version the server holds for `{"uri": ...}`.
"""

from __future__ import annotations

import json
import sys
import time
from types import SimpleNamespace
from typing import Any

from holefill.completion.model import ModelError
from holefill.config import Settings
from holefill.lsp_server import logs, transport
from holefill.lsp_server.server import create_server

TOKEN_S = 0.02
EVENTS: list[dict[str, Any]] = []


class FakeEngine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.info = SimpleNamespace(
            name=f"fake:{settings.model}", device="cpu", dtype="float32", load_s=0.0
        )

    @classmethod
    def load(cls, settings: Settings) -> FakeEngine:
        EVENTS.append({"event": "load", "model": settings.model, "device": settings.device})
        if settings.model.startswith("slow"):
            time.sleep(2.0)
        if settings.model.startswith("broken"):
            raise ModelError(f"model {settings.model!r} not found: give a local directory")
        return cls(settings)

    def complete(self, req: Any, cancelled: Any = None) -> Any:
        if "RAISE" in req.text:
            raise RuntimeError("fake engine failure")
        req.text.encode("utf-8")  # like a real tokenizer, lone surrogates make it fail
        event = {"event": "complete", "offset": req.offset, "doc_id": req.doc_id, "tokens": 0}
        event.update(length=len(req.text), replacement="\ufffd" in req.text)
        EVENTS.append(event)
        for _ in range(req.max_new_tokens or self.settings.max_new_tokens):
            if cancelled is not None and cancelled():
                event["cancelled"] = True
                return SimpleNamespace(items=[], cancelled=True, model=self.info.name)
            time.sleep(TOKEN_S)
            event["tokens"] += 1
        text = json.dumps(
            {
                "offset": req.offset,
                "tab_size": req.tab_size,
                "insert_spaces": req.insert_spaces,
                "max_new_tokens": req.max_new_tokens,
                "model": self.settings.model,
                "path": req.path,
            }
        )
        draft = SimpleNamespace(text=text, score=0.0)
        return SimpleNamespace(items=[draft], cancelled=False, model=self.info.name)

    def edit(self, doc_id: str, start: int, end: int, text: str) -> None:
        EVENTS.append({"event": "edit", "doc_id": doc_id, "edit": [start, end, text]})

    def maintain(self, cancelled: Any = None) -> int:
        EVENTS.append({"event": "maintain"})
        return 0

    def forget(self, doc_id: str) -> None:
        EVENTS.append({"event": "forget", "doc_id": doc_id})


def main() -> None:
    settings = Settings(model="fake")
    logs.setup_logging(settings)
    server = create_server(settings, engine_factory=FakeEngine.load)
    server.host.request_type = SimpleNamespace  # the real CompletionRequest would import torch

    @server.feature("fake/events")
    def events(params: Any) -> list[dict[str, Any]]:
        return EVENTS[getattr(params, "since", 0) :]  # pygls: params as namedtuples

    @server.feature("fake/document")
    def document(params: Any) -> dict[str, Any] | None:
        doc = server.workspace.text_documents.get(params.uri)
        return None if doc is None else {"text": doc.source, "version": doc.version}

    if len(sys.argv) > 2 and sys.argv[1] == "--tcp":
        transport.serve_tcp(server, *transport.parse_tcp(sys.argv[2]))
    else:
        transport.serve_stdio(server)


if __name__ == "__main__":
    main()
