"""The CLI's own commands and slash commands, registered through the same hooks as third-party ones."""

from __future__ import annotations

from superlinear.plugins import hookimpl

from .commands.manage import add_ls_parser, add_rm_parser
from .commands.server import add_server_parser
from .commands.session import add_session_parser
from .commands.snapshot import add_snapshot_parser
from .docs.repl import add_docs_parser
from .docs.slash import DOCS_COMMANDS
from .repl.chat import add_chat_parser
from .repl.slash import BUILTIN_COMMANDS

__all__ = ["BUILTIN_CLI_COMMANDS", "superlinear_cli_commands", "superlinear_repl_commands"]

# Order of `spl --help`; plugins' commands follow, by name.
BUILTIN_CLI_COMMANDS = ("server", "chat", "docs", "ls", "rm", "session", "snapshot")


@hookimpl
def superlinear_cli_commands(register) -> None:
    """Register `spl server|chat|docs|ls|rm|session|snapshot`."""
    adders = (add_server_parser, add_chat_parser, add_docs_parser, add_ls_parser, add_rm_parser,
              add_session_parser, add_snapshot_parser)
    for name, add in zip(BUILTIN_CLI_COMMANDS, adders, strict=True):
        register(name, add)


@hookimpl
def superlinear_repl_commands(register) -> None:
    """Register the slash commands of `spl chat` and `spl docs`."""
    for name, handler, help_text in (*BUILTIN_COMMANDS, *DOCS_COMMANDS):
        register(name, handler, help_text)
