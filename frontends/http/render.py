"""Render core values as OpenAI wire JSON: completions, stream chunks, usage, infos."""

from __future__ import annotations

import time
from typing import Any

import cattrs

from ...core import Message, Usage

__all__ = ["usage_json", "completion_json", "chunk_json", "make_converter", "unstructure", "message_json",
           "usage_chunk_json"]


def make_converter() -> cattrs.Converter:
    """Build the converter for wire types (session and snapshot infos)."""
    conv = cattrs.Converter()
    conv.register_unstructure_hook(tuple, list)
    return conv


def unstructure(value: Any, converter: cattrs.Converter | None = None) -> dict:
    """Render a session or snapshot info.

    Sessions also get the published server's names: `cache_position` and `current_pos` (the cached
    tokens), `has_prefill` (any cached) and `cache_id` (the session id).
    """
    data = (converter or make_converter()).unstructure(value)
    if "cached_tokens" in data:
        data["cache_position"] = data["current_pos"] = data["cached_tokens"]
        data["has_prefill"] = data["cached_tokens"] > 0
        data["cache_id"] = data.get("session_id")
    if data.get("prefill") is not None:
        left = value.prefill.seconds_left
        data["prefill"]["seconds_left"] = round(left, 1) if left is not None else None
    return data


def message_json(m: Message) -> dict:
    """Render a transcript message the way clients sent it."""
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.reasoning_content:
        out["reasoning_content"] = m.reasoning_content
    if m.tool_calls:
        out["tool_calls"] = list(m.tool_calls)
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        out["name"] = m.name
    return out


def usage_json(usage: Usage) -> dict:
    """Render usage with the OpenAI detail objects."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def completion_json(cid: str, model: str, message: dict, finish: str, usage: Usage,
                    logprobs: dict | None = None) -> dict:
    """Render a whole chat completion around an assistant message."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": logprobs}],
        "usage": usage_json(usage),
    }


def chunk_json(cid: str, created: int, model: str, delta: dict, finish: str | None, with_usage: bool,
               logprobs: dict | None = None) -> dict:
    """Render one streaming chunk with a single choice (`usage: null` when usage comes at the end)."""
    chunk: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": logprobs}],
    }
    if with_usage:
        chunk["usage"] = None
    return chunk


def usage_chunk_json(cid: str, created: int, model: str, usage: Usage) -> dict:
    """Render the last chunk of an `include_usage` stream: no choices, the turn's usage."""
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
            "usage": usage_json(usage)}
