"""Rank 0 drives the other ranks: it broadcasts each model operation, then every rank runs it.

Operations are numbered calls (an op name and plain arguments) sent with ``broadcast_object_list``; a
worker rank runs the same operation on its shard, so the collectives inside line up. One lock orders
the operations of all threads of rank 0. Objects rank 0 lets go of (states, checkpoints) are forgotten
by the workers on the next operation, never from a garbage-collector callback in the middle of one.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch.distributed as dist

__all__ = ["RankLink", "receive"]

STOP = "stop"


class RankLink:
    """Rank 0's end: ``command(op, *args)`` sends the op to every worker and holds the lock while rank 0
    runs it too."""

    def __init__(self, world: int, group=None):
        self.world = world
        self.group = group
        self._lock = threading.RLock()
        # Appended from garbage-collector callbacks, which may run inside ``command`` on the same thread:
        # a deque's append and popleft are atomic, so no lock is needed (one could deadlock there).
        self._forgotten: deque[tuple[str, int]] = deque()
        self.closed = False

    def forget(self, kind: str, handle: int) -> None:
        """Let the workers drop object ``handle`` of ``kind`` ("state", "checkpoint") with the next op."""
        self._forgotten.append((kind, handle))

    @contextmanager
    def command(self, op: str, *args: Any) -> Iterator[None]:
        """Send ``op(*args)`` to the workers, then run the body (rank 0's part) under the lock."""
        with self._lock:
            if self.closed:
                raise RuntimeError("the ranks have been stopped")
            forgotten = [self._forgotten.popleft() for _ in range(len(self._forgotten))]
            dist.broadcast_object_list([(op, args, forgotten)], src=0, group=self.group)
            yield

    def stop(self) -> None:
        """Tell the workers to leave their loop (idempotent)."""
        with self._lock:
            if not self.closed:
                dist.broadcast_object_list([(STOP, (), [])], src=0, group=self.group)
                self.closed = True


def receive(group=None) -> tuple[str, tuple, list[tuple[str, int]]]:
    """A worker's end: wait for rank 0's next operation; returns (op, args, forgotten objects)."""
    box: list[Any] = [None]
    dist.broadcast_object_list(box, src=0, group=group)
    return box[0]
