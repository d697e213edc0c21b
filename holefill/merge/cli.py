"""``holefill resolve`` and ``holefill merge-driver``.

``register(subparsers)`` adds both subcommands to the main CLI; each sets ``func`` to a function
that takes the parsed Namespace and returns the exit code.  ``python -m holefill.merge.cli`` runs
them standalone.

Exit codes.  resolve: 0 when no conflict block is left, 1 when some are left (abstained), 2 on an
error (unreadable file, malformed markers; such a file is never written).  merge-driver (git's
contract): the result is written into OURS; 0 when clean, 1 when conflicts remain, 2 on an error.

Git set-up::

    git config merge.holefill.name "holefill merge driver"
    git config merge.holefill.driver "holefill merge-driver %O %A %B --marker-size %L --path %P"
    echo '*.py merge=holefill' >> .gitattributes
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .resolver import (
    ConflictError,
    FileResolution,
    atomic_write,
    decode_source,
    merge_texts,
    resolve_file,
)

__all__ = ["main", "main_merge_driver", "main_resolve", "register"]


def _confidence(value: str) -> float:
    x = float(value)
    if not 0.0 <= x <= 1.0:
        raise argparse.ArgumentTypeError("confidence must be within [0, 1]")
    return x


def register(subparsers: Any) -> None:
    """Add the ``resolve`` and ``merge-driver`` subcommands to an argparse subparsers object."""
    p = subparsers.add_parser(
        "resolve",
        help="resolve merge-conflict markers in Python files",
        description="Resolve conflict blocks (diff3 style with a base section, or two-way with the "
        "base from git's index stages). A block is replaced only when the classifier is confident "
        "and the file still parses; otherwise it is left exactly as it was. Without --write, "
        "prints what it would do.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--write", action="store_true", help="write resolved files (atomically)")
    p.add_argument("--json", action="store_true", help="print one JSON list of per-hunk results")
    p.add_argument(
        "--min-confidence",
        type=_confidence,
        default=None,
        metavar="X",
        help="confidence threshold for both stages (default: the classifier's, chosen for "
        "precision, and 0.9 for structured merges)",
    )
    p.add_argument("--marker-size", type=int, default=None, help="default: detected")
    p.add_argument("--no-git", action="store_true", help="do not look at git's index stages")
    p.set_defaults(func=main_resolve)

    d = subparsers.add_parser(
        "merge-driver",
        help="git merge driver: three-way merge, then resolve the conflicts it can",
        description="git merge driver (merge.<name>.driver = 'holefill merge-driver %%O %%A %%B "
        "--marker-size %%L --path %%P'). Writes the result into OURS; exit 0 when clean, 1 when "
        "conflicts remain.",
    )
    d.add_argument("base", metavar="BASE")
    d.add_argument("ours", metavar="OURS")
    d.add_argument("theirs", metavar="THEIRS")
    d.add_argument("--marker-size", type=int, default=7)
    d.add_argument("--path", default=None, help="the real path of the file (git's %%P)")
    d.add_argument("--min-confidence", type=_confidence, default=None, metavar="X")
    d.add_argument(
        "--conflict-style",
        choices=("merge", "diff3"),
        default=None,
        help="markers for the conflicts left (default: git's merge.conflictStyle, else merge)",
    )
    d.add_argument("--ours-label", default=None)
    d.add_argument("--base-label", default=None)
    d.add_argument("--theirs-label", default=None)
    d.set_defaults(func=main_merge_driver)


# --------------------------------------------------------------------------- resolve


def _hunk_records(path: str, res: FileResolution) -> list[dict[str, Any]]:
    out = []
    for r in res.hunks:
        out.append(
            {
                "path": path,
                "hunk": r.hunk.index,
                "status": r.status,
                "stage": r.stage,
                "pattern": r.pattern,
                "confidence": None if r.confidence is None else round(r.confidence, 4),
                "text": r.text,
                "line": r.hunk.start_line + 1,
                "end_line": r.hunk.end_line + 1,
                "base_source": r.base_source,
                "reason": r.reason,
            }
        )
    return out


def main_resolve(args: argparse.Namespace) -> int:
    """``holefill resolve FILE... [--write] [--json] [--min-confidence X]``."""
    records: list[dict[str, Any]] = []
    errors = 0
    remaining = 0
    out = sys.stdout
    for name in args.files:
        try:
            res = resolve_file(
                name,
                write=args.write,
                min_confidence=args.min_confidence,
                marker_size=getattr(args, "marker_size", None),
                use_git=not getattr(args, "no_git", False),
            )
        except (ConflictError, OSError) as exc:
            errors += 1
            print(f"holefill resolve: {name}: {exc}", file=sys.stderr)
            continue
        remaining += res.remaining
        recs = _hunk_records(name, res)
        records.extend(recs)
        if args.json:
            continue
        if not res.hunks:
            print(f"{name}: no conflict markers", file=out)
            continue
        for r in recs:
            if r["status"] == "resolved":
                line = f"resolved ({r['stage']}: {r['pattern']}, p={r['confidence']:.2f})"
            elif r["pattern"]:
                line = f"abstained: {r['reason']} (best {r['pattern']})"
            else:
                line = f"abstained: {r['reason']}"
            print(f"{name}:{r['line']}: hunk {r['hunk']}: {line}", file=out)
            if r["status"] == "resolved" and not args.write:
                for text_line in (r["text"] or "").splitlines():
                    print(f"    | {text_line}", file=out)
        verb = "wrote" if args.write and res.resolved else "would resolve"
        print(f"{name}: {verb} {res.resolved}/{len(res.hunks)} conflict(s)", file=out)
    if args.json:
        json.dump(records, out, indent=1)
        out.write("\n")
    if errors:
        return 2
    return 1 if remaining else 0


# --------------------------------------------------------------------------- merge driver


def _git_conflict_style() -> str:
    try:
        proc = subprocess.run(
            ["git", "config", "--get", "merge.conflictStyle"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "merge"
    style = proc.stdout.strip().lower()
    return "diff3" if style in ("diff3", "zdiff3") else "merge"


def _git_merge_file(args: argparse.Namespace, labels: tuple[str, str, str]) -> int:
    """git's own merge, for inputs we cannot handle (not UTF-8)."""
    cmd = ["git", "merge-file", f"--marker-size={args.marker_size}"]
    for label in labels:
        cmd += ["-L", label]
    cmd += [args.ours, args.base, args.theirs]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"holefill merge-driver: git merge-file failed: {exc}", file=sys.stderr)
        return 2
    return 0 if proc.returncode == 0 else 1


