"""Chat-completions bodies into core values: the body class checks each field (wire_bodies.py), this adds the
rules between fields and those that need the served model; every mistake is a 400 naming the field."""

from __future__ import annotations

from typing import Any

import attrs

from superlinear.core import ChatRequest, RepetitionParams, SamplingParams
from superlinear.core.values import Grammar

from .contract import parse
from .fields import require
from .structured import forced_tools, response_grammar, tool_grammar
from .wire_bodies import MAX_STOP_CHARS, MAX_STOP_STRINGS, ChatCompletionRequest, SamplingFields
from .wire_messages import to_message

__all__ = ["ChatCall", "parse_chat_request", "sampling_params", "stream_flags", "check_model", "model_matches",
           "MAX_STOP_CHARS", "MAX_STOP_STRINGS"]

# Below this a temperature is greedy in effect, and dividing logits by it overflows.
_MIN_TEMPERATURE = 1e-3


@attrs.frozen
class ChatCall:
    """A parsed request: the core's ChatRequest plus what only the HTTP layer acts on."""

    request: ChatRequest
    stream: bool = False
    include_usage: bool = False
    parse_tool_calls: bool = False
    n: int = 1
    stream_thinking: bool = False


def model_matches(requested: str, served: str) -> bool:
    """Whether a request's `model` names the served model: its id, or its short id without the owner.

    A repository id `owner/name` is also served as `name` (the seed's SDK examples use the short id), and a
    model served by its short id is also named by any `owner/name` whose name it is.
    """
    short = served.rsplit("/", 1)[-1]
    return requested in (served, short) or ("/" not in served and requested.rsplit("/", 1)[-1] == served)


def check_model(model: str | None, served: str) -> None:
    """A request may name no model, or the served one."""
    require(not model or model_matches(model, served), f"model {model!r} is not served here (serving {served!r})",
            "model")


def stream_flags(body: SamplingFields) -> tuple[bool, bool]:
    """(stream, include_usage)."""
    return body.stream, bool(body.stream_options and body.stream_options.include_usage)


def _repetition(body: SamplingFields) -> RepetitionParams:
    raw = body.repetition_detection
    if raw is None:
        return RepetitionParams()
    fields = {k: v for k, v in attrs.asdict(raw).items() if v is not None}
    return RepetitionParams(**fields)


def sampling_params(body: SamplingFields, default_max: int, default_temperature: float,
                    max_tokens: int | None = None, **rest: Any) -> SamplingParams:
    """The sampling both completion routes share; `max_tokens` (chat's max_completion_tokens) wins over
    the body's max_tokens, and `rest` are further SamplingParams fields."""
    temperature = default_temperature if body.temperature is None else body.temperature
    top_p = 1.0 if body.top_p is None else body.top_p
    if temperature < _MIN_TEMPERATURE or top_p == 0.0:
        # top_p 0 keeps only the most likely token: that is greedy decoding.
        temperature = 0.0
    return SamplingParams(
        max_tokens=max_tokens or body.max_tokens or default_max,
        temperature=temperature,
        top_p=top_p if top_p > 0.0 else 1.0,
        top_k=body.top_k,
        seed=body.seed,
        stop=body.stop,
        repetition=_repetition(body),
        logit_bias=tuple(sorted((int(k), v) for k, v in (body.logit_bias or {}).items())),
        **rest,
    )


def _logprobs(body: ChatCompletionRequest) -> int | None:
    """`logprobs: true` (with `top_logprobs`) -> the number of alternatives; None when off."""
    if body.top_logprobs is None:
        return 0 if body.logprobs else None
    return body.top_logprobs


def _grammar(body: ChatCompletionRequest, tool_format: str) -> Grammar | None:
    """What the answer must match: the forced tool calls, or the response format."""
    # The body class's rules ensure "required" has tools and a forced choice has no JSON format.
    forced = forced_tools(body.tool_choice, body.tools)
    if forced is None:
        return response_grammar(body.response_format)
    # "required" allows several calls unless parallel_tool_calls is false; a named function is one call.
    several = body.tool_choice == "required" and body.parallel_tool_calls is not False
    return tool_grammar(forced, several, tool_format)


def _template_kwargs(body: ChatCompletionRequest) -> dict:
    kwargs = dict(body.chat_template_kwargs or {})
    if body.tools:
        kwargs["tools"] = list(body.tools)
    if body.reasoning_budget is not None:
        kwargs["enable_thinking"] = True
    return kwargs


def parse_chat_request(raw: Any, model_name: str, default_max: int, default_temperature: float = 1.0,
                       tool_format: str = "json") -> ChatCall:
    """Validate an OpenAI chat-completions body; raise InvalidRequest naming the bad field.

    `default_temperature` (the model's generation_config.json) applies when the body names no temperature;
    `tool_format` is how the chat template writes tool calls (forced calls are constrained to it).
    """
    body = parse(ChatCompletionRequest, raw)
    check_model(body.model, model_name)
    stream, include_usage = stream_flags(body)
    sampling = sampling_params(body, default_max, default_temperature, body.max_completion_tokens,
                               reasoning_budget=body.reasoning_budget, logprobs=_logprobs(body),
                               grammar=_grammar(body, tool_format))
    request = ChatRequest(messages=tuple(to_message(m) for m in body.messages), sampling=sampling,
                          session_id=body.session_id, template_kwargs=_template_kwargs(body),
                          discard_thinking=body.discard_thinking)
    parse_tool_calls = bool(body.tools) and body.tool_choice != "none"
    # stream_thinking (the published client's flag) adds `delta.thinking` beside `delta.reasoning_content`.
    return ChatCall(request, stream, include_usage, parse_tool_calls, body.n, body.stream_thinking)
