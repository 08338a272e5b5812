"""Several choices from one prompt: prefill once, fork the state in memory, sample each copy on its own.

Only for stateless requests: a session keeps one reply, and which of n it should keep has no good answer.
Each choice is a turn of its own on the engine thread (they interleave token by token) with its own
random stream, drawn from the request's seed when it has one.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence

from .engine import TurnHandle
from .errors import InvalidRequest
from .generation import Generation
from .session import Session
from .sessions import SessionService
from .values import ChatRequest, SamplingParams, StreamEvent, Usage

__all__ = ["start_choices", "choice_rngs", "MAX_CHOICES"]

MAX_CHOICES = 16


def choice_rngs(seed: int | None, n: int, entropy: Callable[[], int]) -> list[random.Random]:
    """n independent random streams; a seed makes all of them reproducible."""
    base = random.Random(seed if seed is not None else entropy())
    return [random.Random(base.getrandbits(64)) for _ in range(n)]


def _choice(service: SessionService, state, params: SamplingParams, request: ChatRequest, rng: random.Random,
            thinking: bool, room: int, prompt_tokens: int, matcher) -> Iterator[StreamEvent]:
    gen = Generation(model=service.model, tok=service.tok, state=state, params=params,
                     rules=service.stop_rules(request), rng=rng, thinking=thinking,
                     max_new=min(params.max_tokens, room), matcher=matcher)
    yield from gen.run()
    usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=gen.out.completion_tokens,
                  reasoning_tokens=gen.out.reasoning_tokens)
    yield StreamEvent("done", finish_reason=gen.out.finish_reason, usage=usage)


def _prefilled(service: SessionService, request: ChatRequest, n: int):
    """On the engine thread: the prepared turn and n states holding its prompt (one prefill, n-1 forks),
    each held under the KV budget with room to answer; with the functions that release them."""
    now = service.clock.now()
    s = Session("stateless", None, service.default_max_seq_len, now, now)
    service.memory.make_room(0)
    s.state = service.model.new_state(service.default_max_seq_len)
    states, releases = [s.state], [service.hold(s.state)]
    try:
        turn = service.runner.prepare(s, request)
        total = len(turn.context_ids) + len(turn.gen_ids) + min(turn.room, request.sampling.max_tokens)
        service.reserve(s.state, total, n - 1)
        service.model.append(s.state, turn.context_ids + turn.gen_ids)
        for _ in range(n - 1):
            states.append(service.model.fork(s.state))
            releases.append(service.hold(states[-1]))
    except BaseException:
        for release in releases:
            release()
        raise
    return turn, states, releases


def start_choices(service: SessionService, request: ChatRequest, n: int) -> Sequence[TurnHandle]:
    """Start n choices of a stateless chat turn; validation errors raise here, before any event."""
    if request.session_id is not None:
        raise InvalidRequest("n > 1 works only without session_id: a session keeps one reply", param="n")
    if not 1 <= n <= MAX_CHOICES:
        raise InvalidRequest(f"n must be between 1 and {MAX_CHOICES}", param="n")
    turn, states, releases = service.engine.call(lambda: _prefilled(service, request, n))
    tok = service.tok
    thinking = bool(tok.think_open) and turn.gen_text.rstrip().endswith(tok.think_open)
    prompt_tokens = len(turn.context_ids) + len(turn.gen_ids)
    rngs = choice_rngs(request.sampling.seed, n, service.entropy)
    matchers = [turn.matcher] + [service.runner.matcher(request.sampling) for _ in range(n - 1)]
    return [service.engine.submit(_choice(service, state, request.sampling, request, rng, thinking, turn.room,
                                          prompt_tokens, matcher),
                                  on_exit=release)
            for state, release, rng, matcher in zip(states, releases, rngs, matchers, strict=True)]
