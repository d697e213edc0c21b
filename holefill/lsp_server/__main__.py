"""`python -m holefill.lsp_server [--tcp HOST:PORT]`: the server without the full CLI."""

from __future__ import annotations

import argparse

from holefill.config import Settings
from holefill.lsp_server.server import run_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m holefill.lsp_server")
    parser.add_argument(
        "--tcp", metavar="HOST:PORT", help="serve on TCP (host 127.0.0.1 by default)"
    )
    args = parser.parse_args(argv)
    run_server(Settings.from_env(), tcp=args.tcp)


if __name__ == "__main__":
    main()
