"""The step scheduler: what one engine step runs for the turns in flight.

A turn is a generator that yields `StreamEvent`s for its client and `Feed`s for the model: "run these
tokens through this state". The engine gathers the feeds of all turns and runs them in steps. Each step
is one batched forward over every turn that feeds a single token (decoding), plus at most
`prefill_budget` tokens of prompt taken from turns that prefill, shortest remaining first, whose chunks
share one more batched forward (per round: a turn whose prompt is done may add its next one). A long prompt
therefore advances chunk by chunk between the other turns' decode steps, and a cancellation is seen between
chunks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Sequence
from typing import Any

import attrs

from .ports.model import RowRejected
from .values import StreamEvent

__all__ = ["Feed", "PendingFeed", "plan_step", "run_decode", "run_prompts", "DEFAULT_PREFILL_BUDGET", "WAIT", "Steps"]

# Prompt tokens per engine step (all prefilling turns together). Measured on a 2-core CPU with the default
# model: 128 tokens at a 32K-token position take about 0.4 s (256: 0.7 s, 512: 1.5 s), and prefill throughput
# was no lower than with 256 in benchmarks/server.py --fairness (RESULTS.md).
DEFAULT_PREFILL_BUDGET = 128


@attrs.frozen(eq=False)
class Feed:
    """Model work a turn asks for: append `ids` to `state` through `model` (the turn resumes when done).

    `chunk` caps the tokens of this feed run in one step (None: only the step's budget); `progress`, if
    given, is called before each prompt piece with (tokens done so far, the most a piece may take).
    A feed without ids (`WAIT`) runs nothing: the turn is resumed at the next step (it waits on another).
    """

    model: Any
    state: Any
    ids: Sequence[int]
    chunk: int | None = None
    progress: Callable[[int, int], None] | None = None


WAIT = Feed(None, None, ())

# What a turn is: a generator of events for its client and feeds for the engine (which may throw into it).
Steps = Generator[StreamEvent | Feed, None, None]


@attrs.define(eq=False)
class PendingFeed:
    """A feed being served: how many of its ids are in the state so far."""

    feed: Feed
    done: int = 0

    @property
    def remaining(self) -> int:
        return len(self.feed.ids) - self.done

    @property
    def decoding(self) -> bool:
        """A single token: it joins the step's batched forward."""
        return len(self.feed.ids) == 1 and self.done == 0


@attrs.frozen
class StepPlan:
    """One step: the feeds decoded together, and the prefill chunks (feed, token count) run after them."""

    decode: list[Any]
    prefill: list[tuple[Any, int]]


def plan_step(pending: Sequence[tuple[Any, PendingFeed]], budget: int, full: int | None = None) -> StepPlan:
    """Choose the work of one step from (owner, feed) pairs in arrival order; owners come back in the plan.

    `budget` is what is left of the step's `full` budget (default: all of it). A feed that one full
    budget would take whole is not cut to fit what other feeds left: it waits for the next step, so a
    short prompt is one forward, as it is alone (and each piece costs a forward's fixed overhead).
    """
    full = budget if full is None else full
    decode = [owner for owner, p in pending if p.decoding]
    prefill: list[tuple[Any, int]] = []
    left = budget
    # Shortest remaining prompt first: a new short turn starts at once instead of queueing behind a long
    # prefill, which still gets whatever budget the short ones leave (ties keep arrival order).
    for owner, p in sorted(pending, key=lambda pair: pair[1].remaining):
        if p.decoding or left <= 0 or p.remaining <= 0:
            continue
        whole = min(p.remaining, p.feed.chunk or p.remaining)
        if whole > left and whole <= full and left < full:
            continue
        take = min(whole, left)
        prefill.append((owner, take))
        left -= take
    return StepPlan(decode, prefill)


def run_decode(feeds: Sequence[PendingFeed]) -> list[BaseException | None]:
    """Feed one token to each state, one batched call per model; return each row's error (None: done).

    A model without `decode_batch` (or a batch of one) is run row by row, each row failing alone. A row the
    model rejects up front (`RowRejected`) fails alone and the others run without it; a batch that fails
    otherwise fails all of its rows: each turn restores its session from its own checkpoint.
    """
    errors: list[BaseException | None] = [None] * len(feeds)
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(feeds):
        groups.setdefault(id(p.feed.model), []).append(i)
    for rows in groups.values():
        model = feeds[rows[0]].feed.model
        batch = getattr(model, "decode_batch", None)
        if batch is not None and len(rows) > 1:
            _run_batch(functools.partial(_decode_rows, batch, feeds), rows, errors)
            continue
        for i in rows:
            try:
                model.append(feeds[i].feed.state, feeds[i].feed.ids)
            except BaseException as exc:  # noqa: BLE001 - handed to the row's turn
                errors[i] = exc
    for p, err in zip(feeds, errors, strict=True):
        if err is None:
            p.done = 1
    return errors


def run_prompts(chunks: Sequence[tuple[PendingFeed, int]]) -> list[BaseException | None]:
    """Feed each (feed, count) its next `count` ids, one `append_batch` per model; return each row's error.

    A row the model rejects up front (`RowRejected`) fails alone and the others run without it; a batch
    that fails otherwise fails all of its rows. A model without `append_batch` runs `append` row by row.
    """
    errors: list[BaseException | None] = [None] * len(chunks)
    groups: dict[int, list[int]] = {}
    for i, (p, _) in enumerate(chunks):
        groups.setdefault(id(p.feed.model), []).append(i)
    runs = [p.feed.ids[p.done : p.done + count] for p, count in chunks]
    for rows in groups.values():
        model = chunks[rows[0]][0].feed.model
        batch = getattr(model, "append_batch", None)
        if batch is None or len(rows) == 1:
            for i in rows:
                try:
                    model.append(chunks[i][0].feed.state, runs[i])
                except BaseException as exc:  # noqa: BLE001 - handed to the row's turn
                    errors[i] = exc
            continue
        _run_batch(functools.partial(_prompt_rows, batch, chunks, runs), rows, errors)
    for (p, _), run, err in zip(chunks, runs, errors, strict=True):
        if err is None:
            p.done += len(run)
    return errors


def _decode_rows(batch: Callable[..., None], feeds: Sequence[PendingFeed], part: list[int]) -> None:
    batch([feeds[i].feed.state for i in part], [feeds[i].feed.ids[0] for i in part])


def _prompt_rows(batch: Callable[..., None], chunks: Sequence[tuple[PendingFeed, int]],
                 runs: Sequence[Sequence[int]], part: list[int]) -> None:
    batch([chunks[i][0].feed.state for i in part], [runs[i] for i in part])


def _run_batch(call: Callable[[list[int]], None], rows: list[int], errors: list[BaseException | None]) -> None:
    """One batched model call over `rows` (`call(rows)`), retried without each row it rejects up front."""
    while rows:
        try:
            call(rows)
            return
        except RowRejected as exc:
            errors[rows[exc.row]] = exc.error
            rows = rows[: exc.row] + rows[exc.row + 1 :]
        except BaseException as exc:  # noqa: BLE001 - handed to the rows' turns
            for i in rows:
                errors[i] = exc
            return
