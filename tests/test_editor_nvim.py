"""The Neovim plugin (editors/nvim) in a real headless Neovim 0.11.

- `test_lua_unit`: the plugin's pure logic (ghost text, partial accepts, cycling, keys, CLI
  output parsing), run by headless Neovim without a server. Fast.
- The slow tests share one Neovim session (tests/e2e.lua in the plugin) attached to the real
  `python -m holefill.cli serve` with the embedded model: type a line, wait for ghost text,
  compare it with what the server answered, accept it, cycle drafts, accept a word, dismiss,
  :HolefillContext, :HolefillResolve (compared with `holefill resolve` on a copy), :checkhealth.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "editors" / "nvim"
EXAMPLE = ROOT / "examples" / "inventory.py"
SESSION_TIMEOUT_S = 360  # inside Neovim (it writes what it has and quits)
PROCESS_TIMEOUT_S = SESSION_TIMEOUT_S + 60  # the process itself

CONFLICT = """\
def greet(name):
<<<<<<< ours
    return "Hi, " + name
||||||| base
    return "Hi, " + name
=======
    return "Hello, " + name + "!"
>>>>>>> theirs


print(greet("you"))
"""


def _nvim() -> str | None:
    path = shutil.which("nvim")
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"NVIM v(\d+)\.(\d+)", out)
    if not m or (int(m.group(1)), int(m.group(2))) < (0, 11):
        return None
    return path


NVIM = _nvim()
needs_nvim = pytest.mark.skipif(NVIM is None, reason="Neovim >= 0.11 not on PATH")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _cli_resolution(work: Path) -> dict:
    """What `holefill resolve --write --json` makes of CONFLICT (on a copy): the reference the
    plugin's result is compared with. {"error": reason} when the command is missing or fails."""
    copy = work / "reference" / "conflict.py"
    copy.parent.mkdir()
    copy.write_text(CONFLICT)
    proc = subprocess.run(
        [sys.executable, "-m", "holefill.cli", "resolve", str(copy), "--write", "--json"],
        capture_output=True, text=True, env=_env(), timeout=180, cwd=copy.parent,
    )  # fmt: skip
    if "invalid choice: 'resolve'" in proc.stderr:
        return {"error": "`holefill resolve` is not available yet", "missing": True}
    try:
        hunks = json.loads(proc.stdout)
    except json.JSONDecodeError:
        hunks = None
    if proc.returncode not in (0, 1) or not isinstance(hunks, list):
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return {"error": f"`holefill resolve` fails on this input: {last}"}
    return {"hunks": hunks, "text": copy.read_text()}


