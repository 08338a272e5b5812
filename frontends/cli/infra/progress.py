"""Progress display for long work, drawn by rich: a spinner for waits without a measure, bars for ingest.

All draw on stderr and only when it is a terminal, so pipes and --json output stay clean; each clears its
line when its block ends.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    ProgressColumn,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as _Progress

__all__ = ["spinner", "byte_bar", "prefill_watch"]


def _live(out: TextIO, *columns: ProgressColumn, refresh: float = 10.0) -> _Progress:
    console = Console(file=out, markup=False, highlight=False, emoji=False)
    return _Progress(*columns, console=console, transient=True, refresh_per_second=refresh)


@contextlib.contextmanager
def spinner(label: str, stream: TextIO | None = None, interval: float = 0.1) -> Iterator[None]:
    """Show `label` with a spinner and the elapsed time until the block ends."""
    out = stream or sys.stderr
    if not out.isatty():
        yield
        return
    with _live(out, SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
               refresh=1 / interval) as progress:
        progress.add_task(label, total=None)
        yield


@contextlib.contextmanager
def byte_bar(total: int, label: str, enabled: bool, stream: TextIO | None = None) -> Iterator[Callable[[int], None]]:
    """Draw a bar counting bytes while the block runs; yield the function that advances it by n bytes.

    Nothing is drawn when `enabled` is false or stderr is no terminal (the function then does nothing).
    """
    out = stream or sys.stderr
    if not (enabled and out.isatty()):
        yield lambda n: None
        return
    with _live(out, TextColumn("{task.description}:"), TaskProgressColumn(), BarColumn(),
               DownloadColumn(binary_units=True), TransferSpeedColumn(), TimeRemainingColumn()) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


@contextlib.contextmanager
def prefill_watch(read: Callable[[], dict | None], label: str, enabled: bool, interval: float = 0.5,
                  stream: TextIO | None = None) -> Iterator[None]:
    """While the block runs, poll `read()` (a session's `prefill` field) and draw a bar in tokens.

    The bar appears once a prefill is reported: tokens done of the total, the server's tokens per second and
    time left, and the chunk. Errors of `read` (a busy or restarting server) only skip that poll.
    """
    out = stream or sys.stderr
    if not (enabled and out.isatty()):
        yield
        return
    stop = threading.Event()
    progress = _live(out, TextColumn("{task.description}:"), TaskProgressColumn(), BarColumn(),
                     TextColumn("{task.completed:,.0f}/{task.total:,.0f} tok"), TextColumn("{task.fields[detail]}"))

    def watch() -> None:
        task = None
        while not stop.wait(interval):
            try:
                prefill = read()
            except Exception:  # noqa: BLE001 - progress is best effort; the turn itself reports errors
                continue
            if not prefill:
                continue
            if task is None:
                progress.start()
                task = progress.add_task(label, total=prefill["total"], detail="")
            progress.update(task, total=prefill["total"], completed=prefill["done"], detail=_detail(prefill))
        if task is not None:
            progress.stop()

    with _in_background(watch, stop):
        yield


def _detail(prefill: dict) -> str:
    rate, left = prefill.get("tokens_per_second") or 0, prefill.get("seconds_left")
    return ((f"{rate:,.0f} tok/s, " if rate else "") + (f"{left:.0f}s left, " if left is not None else "")
            + f"chunk {prefill.get('chunks_done', 0)}/{prefill.get('chunks_total', 0)}")


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
