"""Text-completions bodies (`POST /v1/completions`) into core values: the body class checks each field
(wire_bodies.py), this adds the rules between fields and those that need the model; mistakes are 400s."""

from __future__ import annotations

from typing import Any

import attrs

from superlinear.core.completion import CompletionRequest as CoreCompletion
from superlinear.core.ports import TokenizerPort

from .contract import parse
from .fields import require
from .wire import check_model, sampling_params, stream_flags
from .wire_bodies import CompletionRequest

__all__ = ["CompletionCall", "parse_completion_request", "DEFAULT_COMPLETION_TOKENS"]

# OpenAI's default for this endpoint.
DEFAULT_COMPLETION_TOKENS = 16


@attrs.frozen
class CompletionCall:
    """A parsed completion request: the core's CompletionRequest plus what only the HTTP layer acts on."""

    request: CoreCompletion
    echo: str | None = None
    stream: bool = False
    include_usage: bool = False
    n: int = 1

    @property
    def logprobs(self) -> bool:
        return self.request.sampling.logprobs is not None


def _ids(prompt: str | list[int], tok: TokenizerPort, vocab: int) -> list[int]:
    """The prompt's token ids: a string encoded, ids checked against the vocabulary."""
    if isinstance(prompt, str):
        return tok.encode(prompt)
    bad = [i for i in prompt if not 0 <= i < vocab]
    require(not bad, f"prompt token id {bad[0] if bad else 0} is outside the vocabulary of {vocab} ids", "prompt")
    return prompt


def parse_completion_request(raw: Any, model_name: str, tok: TokenizerPort, vocab: int,
                             default_temperature: float = 1.0) -> CompletionCall:
    """Validate an OpenAI completions body; raise InvalidRequest naming the bad field.

    A string prompt is encoded with `tok`; token ids must be below `vocab`."""
    body = parse(CompletionRequest, raw)
    check_model(body.model, model_name)
    ids = _ids(body.prompt, tok, vocab)
    stream, include_usage = stream_flags(body)
    sampling = sampling_params(body, DEFAULT_COMPLETION_TOKENS, default_temperature, logprobs=body.logprobs)
    text = (body.prompt if isinstance(body.prompt, str) else tok.decode(ids)) if body.echo else None
    return CompletionCall(CoreCompletion(tuple(ids), sampling), text, stream, include_usage, body.n)
