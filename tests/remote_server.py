"""A real OpenAI-compatible server for the remote-backend tests: llama.cpp's server from
llama-cpp-python (`pip install -e ".[remote]"`) on a free local port, serving SmolLM2-135M (the
`llama_server` fixture) or Qwen2.5-Coder-0.5B (`qwen_server`, for fill-in-the-middle; its GGUF
is fetched into holefill's cache once, 491 MB).

Without llama-cpp-python the tests that use it are skipped, unless HOLEFILL_REQUIRE_REMOTE=1
(CI's remote step) makes that a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

READY_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` as a child process; its output goes to a log file the tests
    read (the server's own account of what it did: prefix-cache hits, client disconnects)."""

    def __init__(self, gguf: Path, port: int | None = None) -> None:
        self.gguf = gguf
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log",
                                                delete=False)
        self.log_path = Path(self._log.name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LlamaServer:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf),
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "4096",
               "--n_threads", "1", "--n_threads_batch", "1", "--logits_all", "false",
               "--verbose", "true",
               # the server itself must not end a request when another arrives: every client
               # disconnect in its log is then one of ours
               "--interrupt_requests", "false"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # its prints reach the log at once
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self.log()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"llama_cpp.server not ready in {READY_TIMEOUT_S} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        self.stop()
        self._log.close()
        self.log_path.unlink(missing_ok=True)


def require_llama_cpp() -> None:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as exc:
        if os.environ.get("HOLEFILL_REQUIRE_REMOTE") == "1":
            pytest.fail(f"llama-cpp-python[server] is required here: {exc}")
        pytest.skip('needs llama-cpp-python[server]: pip install -e ".[remote]"')


def embedded_gguf() -> Path:
    """SmolLM2-135M's GGUF (no FIM tokens)."""
    from holefill.completion.model import BUILTIN_MODELS, find_gguf

    return find_gguf(BUILTIN_MODELS["smollm2-135m"])


def qwen_gguf() -> Path:
    """Qwen2.5-Coder-0.5B's GGUF (FIM tokens; the served model id is its path, which names
    the family)."""
    from holefill.completion.model import BUILTIN_MODELS, find_gguf

    return find_gguf(BUILTIN_MODELS["qwen2.5-coder-0.5b"])


@pytest.fixture(scope="module")
def llama_server():
    """One llama.cpp server per test module (start-up takes about a second)."""
    require_llama_cpp()
    server = LlamaServer(embedded_gguf()).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def qwen_server():
    """A llama.cpp server with Qwen2.5-Coder-0.5B, once per module, for the tests that ask."""
    require_llama_cpp()
    server = LlamaServer(qwen_gguf()).start()
    yield server
    server.close()
