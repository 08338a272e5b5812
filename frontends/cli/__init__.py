"""The `spl` command line and its REPLs.

Plugin authors: a slash command handler is `handler(repl, arg)`; mark one that only makes sense in some
REPLs with `for_repls("chat")` or `for_repls("docs")`.
"""

from .main import build_parser, main
from .repl.base import Repl, for_repls

__all__ = ["Repl", "build_parser", "for_repls", "main"]
