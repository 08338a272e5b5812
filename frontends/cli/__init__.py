"""The `spl` command line and its REPLs."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
