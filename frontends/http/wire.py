"""The OpenAI wire format: parse request bodies into core values, render core values as JSON."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import cattrs

from ...core import ChatRequest, InvalidRequest, Message, RepetitionParams, SamplingParams, Usage

__all__ = ["parse_chat_request", "usage_json", "make_converter", "completion_json", "chunk_json"]

_ROLES = ("system", "user", "assistant", "tool", "developer")
_UNSUPPORTED = ("response_format", "functions", "function_call", "audio", "modalities", "prediction")


def make_converter() -> cattrs.Converter:
    """Build the converter for wire types (session and snapshot infos)."""
    conv = cattrs.Converter()
    conv.register_unstructure_hook(tuple, list)
    return conv


def _require(cond: bool, message: str, param: str) -> None:
    if not cond:
        raise InvalidRequest(message, param=param)


def _int(body: Mapping, key: str, default: int | None, lo: int = 0) -> int | None:
    value = body.get(key, default)
    if value is None:
        return default
    _require(isinstance(value, int) and not isinstance(value, bool) and value >= lo,
             f"{key} must be an integer >= {lo}", key)
    return value


def _float(body: Mapping, key: str, default: float, lo: float, hi: float) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    _require(isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi,
             f"{key} must be a number between {lo} and {hi}", key)
    return float(value)


def _content(value: Any, i: int) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    _require(isinstance(value, list), f"messages[{i}].content must be a string or a list of text parts",
             f"messages[{i}].content")
    parts = []
    for part in value:
        _require(isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str),
                 "only text content parts are supported", f"messages[{i}].content")
        parts.append(part["text"])
    return "".join(parts)


def _message(raw: Any, i: int) -> Message:
    _require(isinstance(raw, dict), f"messages[{i}] must be an object", f"messages[{i}]")
    role = raw.get("role")
    _require(role in _ROLES, f"messages[{i}].role must be one of {', '.join(_ROLES)}", f"messages[{i}].role")
    return Message(
        role="system" if role == "developer" else role,
        content=_content(raw.get("content"), i),
        reasoning_content=raw.get("reasoning_content"),
        name=raw.get("name"),
        tool_calls=tuple(raw.get("tool_calls") or ()),
        tool_call_id=raw.get("tool_call_id"),
    )


def _stop(body: Mapping) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    _require(isinstance(stop, list) and all(isinstance(s, str) and s for s in stop) and len(stop) <= 16,
             "stop must be a non-empty string or a list of at most 16 of them", "stop")
    return tuple(stop)


def _repetition(body: Mapping) -> RepetitionParams:
    raw = body.get("repetition_detection")
    if raw is None:
        return RepetitionParams()
    _require(isinstance(raw, dict), "repetition_detection must be an object", "repetition_detection")
    fields = {k: raw[k] for k in ("enabled", "tail_len", "min_repeats", "max_period", "min_unique_tokens",
                                  "check_every") if k in raw}
    try:
        return RepetitionParams(**fields)
    except TypeError as exc:
        raise InvalidRequest(str(exc), param="repetition_detection") from exc


def _sampling(body: Mapping, default_max: int) -> SamplingParams:
    max_tokens = _int(body, "max_completion_tokens", None, 1) or _int(body, "max_tokens", default_max, 1)
    budget = _int(body, "reasoning_budget", None, 1)
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=_float(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_float(body, "top_p", 1.0, 0.0, 1.0),
        top_k=_int(body, "top_k", 0, 0),
        seed=_int(body, "seed", None, 0),
        stop=_stop(body),
        reasoning_budget=budget,
        repetition=_repetition(body),
    )


def _check_unsupported(body: Mapping) -> None:
    for key in _UNSUPPORTED:
        _require(body.get(key) is None, f"{key} is not supported by this server", key)
    _require(body.get("n", 1) == 1, "only n=1 is supported", "n")
    _require(not body.get("logprobs"), "logprobs are not supported yet", "logprobs")


def parse_chat_request(body: Any, model_name: str, default_max: int) -> ChatRequest:
    """Validate an OpenAI chat-completions body; raise InvalidRequest naming the bad field."""
    _require(isinstance(body, dict), "the request body must be a JSON object", "body")
    _check_unsupported(body)
    model = body.get("model")
    _require(model in (None, "", model_name), f"model {model!r} is not served here (serving {model_name!r})",
             "model")
    raw = body.get("messages")
    _require(isinstance(raw, list) and raw, "messages must be a non-empty list", "messages")
    kwargs = body.get("chat_template_kwargs") or {}
    _require(isinstance(kwargs, dict), "chat_template_kwargs must be an object", "chat_template_kwargs")
    reserved = sorted(set(kwargs) & {"messages", "add_generation_prompt", "tools"})
    _require(not reserved, f"chat_template_kwargs may not set {', '.join(reserved)}", "chat_template_kwargs")
    if body.get("reasoning_budget") is not None:
        kwargs = {**kwargs, "enable_thinking": True}
    sid = body.get("session_id")
    _require(sid is None or isinstance(sid, str), "session_id must be a string", "session_id")
    return ChatRequest(
        messages=tuple(_message(m, i) for i, m in enumerate(raw)),
        sampling=_sampling(body, default_max),
        session_id=sid,
        template_kwargs=kwargs,
        discard_thinking=bool(body.get("discard_thinking", True)),
    )


def usage_json(usage: Usage) -> dict:
    """Render usage with the OpenAI detail objects."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def completion_json(cid: str, model: str, content: str, reasoning: str, finish: str, usage: Usage) -> dict:
    """Render a whole chat completion."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning:
        message["reasoning_content"] = reasoning
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage_json(usage),
    }


def chunk_json(cid: str, created: int, model: str, delta: dict, finish: str | None, with_usage: bool) -> dict:
    """Render one streaming chunk with a single choice."""
    chunk = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }
    if with_usage:
        chunk["usage"] = None
    return chunk
