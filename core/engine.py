"""The engine thread: all model work runs here; each step batches every turn in flight (see scheduler)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import attrs

from .scheduler import DEFAULT_PREFILL_BUDGET, Feed, PendingFeed, Steps, plan_step, run_decode, run_prompts
from .values import StreamEvent

__all__ = ["Engine", "TurnHandle", "TurnCancelled"]

_END = object()
_T = TypeVar("_T")


class TurnCancelled(Exception):
    """The turn was cancelled before it finished; the session is as it was before."""


@attrs.define(eq=False)
class TurnHandle:
    """The caller's side of a running turn: read its events, or cancel it."""

    _events: queue.Queue[Any] = attrs.Factory(queue.Queue)
    _cancel: threading.Event = attrs.Factory(threading.Event)
    submitted_at: float = attrs.Factory(time.monotonic)
    started_at: float | None = None

    @property
    def queue_seconds(self) -> float | None:
        """Seconds the turn waited for the engine thread before its first step (None: not started)."""
        return None if self.started_at is None else self.started_at - self.submitted_at

    def cancel(self) -> None:
        """Ask the engine to stop the turn at its next step (within one prefill chunk) and restore the session."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def events(self, timeout: float | None = None) -> Iterator[StreamEvent]:
        """Yield events until the turn ends; re-raise the turn's error, if any."""
        while True:
            item = self._events.get(timeout=timeout)
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _put(self, item: Any) -> None:
        self._events.put(item)


@attrs.define(eq=False)
class _Task:
    handle: TurnHandle
    steps: Steps
    on_exit: Callable[[], None]
    pending: PendingFeed | None = None
    error: BaseException | None = None  # the model's error on the last feed, raised inside the turn next


class Engine:
    """Own the model on one thread. Calls run between steps; a step serves every turn in flight at once.

    `prefill_budget` bounds the prompt tokens of one step, so no step (and no call waiting for one) runs
    longer than a decode batch plus that many prompt tokens.
    """

    def __init__(self, name: str = "superlinear-engine", prefill_budget: int = DEFAULT_PREFILL_BUDGET):
        if prefill_budget < 1:
            raise ValueError(f"prefill_budget must be positive, got {prefill_budget}")
        self.prefill_budget = prefill_budget
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._active: list[_Task] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.steps = 0

    def start(self) -> Engine:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel running turns and stop the thread."""
        self._stopping.set()
        self._inbox.put(None)
        self._thread.join(timeout)

    def submit(
        self, steps: Steps, on_exit: Callable[[], None] = lambda: None
    ) -> TurnHandle:
        """Schedule a turn; `on_exit` runs on the engine thread when it ends in any way."""
        handle = TurnHandle()
        self._inbox.put(_Task(handle, steps, on_exit))
        return handle

    def call(self, fn: Callable[[], _T], timeout: float | None = None) -> _T:
        """Run `fn` on the engine thread between steps and return its result (or raise its error)."""
        if threading.current_thread() is self._thread:
            return fn()
        box: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
        self._inbox.put((fn, box))
        ok, value = box.get(timeout=timeout)
        if ok:
            return cast(_T, value)
        raise value

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._drain_inbox(block=not self._active)
            if self._active:
                self._step()
        for task in self._active:
            self._finish(task, TurnCancelled("the server is shutting down"), close=True)

    def _drain_inbox(self, block: bool) -> None:
        try:
            item = self._inbox.get(block=block)
            while True:
                self._accept(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            return

    def _accept(self, item: Any) -> None:
        if isinstance(item, _Task):
            self._active.append(item)
        elif isinstance(item, tuple):
            fn, box = item
            try:
                box.put((True, fn()))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box.put((False, exc))

    def _step(self) -> None:
        """Advance every turn to its next feed, then run one step of model work."""
        for task in list(self._active):
            if task.pending is None or task.handle.cancelled or not task.pending.feed.ids:  # no ids: WAIT
                self._advance(task)
        ready = [(t, t.pending) for t in self._active if t.pending is not None and t.pending.feed.ids]
        if not ready:
            return
        self.steps += 1
        plan = plan_step(ready, self.prefill_budget)
        errors = run_decode([t.pending for t in plan.decode])
        for task, err in zip(plan.decode, errors, strict=True):
            self._fed(task, err)
        self._prefill_round(plan.prefill, self.prefill_budget)

    def _prefill_round(self, chunks: list[tuple[_Task, int]], left: int) -> None:
        """Run the step's prompt chunks, one batched forward per round; a turn whose prompt is done moves on
        to its next prompt feed (a chat turn has two: context, then the generation prompt) within the same
        budget, in the next round."""
        while chunks:
            left -= sum(count for _, count in chunks)
            finished = self._prefill(chunks)
            if left <= 0:
                return
            for task in finished:
                self._advance(task)
            more = [(t, t.pending) for t in finished
                    if t.pending is not None and not t.pending.decoding and t.pending.remaining > 0]
            chunks = plan_step(more, left, self.prefill_budget).prefill

    def _advance(self, task: _Task) -> None:
        """Run the turn's own code until it asks for model work or ends; cancellation ends it here."""
        if task.handle.started_at is None:
            task.handle.started_at = time.monotonic()
        if task.handle.cancelled:
            self._finish(task, TurnCancelled("the turn was cancelled"), close=True)
            return
        try:
            item = self._resume(task)
            while not isinstance(item, Feed):
                task.handle._put(item)
                item = next(task.steps)
        except StopIteration:
            self._finish(task, None)
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            self._finish(task, exc)
            return
        task.pending = PendingFeed(item)

    def _resume(self, task: _Task) -> Any:
        """Send the turn the outcome of its last feed: resume it, or raise the model's error inside it."""
        error, task.pending, task.error = task.error, None, None
        if error is not None:
            return task.steps.throw(error)
        return next(task.steps)

    def _fed(self, task: _Task, error: BaseException | None) -> None:
        if error is not None:
            task.error, task.pending = error, None
        elif task.pending is not None and task.pending.remaining == 0:
            task.pending = None

    def _prefill(self, chunks: list[tuple[_Task, int]]) -> list[_Task]:
        """Feed each turn `count` more prompt tokens (together); return the turns whose feed is complete.

        Each feed's progress is reported first; a model error is raised inside the turn, which restores
        its session.
        """
        rows: list[tuple[_Task, PendingFeed, int]] = []
        for task, count in chunks:
            p = task.pending
            if p is None:
                continue
            try:
                if p.feed.progress is not None:
                    p.feed.progress(p.done, min(p.feed.chunk or self.prefill_budget, self.prefill_budget))
            except BaseException as exc:  # noqa: BLE001 - raised inside the turn
                self._fed(task, exc)
                continue
            rows.append((task, p, count))
        errors = run_prompts([(p, count) for _, p, count in rows])
        finished = []
        for (task, _, _), err in zip(rows, errors, strict=True):
            self._fed(task, err)
            if err is None and task.pending is None:
                finished.append(task)
        return finished

    def _finish(self, task: _Task, error: BaseException | None, close: bool = False) -> None:
        if task in self._active:
            self._active.remove(task)
        try:
            if close:
                task.steps.close()
        finally:
            task.on_exit()
            if error is not None:
                task.handle._put(error)
            task.handle._put(_END)
