"""Parse OpenAI text-completions bodies (`POST /v1/completions`); every mistake is a 400 naming the field."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ...core import InvalidRequest
from ...core.choices import MAX_CHOICES
from ...core.completion import CompletionRequest
from ...core.logprobs import MAX_TOP_LOGPROBS
from ...core.ports import TokenizerPort
from .wire import _bool, _int, _sampling, _stream_flags, model_matches
from .wire_messages import require

__all__ = ["CompletionCall", "parse_completion_request", "COMPLETION_FIELDS", "DEFAULT_COMPLETION_TOKENS"]

# OpenAI's default for this endpoint.
DEFAULT_COMPLETION_TOKENS = 16
_NEUTRAL = {"presence_penalty": (0, 0.0), "frequency_penalty": (0, 0.0), "best_of": (1,), "suffix": ("",)}
_IGNORED = {"user": str}
_HANDLED = ("model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "n", "stream",
            "stream_options", "logprobs", "echo", "logit_bias", "session_id", "repetition_detection")
COMPLETION_FIELDS = frozenset((*_NEUTRAL, *_IGNORED, *_HANDLED))


@attrs.frozen
class CompletionCall:
    """A parsed completion request: the core's CompletionRequest plus what only the HTTP layer acts on."""

    request: CompletionRequest
    echo: str | None = None
    stream: bool = False
    include_usage: bool = False
    n: int = 1

    @property
    def logprobs(self) -> bool:
        return self.request.sampling.logprobs is not None


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in value)


def _prompt(raw: Any, encode: Callable[[str], list[int]], vocab: int) -> list[int] | str:
    """Accept a string, one token-id list, or a one-element list of either; return the text or the ids."""
    if isinstance(raw, list) and len(raw) == 1 and (isinstance(raw[0], str) or _is_ids(raw[0])):
        raw = raw[0]
    if isinstance(raw, str):
        return raw
    require(_is_ids(raw), "prompt must be a string or a list of token ids (one prompt per request)", "prompt")
    bad = [i for i in raw if not 0 <= i < vocab]
    require(not bad, f"prompt token id {bad[0] if bad else 0} is outside the vocabulary of {vocab} ids", "prompt")
    return raw


def _check_fields(body: Mapping) -> None:
    unknown = sorted(set(body) - COMPLETION_FIELDS)
    if unknown:
        raise InvalidRequest(f"unrecognized request argument {unknown[0]!r}", param=unknown[0])
    for key, neutral in _NEUTRAL.items():
        value = body.get(key)
        if key == "suffix":
            require(value in (None, ""), "suffix is not supported: fill-in-the-middle needs a model trained for "
                    "it; send the text before the gap as the prompt", "suffix")
            continue
        require(value is None or (value in neutral and not isinstance(value, bool)),
                f"{key} is not supported by this server (only {neutral[0]})", key)
    require(body.get("user") is None or isinstance(body.get("user"), str), "user must be a string", "user")
    require(body.get("session_id") is None, "session_id is not supported on /v1/completions: a session holds a "
            "chat transcript; use /v1/chat/completions with it", "session_id")


def _logprobs(body: Mapping) -> int | None:
    value = body.get("logprobs")
    ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOP_LOGPROBS)
    require(ok, f"logprobs must be an integer between 0 and {MAX_TOP_LOGPROBS}", "logprobs")
    return value


def parse_completion_request(body: Any, model_name: str, tok: TokenizerPort, vocab: int,
                             default_temperature: float = 1.0) -> CompletionCall:
    """Validate an OpenAI completions body; raise InvalidRequest naming the bad field.

    A string prompt is encoded with `tok`; token ids must be below `vocab`."""
    require(isinstance(body, dict), "the request body must be a JSON object", "body")
    _check_fields(body)
    model = body.get("model")
    require(model in (None, "") or (isinstance(model, str) and model_matches(model, model_name)),
            f"model {model!r} is not served here (serving {model_name!r})", "model")
    require("prompt" in body, "prompt is required", "prompt")
    prompt = _prompt(body["prompt"], tok.encode, vocab)
    echo = _bool(body, "echo", False)
    top = _logprobs(body)
    require(not (echo and top is not None), "echo with logprobs is not supported: the prompt's log-probabilities "
            "are not computed", "logprobs")
    stream, include_usage = _stream_flags(body)
    rest = {k: v for k, v in body.items() if k != "logprobs"}
    sampling = attrs.evolve(_sampling(rest, DEFAULT_COMPLETION_TOKENS, default_temperature), logprobs=top)
    ids = tok.encode(prompt) if isinstance(prompt, str) else prompt
    text = (prompt if isinstance(prompt, str) else tok.decode(ids)) if echo else None
    n = _int(body, "n", 1, 1, MAX_CHOICES)
    return CompletionCall(CompletionRequest(tuple(ids), sampling), text, stream, include_usage, n)
