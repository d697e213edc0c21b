"""The `holefill` command line, run as a user runs it (slow: real embedded model)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "inventory.py"


def holefill(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "holefill.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.mark.slow
def test_complete_json_prints_a_real_suggestion():
    proc = holefill("complete", f"{EXAMPLE}:33:9", "--json", "--max-new-tokens", "24")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {"items", "timings_ms", "model"} <= set(data)  # the contract of DESIGN.md
    texts = [item["text"] for item in data["items"]]
    assert len(texts) <= 3 and len(set(texts)) == len(texts)  # default: up to 3 distinct drafts
    if "error_rounds" not in data["timings_ms"]:  # one round: a draft is shown or rejected
        assert len(texts) + len(data["rejected"]) <= 3
    assert data["items"] and data["items"][0]["text"].strip()
    assert isinstance(data["items"][0]["score"], float)
    assert "SmolLM2" in data["model"]
    assert {"tokenize", "prefill", "decode"} <= set(data["timings_ms"])


@pytest.mark.slow
def test_model_info_names_model_files_device_and_dtype():
    proc = holefill("model", "info", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert Path(info["path"]).is_dir() and info["source"].endswith(".gguf")
    assert info["device"] == "cpu" and info["dtype"] in ("int4", "int8", "bfloat16", "float32")
    assert info["decoder"] == "holefill"
    assert info["cache_mode"] == "pie" and info["pie"] == "available"


def test_context_shows_the_cursor_and_prompt():
    proc = holefill("context", f"{EXAMPLE}:33:9", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["mode"] == "block"
    assert data["prompt"].endswith('"""The value of everything in stock."""\n        ')


@pytest.mark.parametrize(
    "location, message",
    [
        ("examples/inventory.py", "FILE:LINE:COL"),
        ("examples/inventory.py:0:1", "1-based"),
        ("examples/inventory.py:9999:1", "past the end"),
        ("examples/missing.py:1:1", "cannot read"),
    ],
)
def test_bad_locations_are_clear_errors(location, message):
    proc = holefill("context", location)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_non_utf8_file_is_read_without_crashing(tmp_path):
    path = tmp_path / "latin1.py"
    path.write_bytes(b"name = '\xe9t\xe9'\nx = ")
    proc = holefill("context", f"{path}:2:5", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["prompt"].endswith("x = ")
