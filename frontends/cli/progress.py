"""Progress display for long work: a spinner for waits without a measure, a tqdm bar for ingest.

Both draw on stderr and only when it is a terminal, so pipes and --json output stay clean.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

__all__ = ["spinner", "byte_bar"]

_FRAMES = "|/-\\"


@contextlib.contextmanager
def spinner(label: str, stream: TextIO | None = None, interval: float = 0.1) -> Iterator[None]:
    """Show `label` with a spinner and the elapsed seconds until the block ends."""
    out = stream or sys.stderr
    if not out.isatty():
        yield
        return
    stop = threading.Event()
    start = time.monotonic()

    def draw() -> None:
        i = 0
        while not stop.wait(interval):
            out.write(f"\r{_FRAMES[i % len(_FRAMES)]} {label} {time.monotonic() - start:.1f}s\x1b[K")
            out.flush()
            i += 1

    thread = threading.Thread(target=draw, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        out.write("\r\x1b[K")
        out.flush()


def byte_bar(total: int, label: str, enabled: bool, stream: TextIO | None = None):
    """Return a tqdm bar counting bytes (a disabled one when `enabled` is false or stderr is no terminal)."""
    from tqdm import tqdm

    out = stream or sys.stderr
    return tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, file=out,
                disable=not (enabled and out.isatty()), leave=False, dynamic_ncols=True)