@needs_nvim
def test_lua_unit(tmp_path: Path) -> None:
    out = tmp_path / "unit.json"
    proc = subprocess.run(
        [NVIM, "--headless", "--clean", "-l", str(PLUGIN / "tests" / "unit.lua"), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.exists(), proc.stderr
    results = json.loads(out.read_text())
    assert results["failed"] == [], "\n".join(
        f["name"] + ": " + f["error"] for f in results["failed"]
    )
    assert len(results["passed"]) >= 15
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if NVIM is None:
        pytest.skip("Neovim >= 0.11 not on PATH")
    work = tmp_path_factory.mktemp("nvim")
    sample = work / "inventory.py"
    # The example up to the docstring of total_value(); the test types the body.
    sample.write_text("".join(EXAMPLE.read_text().splitlines(keepends=True)[:32]))
    resolve = _cli_resolution(work)
    conflict = work / "conflict.py"
    conflict.write_text(CONFLICT)
    conflict_cli = work / "conflict_cli.py"
    conflict_cli.write_text(CONFLICT)
    out = work / "results.json"
    env = _env() | {
        "HOLEFILL_TEST_PYTHON": sys.executable,
        "HOLEFILL_TEST_FILE": str(sample),
        "HOLEFILL_TEST_OUT": str(out),
        "HOLEFILL_TEST_CONFLICT": str(conflict),
        "HOLEFILL_TEST_CONFLICT_CLI": str(conflict_cli),
        "HOLEFILL_TEST_CONTEXT": "1",
        "HOLEFILL_TEST_TIMEOUT": str(SESSION_TIMEOUT_S),
    }
    cmd = [
        NVIM, "--headless", "--clean",
        "--cmd", f"set rtp^={PLUGIN}",
        "-c", f"luafile {PLUGIN / 'tests' / 'e2e.lua'}",
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, cwd=work, env=env, capture_output=True, timeout=PROCESS_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        stderr = proc.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        stderr = "Neovim did not exit in time"
    assert out.exists(), f"no results from Neovim: {stderr[-2000:]}"
    results = json.loads(out.read_text())
    results["cli_resolution"] = resolve
    results["conflict_cli_path"] = str(conflict_cli)
    results["stderr"] = stderr[-2000:]
    return results


def _step(session: dict, name: str) -> dict:
    step = session["steps"].get(name)
    assert step is not None, f"step {name!r} did not run; errors: {session['errors']}"
    assert step["ok"], step.get("error")
    return step


@pytest.mark.slow
def test_server_attaches_and_the_model_loads(session: dict) -> None:
    assert _step(session, "setup")["mode"] == "plugin"  # Neovim 0.11: the plugin's own renderer
    attach = _step(session, "attach")
    assert attach["filetype"] == "python"
    assert attach["inline_provider"] is True
    assert attach["model_state"] == "ready", attach["model_message"]


@pytest.mark.slow
def test_ghost_text_holds_the_server_suggestion(session: dict) -> None:
    s = _step(session, "suggest")
    assert s["mode"] == "i"
    assert s["line_before"] == "        return "
    assert s["server_items"], "the server returned no items"
    first = s["server_items"][0]
    # The server inserts at the cursor (empty range) ...
    row, col = s["cursor"][0] - 1, s["cursor"][1]
    assert first["range"]["start"] == first["range"]["end"] == {"line": row, "character": col}
    # ... and the ghost text shows exactly that text, at the cursor.
    assert s["ghost"] == first["insertText"] == s["drafts"][0]
    assert (s["extmark_row"], s["extmark_col"]) == (row, col)
    assert s["virt_text_pos"] == "inline"
    assert s["requests"] >= 1


@pytest.mark.slow
def test_accept_inserts_the_suggestion(session: dict) -> None:
    a = _step(session, "accept")
    assert a["before"] == "        return "
    ghost_lines = a["ghost"].split("\n")
    expected = ("        return " + a["ghost"]).split("\n")
    assert a["buffer_tail"] == expected
    assert a["cursor"][1] == len(expected[-1].encode())  # at the end of the inserted text
    assert len(ghost_lines) >= 1 and a["contains"]
    assert a["shown_after"] is None  # nothing left, no new request for what was accepted


@pytest.mark.slow
def test_cycling_drafts(session: dict) -> None:
    c = _step(session, "cycle")
    assert c["errmsg"] == ""
    if len(c["drafts"]) > 1:
        assert c["index_after"] == 2
        assert c["shown_after"] == c["drafts"][1]
        assert c["index_back"] == 1
    else:
        # One draft today: cycling is a no-op, without error.
        assert c["index_after"] == 1 and c["index_back"] == 1
        assert c["shown_after"] == c["first"]


@pytest.mark.slow
def test_accept_word_then_dismiss(session: dict) -> None:
    w = _step(session, "accept_word")
    word = re.match(r"[ \t]*(\n[ \t]*)?([\w]+|[^\w\s]+)?", w["shown"]).group(0)
    assert w["line"] == w["before"] + word.split("\n")[0]
    rest = w["shown"][len(word) :]
    assert w["remaining"] == (rest if rest else None)
    d = _step(session, "dismiss")
    assert d["after"] is False


@pytest.mark.slow
def test_typing_cancels_the_pending_request(session: dict) -> None:
    c = _step(session, "cancel")
    assert c["line"] == "        count = len("
    assert c["requests"] >= 2
    if not c["answered_first"]:  # (a fast machine may answer before the next keys)
        assert c["cancelled"] >= 1  # the first request was cancelled (client:cancel_request)
    # What is shown answers the last request, made at the cursor after "len(".
    assert c["response_position"] == {"line": c["cursor"][0] - 1, "character": c["cursor"][1]}


@pytest.mark.slow
def test_context_float(session: dict) -> None:
    c = _step(session, "context")
    assert c["relative"] == "editor"
    assert "--- prompt ---" in c["lines"]
    assert any(line.startswith("mode:") for line in c["lines"])


def _check_resolution(r: dict, reference: dict) -> None:
    resolved = [h for h in reference["hunks"] if h["status"] == "resolved"]
    if resolved:
        assert r["message"] == "holefill: resolved 1 of 1 conflict"
        assert "<<<<<<<" not in r["after"]
        # Same result as the CLI on a copy (the buffer has no final newline of its own).
        assert r["after"] == reference["text"].rstrip("\n")
    else:
        assert "left for you" in r["message"], r["message"]
        assert r["after"] == r["before"]


@pytest.mark.slow
def test_resolve_conflicts_with_the_code_action(session: dict) -> None:
    r = _step(session, "resolve")
    reference = session["cli_resolution"]
    assert r["message"].startswith("holefill:"), r["message"]
    if not r["code_action"]:
        pytest.skip("the server offers no code action (no merge support)")
    # The server marks the conflict block with a diagnostic.
    assert [d["lnum"] for d in r["diagnostics"]] == [1]
    if "error" in reference:
        pytest.skip(reference["error"])
    _check_resolution(r, reference)
    assert r["modified"] is True  # an edit of the buffer, not of the file


@pytest.mark.slow
def test_resolve_conflicts_with_the_cli(session: dict) -> None:
    r = _step(session, "resolve_cli")
    reference = session["cli_resolution"]
    if "error" in reference:
        if reference.get("missing"):
            assert "no `resolve` command yet" in r["message"]
        pytest.skip(reference["error"])
    _check_resolution(r, reference)
    assert r["modified"] is False  # written by the CLI, buffer reloaded
    assert Path(session["conflict_cli_path"]).read_text() == reference["text"]


@pytest.mark.slow
def test_checkhealth(session: dict) -> None:
    lines = "\n".join(_step(session, "health")["lines"])
    assert "OK server executable found" in lines
    assert re.search(r"OK client \d+ attached to [1-9] buffer", lines), lines
    assert "OK model ready" in lines
    assert "ERROR" not in lines
