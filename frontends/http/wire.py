"""Parse OpenAI chat-completions bodies into core values; every mistake is a 400 naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ...core import ChatRequest, InvalidRequest, RepetitionParams, SamplingParams, validate_id
from ...core.choices import MAX_CHOICES
from ...core.values import Grammar
from .structured import forced_tools, response_grammar, tool_grammar
from .wire_logits import parse_chat_logprobs, parse_logit_bias
from .wire_messages import parse_messages, parse_tools, require

__all__ = ["ChatCall", "parse_chat_request", "CHAT_FIELDS"]

# Fields that would change the result if honoured; accepted only at their neutral value.
_NEUTRAL = {
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "reasoning_effort": (None,),
    "functions": (None,),
    "function_call": (None,),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
    "web_search_options": (None,),
}
# Fields that never change the output; accepted (when of the right type) and ignored.
_IGNORED = {"user": str, "metadata": dict, "store": bool, "service_tier": str, "parallel_tool_calls": bool,
            "prompt_cache_key": str, "safety_identifier": str,
            # The published superlinear server's engine-specific options object; nothing in it is honoured.
            "extra": dict}
_HANDLED = ("model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "seed",
            "stop", "n", "stream", "stream_options", "tools", "tool_choice", "response_format", "session_id",
            "reasoning_budget", "chat_template_kwargs", "discard_thinking", "repetition_detection",
            "logit_bias", "logprobs", "top_logprobs", "stream_thinking")
CHAT_FIELDS = frozenset((*_NEUTRAL, *_IGNORED, *_HANDLED))

# Below this a temperature is greedy in effect, and dividing logits by it overflows.
_MIN_TEMPERATURE = 1e-3
_STREAM_OPTIONS = {"include_usage", "include_obfuscation", "flush_every_n_tokens", "flush_every_ms"}
# Stop strings: how many a request may give and how long each may be (characters).
MAX_STOP_STRINGS = 16
MAX_STOP_CHARS = 1024
_REPETITION_KEYS = ("enabled", "tail_len", "min_repeats", "max_period", "min_unique_tokens", "check_every")


@attrs.frozen
class ChatCall:
    """A parsed request: the core's ChatRequest plus what only the HTTP layer acts on."""

    request: ChatRequest
    stream: bool = False
    include_usage: bool = False
    parse_tool_calls: bool = False
    n: int = 1
    stream_thinking: bool = False


def _int(body: Mapping, key: str, default: int | None, lo: int = 0, hi: int | None = None,
         where: str = "") -> int | None:
    value = body.get(key)
    if value is None:
        return default
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo and (hi is None or value <= hi)
    name = where + key
    require(ok, f"{name} must be an integer >= {lo}" + (f" and <= {hi}" if hi is not None else ""), name)
    return value


def _float(body: Mapping, key: str, default: float, lo: float, hi: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    require(isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi,
            f"{key} must be a number between {lo} and {hi}", key)
    return float(value)


def _bool(body: Mapping, key: str, default: bool, where: str = "") -> bool:
    value = body.get(key)
    if value is None:
        return default
    require(isinstance(value, bool), f"{where}{key} must be a boolean", where + key)
    return value


def _stop(body: Mapping) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    require(isinstance(stop, list) and all(isinstance(s, str) and s for s in stop) and len(stop) <= MAX_STOP_STRINGS,
            f"stop must be a non-empty string or a list of at most {MAX_STOP_STRINGS} of them", "stop")
    require(all(len(s) <= MAX_STOP_CHARS for s in stop),
            f"each stop string may be at most {MAX_STOP_CHARS} characters long", "stop")
    return tuple(stop)


def _repetition(body: Mapping) -> RepetitionParams:
    raw = body.get("repetition_detection")
    if raw is None:
        return RepetitionParams()
    require(isinstance(raw, dict), "repetition_detection must be an object", "repetition_detection")
    unknown = sorted(set(raw) - set(_REPETITION_KEYS))
    if unknown:
        raise InvalidRequest(f"repetition_detection has no field {unknown[0]!r}",
                             param=f"repetition_detection.{unknown[0]}")
    fields: dict[str, Any] = {}
    for key in _REPETITION_KEYS[1:]:
        value = _int(raw, key, None, 1, 1 << 20, where="repetition_detection.")
        if value is not None:
            fields[key] = value
    fields["enabled"] = _bool(raw, "enabled", True, where="repetition_detection.")
    return RepetitionParams(**fields)


def _sampling(body: Mapping, default_max: int, default_temperature: float) -> SamplingParams:
    # Both are checked: the document says each is >= 1, whichever of them is used.
    legacy = _int(body, "max_tokens", default_max, 1)
    max_tokens = _int(body, "max_completion_tokens", None, 1) or legacy
    temperature = _float(body, "temperature", default_temperature, 0.0, 2.0)
    top_p = _float(body, "top_p", 1.0, 0.0, 1.0)
    if temperature < _MIN_TEMPERATURE or top_p == 0.0:
        # top_p 0 keeps only the most likely token: that is greedy decoding.
        temperature = 0.0
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p if top_p > 0.0 else 1.0,
        top_k=_int(body, "top_k", 0, 0),
        seed=_int(body, "seed", None, -(1 << 63), (1 << 64) - 1),
        stop=_stop(body),
        reasoning_budget=_int(body, "reasoning_budget", None, 1),
        repetition=_repetition(body),
        logit_bias=parse_logit_bias(body),
        logprobs=parse_chat_logprobs(body),
    )