def main_merge_driver(args: argparse.Namespace) -> int:
    """``holefill merge-driver BASE OURS THEIRS [--marker-size L] [--path P]``."""
    labels = (
        args.ours_label or "ours",
        args.base_label or "base",
        args.theirs_label or "theirs",
    )
    try:
        raw = [Path(p).read_bytes() for p in (args.base, args.ours, args.theirs)]
    except OSError as exc:
        print(f"holefill merge-driver: {exc}", file=sys.stderr)
        return 2
    try:
        base, ours, theirs = (
            decode_source(b, p) for b, p in zip(raw, ("base", "ours", "theirs"), strict=True)
        )
    except ConflictError as exc:
        print(f"holefill merge-driver: {exc}; falling back to git merge-file", file=sys.stderr)
        return _git_merge_file(args, labels)
    style = args.conflict_style or _git_conflict_style()
    result = merge_texts(
        base,
        ours,
        theirs,
        marker_size=args.marker_size,
        path=args.path,
        labels=labels,
        style=style,
        min_confidence=args.min_confidence,
    )
    try:
        atomic_write(args.ours, result.text.encode("utf-8"))
    except OSError as exc:
        print(f"holefill merge-driver: cannot write {args.ours}: {exc}", file=sys.stderr)
        return 2
    if result.resolved:
        where = args.path or args.ours
        print(
            f"holefill: {where}: resolved {result.resolved} conflict(s), {result.conflicts} left",
            file=sys.stderr,
        )
    return 0 if result.conflicts == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m holefill.merge.cli {resolve,merge-driver} ...``."""
    parser = argparse.ArgumentParser(prog="holefill")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
