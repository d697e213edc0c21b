"""The `holefill` command line, run as a user runs it (slow: real embedded model)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from holefill.completion.model import builtin_model
from holefill.config import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "inventory.py"


def holefill(*args: str, timeout: int = 300, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "holefill.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


@pytest.mark.slow
def test_the_readme_demo_shows_a_correct_suggestion_from_the_default_model(code_model):
    """README's first command, on the default model (no HOLEFILL_MODEL): inside `total_value`
    the suggestion must be valid code in the file that uses the function's own data."""
    env = {k: v for k, v in os.environ.items() if k != "HOLEFILL_MODEL"}
    proc = holefill("complete", f"{EXAMPLE}:33:9", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == builtin_model(DEFAULT_MODEL).title
    assert data["items"], data["rejected"]
    text = data["items"][0]["text"]
    print("demo suggestion:", repr(text))
    source = EXAMPLE.read_text()
    lines = source.split("\n")
    offset = sum(len(line) + 1 for line in lines[:32]) + 8
    tree = ast.parse(source[:offset] + text + source[offset:])  # it parses where it goes
    body = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
                and n.name == "total_value").body
    assert any(isinstance(n, ast.Return) for stmt in body for n in ast.walk(stmt))
    assert "self.items" in text  # computed from the inventory, not from names of elsewhere


@pytest.mark.slow
def test_complete_json_prints_a_real_suggestion():
    # SmolLM2 (HOLEFILL_MODEL from conftest); at 33:9 the checker rejects all its drafts, which
    # read names of other methods, so the contract is checked where it writes valid code
    proc = holefill("complete", f"{EXAMPLE}:27:9", "--json", "--max-new-tokens", "24")
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


def test_context_shows_the_fim_prompt_of_a_fim_model():
    """No model is loaded: the built-in code model's name gives its FIM template."""
    env = {**os.environ, "HOLEFILL_FIM": "on"}  # auto leaves FIM off for this model
    proc = holefill("context", f"{EXAMPLE}:33:9", "--json", "--model", "qwen2.5-coder-0.5b",
                    env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    prompt = data["prompt"]
    assert data["fim"] == "qwen"
    assert prompt.startswith("<|fim_prefix|>") and prompt.endswith("<|fim_middle|>")
    before, after = prompt.split("<|fim_suffix|>")
    assert before.endswith('"""The value of everything in stock."""\n')  # up to the line
    assert after.endswith("<|fim_middle|>")  # the line's blanks are the model's to write


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
