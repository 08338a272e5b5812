"""Notice a client that went away while its turn runs, and cancel the turn within one decode step."""

from __future__ import annotations

import queue
import socket
import time
from collections.abc import Iterator

from superlinear.core import StreamEvent, TurnHandle

__all__ = ["ClientGone", "ClientWatch", "watched_events", "POLL_SECONDS", "IDLE", "IDLE_SECONDS"]

# How often a waiting request looks at its client's socket; well under one decode step on any device.
POLL_SECONDS = 0.05
# After this long without an event (a long prefill), `watched_events` yields IDLE so a stream can send
# something: clients with a read timeout (the published spl client's) would otherwise give up.
IDLE_SECONDS = 10.0
IDLE = object()


class ClientGone(Exception):
    """The client closed its connection; its turn was cancelled."""


class ClientWatch:
    """Peek at the request's socket (gunicorn passes it as `gunicorn.socket`) for end-of-file.

    A readable socket with bytes waiting is a client that pipelined its next request: alive, and the
    watch stops looking (the bytes stay for the server to read). Without a socket it never fires.
    """

    def __init__(self, sock: socket.socket | None):
        self._sock = sock
        self._done = sock is None

    def gone(self) -> bool:
        """Return True once the peer has closed the connection."""
        if self._done:
            return False
        try:
            data = self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        if data:
            self._done = True
            return False
        return True


def _next(handle: TurnHandle, timeout: float) -> StreamEvent | None:
    """Return the next event, None after `timeout`; StopIteration when the turn ended."""
    try:
        return next(handle.events(timeout=timeout))
    except queue.Empty:
        return None


def watched_events(handle: TurnHandle, watch: ClientWatch, poll: float = POLL_SECONDS) -> Iterator[StreamEvent]:
    """Yield the turn's events, and IDLE after each IDLE_SECONDS without one (read at call time).

    Cancel the turn and raise ClientGone when the client leaves.
    """
    # The first event is checked at once: a client that left before the turn started must not wait a poll.
    checked = float("-inf")
    last = time.monotonic()
    idle = IDLE_SECONDS
    while True:
        try:
            event = _next(handle, poll)
        except StopIteration:
            return
        now = time.monotonic()
        if event is None or now - checked >= poll:
            checked = now
            if watch.gone():
                handle.cancel()
                raise ClientGone("the client closed the connection")
        if event is not None:
            last = now
            yield event
        elif now - last >= idle:
            last = now
            yield IDLE
