"""The git merge driver, end to end with real git (holefill.merge.cli merge-driver)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from holefill.merge.cli import main
from holefill.merge.resolver import parse_conflicts, resolve_file

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")

BASE = """import os


def load(path, mode):
    return open(path, mode)


def f():
    return 1


print(load, f)
"""

# "main" renames load; "feature" adds an argument: one line, clean at token level.
OURS_RESOLVABLE = BASE.replace("def load(path, mode):", "def load_file(path, mode):")
THEIRS_RESOLVABLE = BASE.replace("def load(path, mode):", "def load(path, mode, encoding=None):")
# Both rewrite f's body differently: nothing to merge, the driver must leave the conflict.
OURS_BOTH = OURS_RESOLVABLE.replace("    return 1\n", "    x = compute()\n    return x + 1\n")
THEIRS_BOTH = THEIRS_RESOLVABLE.replace(
    "    return 1\n", "    log('f')\n    y = other()\n    return y * 2\n"
)


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    return env


def _git(
    repo: Path, env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=check
    )


def _driver_module() -> str:
    """The real entry point when the main CLI registers merge-driver, else the module's own."""
    proc = subprocess.run(
        [sys.executable, "-m", "holefill.cli", "merge-driver", "--help"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    return "holefill.cli" if proc.returncode == 0 else "holefill.merge.cli"


def _repo(tmp_path: Path, ours: str, theirs: str, style: str | None = None) -> tuple[Path, dict]:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = _env(tmp_path)
    _git(repo, env, "init", "-q", "-b", "main")
    driver = (
        f"{sys.executable} -m {_driver_module()} merge-driver %O %A %B --marker-size %L "
        "--path %P --min-confidence 0.5"
    )
    _git(repo, env, "config", "merge.holefill.name", "holefill")
    _git(repo, env, "config", "merge.holefill.driver", driver)
    if style:
        _git(repo, env, "config", "merge.conflictStyle", style)
    (repo / ".gitattributes").write_text("*.py merge=holefill\n")
    (repo / "m.py").write_text(BASE)
    _git(repo, env, "add", ".")
    _git(repo, env, "commit", "-qm", "base")
    _git(repo, env, "checkout", "-qb", "feature")
    (repo / "m.py").write_text(theirs)
    _git(repo, env, "commit", "-qam", "feature")
    _git(repo, env, "checkout", "-q", "main")
    (repo / "m.py").write_text(ours)
    _git(repo, env, "commit", "-qam", "main")
    return repo, env


def test_git_merge_resolved_by_the_driver(tmp_path: Path) -> None:
    repo, env = _repo(tmp_path, OURS_RESOLVABLE, THEIRS_RESOLVABLE)
    proc = _git(repo, env, "merge", "--no-edit", "feature", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    merged = (repo / "m.py").read_text()
    assert merged == BASE.replace(
        "def load(path, mode):", "def load_file(path, mode, encoding=None):"
    )
    assert _git(repo, env, "ls-files", "-u").stdout == ""
    assert len(_git(repo, env, "log", "--format=%H", "-1", "--merges").stdout.split()) == 1


def test_git_merge_leaves_the_unresolvable_conflict(tmp_path: Path) -> None:
    repo, env = _repo(tmp_path, OURS_BOTH, THEIRS_BOTH, style="diff3")
    proc = _git(repo, env, "merge", "--no-edit", "feature", check=False)
    assert proc.returncode != 0
    merged = (repo / "m.py").read_text()
    # The resolvable line is merged, the other hunk keeps diff3 markers of git's size.
    assert "def load_file(path, mode, encoding=None):\n" in merged
    (hunk,) = parse_conflicts(merged)
    assert hunk.marker_size == 7 and hunk.base == "    return 1\n"
    assert "compute()" in hunk.ours and "other()" in hunk.theirs
    assert merged.startswith("import os\n") and merged.endswith("\n\nprint(load, f)\n")
    assert "m.py" in _git(repo, env, "ls-files", "-u").stdout


def test_two_way_markers_take_the_base_from_the_index(tmp_path: Path) -> None:
    repo, env = _repo(tmp_path, OURS_BOTH, THEIRS_BOTH)  # default style: two-way markers
    assert _git(repo, env, "merge", "--no-edit", "feature", check=False).returncode != 0
    merged = (repo / "m.py").read_text()
    (hunk,) = parse_conflicts(merged)
    assert hunk.base is None
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        old_env = dict(os.environ)
        os.environ.update(_env(tmp_path))
        res = resolve_file(repo / "m.py", min_confidence=0.0)
    finally:
        os.environ.clear()
        os.environ.update(old_env)
        os.chdir(cwd)
    assert res.hunks[0].base_source == "git-index"
    assert (repo / "m.py").read_text() == merged  # no --write


def _files(tmp_path: Path, base: str, ours: str, theirs: str) -> list[str]:
    names = []
    for name, text in (("O", base), ("A", ours), ("B", theirs)):
        p = tmp_path / name
        p.write_bytes(text.encode() if isinstance(text, str) else text)
        names.append(str(p))
    return names


def test_driver_exit_codes_and_marker_size(tmp_path: Path) -> None:
    o, a, b = _files(tmp_path, BASE, OURS_BOTH, THEIRS_BOTH)
    os.chmod(a, 0o600)
    rc = main(["merge-driver", o, a, b, "--marker-size", "9", "--conflict-style", "diff3",
               "--path", "m.py", "--min-confidence", "0.5"])  # fmt: skip
    assert rc == 1
    out = Path(a).read_text()
    (hunk,) = parse_conflicts(out)
    assert hunk.marker_size == 9 and out.count("<" * 9 + " ours") == 1
    assert (os.stat(a).st_mode & 0o777) == 0o600

    o, a, b = _files(tmp_path, BASE, OURS_RESOLVABLE, BASE)
    assert main(["merge-driver", o, a, b]) == 0
    assert Path(a).read_text() == OURS_RESOLVABLE


def test_driver_two_way_style_and_non_python_paths(tmp_path: Path) -> None:
    o, a, b = _files(tmp_path, BASE, OURS_RESOLVABLE, THEIRS_RESOLVABLE)
    rc = main(["merge-driver", o, a, b, "--path", "notes.txt", "--conflict-style", "merge"])
    assert rc == 1  # not Python: line-level merge only
    (hunk,) = parse_conflicts(Path(a).read_text())
    assert hunk.base is None


def test_driver_falls_back_to_git_for_non_utf8(tmp_path: Path) -> None:
    o, a, b = _files(
        tmp_path,
        b"x = '\xe9'\nz = 0\ny = 1\n",
        b"x = '\xe9'\nz = 0\ny = 2\n",
        b"x = '\xe8'\nz = 0\ny = 1\n",
    )
    assert main(["merge-driver", o, a, b]) == 0
    assert Path(a).read_bytes() == b"x = '\xe8'\nz = 0\ny = 2\n"
