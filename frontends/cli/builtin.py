"""The CLI's own commands and slash commands, registered through the same hooks as third-party ones."""

from __future__ import annotations

from ...plugins import hookimpl

__all__ = ["BUILTIN_CLI_COMMANDS", "superlinear_cli_commands", "superlinear_repl_commands"]

# Order of `spl --help`; plugins' commands follow, by name.
BUILTIN_CLI_COMMANDS = ("server", "chat", "docs", "ls", "rm", "session", "snapshot")


@hookimpl
def superlinear_cli_commands(register) -> None:
    """Register `spl server|chat|docs|ls|rm|session|snapshot`."""
    from .chat import add_chat_parser
    from .docs import add_docs_parser
    from .manage_cmd import add_ls_parser, add_rm_parser
    from .server_cmd import add_server_parser
    from .session_cmd import add_session_parser
    from .snapshot_cmd import add_snapshot_parser

    adders = (add_server_parser, add_chat_parser, add_docs_parser, add_ls_parser, add_rm_parser,
              add_session_parser, add_snapshot_parser)
    for name, add in zip(BUILTIN_CLI_COMMANDS, adders, strict=True):
        register(name, add)


@hookimpl
def superlinear_repl_commands(register) -> None:
    """Register the slash commands of `spl chat` and `spl docs`."""
    from .docs_slash import DOCS_COMMANDS
    from .slash import BUILTIN_COMMANDS

    for name, handler, help_text in (*BUILTIN_COMMANDS, *DOCS_COMMANDS):
        register(name, handler, help_text)
