"""The text completion use case: a prompt of token ids in, a continuation out, on a fresh state.

No chat template and no thinking split: the text is the model's continuation as it comes. It runs on the
engine thread like a stateless chat turn and frees its state when it ends.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import attrs

from .choices import MAX_CHOICES, choice_rngs, fan_out
from .engine import TurnHandle
from .errors import ContextLengthExceeded, InvalidRequest
from .generation import Generation
from .scheduler import Steps
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


def _run(service: SessionService, state: Any, request: CompletionRequest, room: int,
         rng: random.Random) -> Steps:
    """One completion on a state that holds the prompt."""
    params = request.sampling
    gen = Generation(
        model=service.model, tok=service.tok, state=state, params=params,
        rules=service.stop_rules(ChatRequest(messages=(), sampling=params)), rng=rng,
        thinking=False, max_new=min(params.max_tokens, room), think_tags=False,
    )
    yield from gen.run()
    usage = Usage(prompt_tokens=len(request.prompt_ids), completion_tokens=gen.out.completion_tokens)
    yield StreamEvent("done", finish_reason=gen.out.finish_reason, usage=usage)


def _admitted(service: SessionService, request: CompletionRequest, n: int,
              room: int) -> tuple[Any, Callable[[], None], int]:
    """On the engine thread: a fresh state held under the KV budget with room for n copies of the whole
    completion; with the function that releases it and the completion's length."""
    service.memory.make_room(0)
    state = service.model.new_state(service.default_max_seq_len)
    release = service.hold(state)
    try:
        total = len(request.prompt_ids) + min(request.sampling.max_tokens, room)
        service.reserve(state, total, n - 1, param="prompt")
    except BaseException:
        release()
        raise
    return state, release, total


def start_completion(service: SessionService, request: CompletionRequest, n: int = 1) -> list[TurnHandle]:
    """Start n completions of one prompt (one prefill, through the engine's scheduler; each its own random
    stream); validation errors raise here, before any event."""
    room = _check(service, request)
    if not 1 <= n <= MAX_CHOICES:
        raise InvalidRequest(f"n must be between 1 and {MAX_CHOICES}", param="n")
    state, release, total = service.admit(lambda: _admitted(service, request, n, room))
    rngs = choice_rngs(request.sampling.seed, n, service.entropy)
    return fan_out(service, state, release, list(request.prompt_ids), total, n,
                   lambda st, k: _run(service, st, request, room, rngs[k]))
