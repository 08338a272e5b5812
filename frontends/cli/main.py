"""`spl`: the command line. Every command talks HTTP to a server; commands come from plugins."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
from collections.abc import Iterable

from superlinear.plugins import DuplicateRegistration, collect

from .builtin import BUILTIN_CLI_COMMANDS
from .infra.client import ApiError
from .infra.locks import SessionLocked
from .registry import make_plugin_manager

__all__ = ["main", "build_parser"]


def _version() -> str:
    try:
        return importlib.metadata.version("superlinear")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser(pm) -> argparse.ArgumentParser:
    """Build the `spl` parser from the commands plugins register in `pm` (built-ins first, then by name)."""
    parser = argparse.ArgumentParser(prog="spl", description="Superlinear: chat, documents, sessions, snapshots "
                                     "and the server.")
    parser.add_argument("--version", action="version", version=f"spl {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = collect(pm, "superlinear_cli_commands")
    order = [n for n in BUILTIN_CLI_COMMANDS if n in commands] + sorted(set(commands) - set(BUILTIN_CLI_COMMANDS))
    for name in order:
        commands[name](sub)
    return parser


def main(argv: list[str] | None = None, *, extra_plugins: Iterable[object] = ()) -> int:
    """Run `spl` with `argv`; return the exit status (0 ok, 1 error, 2 usage, 130 interrupted)."""
    pm = make_plugin_manager(extra_plugins)
    try:
        parser = build_parser(pm)
    except DuplicateRegistration as exc:
        print(f"error: two plugins clash: {exc}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    args.plugin_manager = pm
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code = int(func(args) or 0)
        sys.stdout.flush()  # inside the try: a reader that left shows up here, not at interpreter exit
        return code
    except (ApiError, SessionLocked) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_left()


def _reader_left() -> int:
    """The reader of stdout went away (`spl ls | head`): stop quietly, as other commands do on SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's last flush at exit does not fail again
    return 128 + 13


if __name__ == "__main__":
    sys.exit(main())
