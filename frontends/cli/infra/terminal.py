"""Small terminal facts the REPLs need: display width of text, and quiet input while a turn runs."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from typing import TextIO

from wcwidth import wcwidth

__all__ = ["cell_width", "fit_tail", "no_echo", "columns"]


def cell_width(ch: str) -> int:
    """Columns a character takes on a terminal (wcwidth's tables: 2 for wide East Asian characters and
    emoji, 0 for combining marks and zero-width characters); control characters count 0."""
    return max(0, wcwidth(ch))


def fit_tail(text: str, width: int) -> str:
    """Return the longest end of `text` that fits in `width` columns."""
    used, start = 0, len(text)
    while start > 0 and used + cell_width(text[start - 1]) <= width:
        start -= 1
        used += cell_width(text[start])
    return text[start:]


def columns(default: int = 80) -> int:
    return shutil.get_terminal_size((default, 24)).columns


@contextlib.contextmanager
def no_echo(stream: TextIO | None = None) -> Iterator[None]:
    """Stop the terminal echoing keys typed while an answer streams (they would break the live line).

    Typed-ahead keys stay buffered and reach the next prompt; Ctrl-C still interrupts.
    """
    stream = stream or sys.stdin
    try:
        import termios

        fd = stream.fileno()
        old = termios.tcgetattr(fd) if stream.isatty() else None
    except (AttributeError, ValueError, OSError, ImportError):
        old = None
    if old is None:
        yield
        return
    new = list(old)
    new[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSANOW, new)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, old)
