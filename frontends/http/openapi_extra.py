"""OpenAPI schemas and paths of the OpenAI-surface routes: /tokenize, /detokenize (and more as they come)."""

from __future__ import annotations

from collections.abc import Callable

from .openapi_schemas import ref

__all__ = ["extra_schemas", "extra_paths"]

_STR = {"type": "string"}
_INT = {"type": "integer"}


def _closed(props: dict, required: tuple = ()) -> dict:
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


def _completion() -> dict:
    lists = {"tokens": {"type": "array", "items": _STR}, "token_logprobs": {"type": "array", "items": {"type": "number"}},
             "top_logprobs": {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "number"}}},
             "text_offset": {"type": "array", "items": _INT}}
    logprobs = {"anyOf": [{"type": "null"}, _closed(lists, tuple(lists))]}
    choice = _closed({"index": _INT, "text": _STR, "logprobs": logprobs,
                      "finish_reason": {"enum": ["stop", "length", "repetition"]}},
                     ("index", "text", "logprobs", "finish_reason"))
    return _closed({"id": _STR, "object": {"const": "text_completion"}, "created": _INT, "model": _STR,
                    "choices": {"type": "array", "items": choice}, "usage": ref("Usage")},
                   ("id", "object", "created", "model", "choices", "usage"))


def extra_schemas() -> dict:
    """Component schemas of these routes, by name."""
    return {
        "Completion": _completion(),
        "TokenizeResponse": _closed({"count": _INT, "max_model_len": _INT, "tokens": {"type": "array", "items": _INT},
                                     "token_strs": {"type": ["array", "null"], "items": _STR}},
                                    ("count", "max_model_len", "tokens", "token_strs")),
        "DetokenizeResponse": _closed({"prompt": _STR}, ("prompt",)),
    }


def extra_paths(op: Callable[..., dict]) -> dict:
    """Path items of these routes; `op` builds an operation as openapi.py does for the others."""
    event = {"type": "object", "required": ["data"],
             "properties": {"data": {"type": "string", "description": "a text_completion chunk as JSON, "
                                     "an error object as JSON, or [DONE]"}, "event": {"type": "string"}}}
    content = {"application/json": {"schema": ref("Completion")}, "text/event-stream": {"schema": event}}
    return {
        "/v1/completions": {"post": op("Text completion (stream: true gives server-sent events)", 200, None,
                                       (400, 404, 499), "CompletionRequest", True, content=content)},
        "/tokenize": {"post": op("Token ids of a prompt or of chat messages (vLLM's fields)", 200,
                                 ref("TokenizeResponse"), (400,), "TokenizeRequest", True)},
        "/detokenize": {"post": op("Text of token ids (vLLM's fields)", 200, ref("DetokenizeResponse"), (400,),
                                   "DetokenizeRequest", True)},
    }