def _check_neutral(body: Mapping) -> None:
    unknown = sorted(set(body) - CHAT_FIELDS)
    if unknown:
        raise InvalidRequest(f"unrecognized request argument {unknown[0]!r}", param=unknown[0])
    for key, neutral in _NEUTRAL.items():
        value = body.get(key)
        require(any(value == n and type(value) is type(n) for n in neutral) or value is None,
                f"{key} is not supported by this server", key)
    for key, kind in _IGNORED.items():
        value = body.get(key)
        require(value is None or isinstance(value, kind), f"{key} must be of type {kind.__name__}", key)


_RESERVED_TEMPLATE_KWARGS = frozenset({"messages", "add_generation_prompt", "tools", "bos_token", "eos_token", "self"})


def _template_kwargs(body: Mapping, tools: list | None) -> dict:
    kwargs = body.get("chat_template_kwargs")
    kwargs = {} if kwargs is None else kwargs
    require(isinstance(kwargs, dict), "chat_template_kwargs must be an object", "chat_template_kwargs")
    # "self" would collide with the renderer's own parameter (a TypeError, not the client's template).
    reserved = sorted(set(kwargs) & _RESERVED_TEMPLATE_KWARGS)
    require(not reserved, f"chat_template_kwargs may not set {', '.join(reserved)}", "chat_template_kwargs")
    kwargs = dict(kwargs)
    if tools:
        kwargs["tools"] = tools
    if body.get("reasoning_budget") is not None:
        kwargs["enable_thinking"] = True
    return kwargs


def _stream_flags(body: Mapping) -> tuple[bool, bool]:
    stream = _bool(body, "stream", False)
    options = body.get("stream_options")
    if options is None:
        return stream, False
    require(stream, "stream_options is only allowed when stream is true", "stream_options")
    require(isinstance(options, dict) and set(options) <= _STREAM_OPTIONS,
            "stream_options must be an object with include_usage", "stream_options")
    # include_obfuscation pads chunks against side channels; plain SSE needs none, but it must be a boolean.
    _bool(options, "include_obfuscation", False, where="stream_options.")
    # The published server's flush batching; every token is flushed here, so they are checked and ignored.
    for key in ("flush_every_n_tokens", "flush_every_ms"):
        _int(options, key, None, 0, where="stream_options.")
    return stream, _bool(options, "include_usage", False, where="stream_options.")


def model_matches(requested: str, served: str) -> bool:
    """Whether a request's `model` names the served model: its id, or its short id without the owner.

    A repository id `owner/name` is also served as `name` (the seed's SDK examples use the short id), and a
    model served by its short id is also named by any `owner/name` whose name it is.
    """
    short = served.rsplit("/", 1)[-1]
    return requested in (served, short) or ("/" not in served and requested.rsplit("/", 1)[-1] == served)


def _tool_choice(body: Mapping, tools: list | None) -> bool:
    """Return whether tool calls are parsed out of the answer."""
    return bool(tools) and body.get("tool_choice") != "none"


def _grammar(body: Mapping, tools: list | None, tool_format: str) -> Grammar | None:
    """What the answer must match: the forced tool calls, or the response format."""
    forced = forced_tools(body, tools)
    fmt = response_grammar(body)
    require(forced is None or fmt is None, "response_format json and a forced tool_choice exclude each other",
            "response_format")
    if forced is None:
        return fmt
    # "required" allows several calls unless parallel_tool_calls is false; a named function is one call.
    several = body.get("tool_choice") == "required" and body.get("parallel_tool_calls") is not False
    return tool_grammar(forced, several, tool_format)


def parse_chat_request(body: Any, model_name: str, default_max: int, default_temperature: float = 1.0,
                       tool_format: str = "json") -> ChatCall:
    """Validate an OpenAI chat-completions body; raise InvalidRequest naming the bad field.

    `default_temperature` (the model's generation_config.json) applies when the body names no temperature;
    `tool_format` is how the chat template writes tool calls (forced calls are constrained to it).
    """
    require(isinstance(body, dict), "the request body must be a JSON object", "body")
    _check_neutral(body)
    model = body.get("model")
    require(model in (None, "") or (isinstance(model, str) and model_matches(model, model_name)),
            f"model {model!r} is not served here (serving {model_name!r})", "model")
    tools = parse_tools(body.get("tools"))
    sid = body.get("session_id")
    sid = None if sid is None else validate_id(sid, "session_id")
    stream, include_usage = _stream_flags(body)
    request = ChatRequest(
        messages=parse_messages(body.get("messages")),
        sampling=attrs.evolve(_sampling(body, default_max, default_temperature), grammar=_grammar(body, tools, tool_format)),
        session_id=sid,
        template_kwargs=_template_kwargs(body, tools),
        discard_thinking=_bool(body, "discard_thinking", True),
    )
    # stream_thinking (the published client's flag) adds `delta.thinking` beside `delta.reasoning_content`.
    stream_thinking = _bool(body, "stream_thinking", False)
    return ChatCall(request, stream, include_usage, _tool_choice(body, tools), _int(body, "n", 1, 1, MAX_CHOICES),
                    stream_thinking)
