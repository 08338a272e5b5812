"""`spl`: the command line. Every command talks HTTP to a server."""

from __future__ import annotations

import argparse
import sys

from .chat import add_chat_parser
from .client import ApiError
from .server_cmd import add_server_parser

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spl", description="Superlinear: chat, sessions and the server.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_server_parser(sub)
    add_chat_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
