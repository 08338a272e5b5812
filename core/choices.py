"""Several choices from one prompt: prefill once, fork the state in memory, sample each copy on its own.

Only for stateless requests: a session keeps one reply, and which of n it should keep has no good answer.
Each choice is a turn of its own on the engine thread (they decode batched, step by step) with its own
random stream, drawn from the request's seed when it has one. The first prefills the prompt through the
engine's scheduler and forks it for the others, which wait for it a step at a time.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from .engine import TurnCancelled, TurnHandle
from .errors import InvalidRequest
from .generation import Generation
from .ports import TokenMatcher
from .scheduler import WAIT, Feed, Steps
from .session import Session
from .sessions import SessionService
from .turn import PreparedTurn
from .values import ChatRequest, SamplingParams, StreamEvent, Usage

__all__ = ["start_choices", "choice_rngs", "fan_out", "MAX_CHOICES"]

MAX_CHOICES = 16


def choice_rngs(seed: int | None, n: int, entropy: Callable[[], int]) -> list[random.Random]:
    """n independent random streams; a seed makes all of them reproducible."""
    base = random.Random(seed if seed is not None else entropy())
    return [random.Random(base.getrandbits(64)) for _ in range(n)]


def _choice(service: SessionService, state: Any, params: SamplingParams, request: ChatRequest,
            rng: random.Random, thinking: bool, room: int, prompt_tokens: int,
            matcher: TokenMatcher | None) -> Steps:
    gen = Generation(model=service.model, tok=service.tok, state=state, params=params,
                     rules=service.stop_rules(request), rng=rng, thinking=thinking,
                     max_new=min(params.max_tokens, room), matcher=matcher)
    yield from gen.run()
    usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=gen.out.completion_tokens,
                  reasoning_tokens=gen.out.reasoning_tokens)
    yield StreamEvent("done", finish_reason=gen.out.finish_reason, usage=usage)


def _admitted(service: SessionService, request: ChatRequest,
              n: int) -> tuple[PreparedTurn, Any, Callable[[], None], int]:
    """On the engine thread: the prepared turn and a fresh state for its prompt, held under the KV budget
    with room for n copies of the whole turn; with the function that releases it and the turn's length."""
    now = service.clock.now()
    s = Session("stateless", None, service.default_max_seq_len, now, now)
    service.memory.make_room(0)
    s.allocate(service.model)
    release = service.hold(s.state)
    try:
        turn = service.runner.prepare(s, request)
        total = len(turn.context_ids) + len(turn.gen_ids) + min(turn.room, request.sampling.max_tokens)
        service.reserve(s.state, total, n - 1)
    except BaseException:
        release()
        raise
    return turn, s.state, release, total


@attrs.define(eq=False)
class _Forks:
    """What the first of n turns, which prefills the shared prompt, hands the others (engine thread only)."""

    states: dict[int, Any] | None = None  # turn k's state, once the prompt is in
    error: BaseException | None = None  # why the prefill ended without them
    releases: dict[int, Callable[[], None]] = attrs.Factory(dict)
    gone: set[int] = attrs.Factory(set)  # turns that ended before their state existed

    def failed(self, exc: BaseException | None = None) -> None:
        if self.states is None and self.error is None:
            cancelled = exc is None or isinstance(exc, GeneratorExit)
            self.error = TurnCancelled("the turn that prefilled the shared prompt was cancelled") if cancelled else exc


def _first(service: SessionService, state: Any, prompt_ids: list[int], total: int, n: int, forks: _Forks,
           run: Callable[[Any, int], Steps]) -> Steps:
    """Turn 0: prefill the prompt through the scheduler (in chunks, between other turns' steps), fork it
    for the others still waiting, then run its own choice."""
    try:
        if prompt_ids:
            yield Feed(service.model, state, prompt_ids)
        states = {}
        for k in range(1, n):
            if k not in forks.gone:
                states[k] = service.model.fork(state)
                forks.releases[k] = service.hold(states[k])
        service.share_reservation(state, list(states.values()), total)
        forks.states = states
    except BaseException as exc:
        forks.failed(exc)
        raise
    yield from run(state, 0)


def _other(forks: _Forks, k: int, run: Callable[[Any, int], Steps]) -> Steps:
    """Turn k > 0: wait (a step at a time) for turn 0's prefill, then run its choice on its fork."""
    while forks.states is None and forks.error is None:
        yield WAIT
    if forks.error is not None:
        raise forks.error
    states = forks.states or {}
    yield from run(states[k], k)


def fan_out(service: SessionService, state: Any, release: Callable[[], None], prompt_ids: list[int],
            total: int, n: int, run: Callable[[Any, int], Steps]) -> list[TurnHandle]:
    """Submit n turns sharing one prefill of `prompt_ids` into the held `state`: turn k runs `run(its state,
    k)`. The prefill goes through the engine's scheduler like any prompt; every turn decodes batched."""
    forks = _Forks()

    def first_done() -> None:
        forks.failed()  # ended before forking (cancelled even before it started): the others stop too
        release()

    def other_done(k: int) -> None:
        forks.gone.add(k)
        forks.releases.pop(k, lambda: None)()

    handles = [service.engine.submit(_first(service, state, prompt_ids, total, n, forks, run), on_exit=first_done)]
    handles += [service.engine.submit(_other(forks, k, run), on_exit=functools.partial(other_done, k))
                for k in range(1, n)]
    return handles


def start_choices(service: SessionService, request: ChatRequest, n: int) -> Sequence[TurnHandle]:
    """Start n choices of a stateless chat turn; validation errors raise here, before any event."""
    if request.session_id is not None:
        raise InvalidRequest("n > 1 works only without session_id: a session keeps one reply", param="n")
    if not 1 <= n <= MAX_CHOICES:
        raise InvalidRequest(f"n must be between 1 and {MAX_CHOICES}", param="n")
    turn, state, release, total = service.admit(lambda: _admitted(service, request, n))
    tok = service.tok
    thinking = bool(tok.think_open) and turn.gen_text.rstrip().endswith(tok.think_open or "")
    prompt_tokens = len(turn.context_ids) + len(turn.gen_ids)
    rngs = choice_rngs(request.sampling.seed, n, service.entropy)
    matchers = [turn.matcher] + [service.runner.matcher(request.sampling) for _ in range(n - 1)]

    def run(st: Any, k: int) -> Steps:
        return _choice(service, st, request.sampling, request, rngs[k], thinking, turn.room, prompt_tokens,
                       matchers[k])

    return fan_out(service, state, release, turn.context_ids + turn.gen_ids, total, n, run)
