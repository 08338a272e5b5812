"""The text completion use case: a prompt of token ids in, a continuation out, on a fresh state.

No chat template and no thinking split: the text is the model's continuation as it comes. It runs on the
engine thread like a stateless chat turn and frees its state when it ends.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import attrs

from .choices import MAX_CHOICES, choice_rngs
from .engine import TurnHandle
from .errors import ContextLengthExceeded, InvalidRequest
from .generation import Generation
from .sessions import SessionService
from .values import ChatRequest, SamplingParams, StreamEvent, Usage

__all__ = ["CompletionRequest", "start_completion"]


@attrs.frozen
class CompletionRequest:
    """A text completion as the core sees it: the prompt's token ids and how to sample."""

    prompt_ids: tuple[int, ...]
    sampling: SamplingParams = attrs.field(factory=SamplingParams)


def _check(service: SessionService, request: CompletionRequest) -> int:
    """Validate ids and length; return the room left to generate."""
    ids = request.prompt_ids
    vocab = service.model.info.vocab_size
    if not ids:
        raise InvalidRequest("the prompt must hold at least one token", param="prompt")
    for param, found in (("prompt", ids), ("logit_bias", [i for i, _ in request.sampling.logit_bias])):
        bad = [i for i in found if not 0 <= i < vocab]
        if bad:
            raise InvalidRequest(f"token id {bad[0]} is outside the vocabulary of {vocab} ids", param=param)
    cap = service.max_prompt_tokens
    if cap is not None and len(ids) > cap:
        raise ContextLengthExceeded(f"the prompt has {len(ids)} tokens; this server accepts at most {cap} "
                                    "(--max-prompt-tokens)", param="prompt")
    room = service.default_max_seq_len - len(ids)
    if room < 1:
        raise ContextLengthExceeded(f"the prompt needs {len(ids)} tokens and leaves no room to answer in "
                                    f"{service.default_max_seq_len} tokens", param="prompt")
    return room


def _run(service: SessionService, state, request: CompletionRequest, room: int, rng: random.Random,
         prefilled: bool) -> Iterator[StreamEvent]:
    params = request.sampling
    if not prefilled:
        service.model.append(state, list(request.prompt_ids))
    gen = Generation(
        model=service.model, tok=service.tok, state=state, params=params,
        rules=service.stop_rules(ChatRequest(messages=(), sampling=params)), rng=rng,
        thinking=False, max_new=min(params.max_tokens, room), think_tags=False,
    )
    yield from gen.run()
    usage = Usage(prompt_tokens=len(request.prompt_ids), completion_tokens=gen.out.completion_tokens)
    yield StreamEvent("done", finish_reason=gen.out.finish_reason, usage=usage)


def _states(service: SessionService, request: CompletionRequest, n: int, room: int) -> tuple[list, list]:
    """On the engine thread: one fresh state, or (n > 1) n states holding the prompt from one prefill, each
    held under the KV budget with room to answer; with the functions that release them."""
    service.memory.make_room(0)
    states = [service.model.new_state(service.default_max_seq_len)]
    releases = [service.hold(states[0])]
    try:
        service.reserve(states[0], len(request.prompt_ids) + min(request.sampling.max_tokens, room), n - 1)
        if n > 1:
            service.model.append(states[0], list(request.prompt_ids))
        for _ in range(n - 1):
            states.append(service.model.fork(states[0]))
            releases.append(service.hold(states[-1]))
    except BaseException:
        for release in releases:
            release()
        raise
    return states, releases


def start_completion(service: SessionService, request: CompletionRequest, n: int = 1) -> list[TurnHandle]:
    """Start n completions of one prompt (one prefill when n > 1, each its own random stream) on the
    engine thread; validation errors raise here, before any event."""
    room = _check(service, request)
    if not 1 <= n <= MAX_CHOICES:
        raise InvalidRequest(f"n must be between 1 and {MAX_CHOICES}", param="n")
    states, releases = service.engine.call(lambda: _states(service, request, n, room))
    rngs = choice_rngs(request.sampling.seed, n, service.entropy)
    return [service.engine.submit(_run(service, state, request, room, rng, n > 1),
                                  on_exit=release)
            for state, release, rng in zip(states, releases, rngs, strict=True)]
