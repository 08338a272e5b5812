"""Progress display for long work: a spinner for waits without a measure, a tqdm bar for ingest.

Both draw on stderr and only when it is a terminal, so pipes and --json output stay clean.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

__all__ = ["spinner", "byte_bar", "prefill_watch"]

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

    try:
        with _in_background(draw, stop):
            yield
    finally:
        out.write("\r\x1b[K")
        out.flush()


def byte_bar(total: int, label: str, enabled: bool, stream: TextIO | None = None):
    """Return a tqdm bar counting bytes (a disabled one when `enabled` is false or stderr is no terminal)."""
    from tqdm import tqdm

    out = stream or sys.stderr
    return tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, file=out,
                disable=not (enabled and out.isatty()), leave=False, dynamic_ncols=True)


@contextlib.contextmanager
def prefill_watch(read: Callable[[], dict | None], label: str, enabled: bool, interval: float = 0.5,
                  stream: TextIO | None = None) -> Iterator[None]:
    """While the block runs, poll `read()` (a session's `prefill` field) and draw a bar in tokens.

    The bar appears once a prefill is reported: tokens done of the total, the chunk, tokens per second and the
    time left. Errors of `read` (a busy or restarting server) only skip that poll.
    """
    out = stream or sys.stderr
    if not (enabled and out.isatty()):
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        bar = None
        while not stop.wait(interval):
            try:
                prefill = read()
            except Exception:  # noqa: BLE001 - progress is best effort; the turn itself reports errors
                continue
            if not prefill:
                continue
            bar = bar or _token_bar(prefill["total"], label, out)
            bar.total = prefill["total"]
            bar.update(prefill["done"] - bar.n)
            bar.set_postfix_str(f"chunk {prefill['chunks_done']}/{prefill['chunks_total']}")
        if bar is not None:
            bar.close()

    with _in_background(watch, stop):
        yield


@contextlib.contextmanager
def _in_background(work: Callable[[], None], stop: threading.Event) -> Iterator[None]:
    """Run `work` on a daemon thread while the block runs; then set `stop` and wait for it to return."""
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _token_bar(total: int, label: str, out: TextIO):
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="tok", unit_scale=True, file=out, leave=False, dynamic_ncols=True)
