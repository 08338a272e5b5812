"""The text completion use case: a prompt of token ids in, a continuation out, on a fresh state.

No chat template and no thinking split: the text is the model's continuation as it comes. It runs on the
engine thread like a stateless chat turn and frees its state when it ends.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import attrs

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


def _run(service: SessionService, state, request: CompletionRequest, room: int) -> Iterator[StreamEvent]:
    params = request.sampling
    service.model.append(state, list(request.prompt_ids))
    gen = Generation(
        model=service.model, tok=service.tok, state=state, params=params,
        rules=service.stop_rules(ChatRequest(messages=(), sampling=params)),
        rng=random.Random(params.seed if params.seed is not None else service.entropy()),
        thinking=False, max_new=min(params.max_tokens, room), think_tags=False,
    )
    yield from gen.run()
    usage = Usage(prompt_tokens=len(request.prompt_ids), completion_tokens=gen.out.completion_tokens)
    yield StreamEvent("done", finish_reason=gen.out.finish_reason, usage=usage)


def start_completion(service: SessionService, request: CompletionRequest) -> TurnHandle:
    """Start a completion on the engine thread; validation errors raise here, before any event."""
    room = _check(service, request)

    def prepare():
        service.memory.make_room(0)
        return service.model.new_state(service.default_max_seq_len)

    state = service.engine.call(prepare)
    return service.engine.submit(_run(service, state, request, room), on_exit=lambda: service.model.release(state))
