"""The VS Code extension's own tests (`npm ci && npm test`), when Node is present."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parents[1] / "editors" / "vscode"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="Node/npm not installed")
def test_vscode_extension_builds_and_its_unit_tests_pass():
    for cmd in (["npm", "ci", "--no-audit", "--no-fund"], ["npm", "test"]):
        proc = subprocess.run(cmd, cwd=EXTENSION, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
