"""JSON Schemas (OpenAPI 3.1 dialect) of the request and response bodies, written by hand."""

from __future__ import annotations

__all__ = ["schemas", "ref"]

_STR = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}
_NULL_STR = {"type": ["string", "null"]}


def ref(name: str) -> dict:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict, required: tuple = (), closed: bool = True) -> dict:
    schema: dict = {"type": "object", "properties": props, "required": list(required)}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _error() -> dict:
    inner = _obj({"message": _STR, "type": _STR, "param": _NULL_STR, "code": _NULL_STR},
                 ("message", "type", "param", "code"))
    return _obj({"error": inner}, ("error",))


def _chat_logprobs() -> dict:
    token = {"token": _STR, "logprob": _NUM, "bytes": {"type": ["array", "null"], "items": _INT}}
    item = _obj({**token, "top_logprobs": {"type": "array", "items": _obj(token, ("token", "logprob", "bytes"))}},
                ("token", "logprob", "bytes", "top_logprobs"))
    return _obj({"content": {"type": ["array", "null"], "items": item}, "refusal": {"type": ["array", "null"]}},
                ("content",))


def _usage() -> dict:
    return _obj({"prompt_tokens": _INT, "completion_tokens": _INT, "total_tokens": _INT,
                 "prompt_tokens_details": _obj({"cached_tokens": _INT}, ("cached_tokens",)),
                 "completion_tokens_details": _obj({"reasoning_tokens": _INT}, ("reasoning_tokens",))},
                ("prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details",
                 "completion_tokens_details"))


def _completion() -> dict:
    call = _obj({"id": _STR, "type": {"const": "function"},
                 "function": _obj({"name": _STR, "arguments": _STR}, ("name", "arguments"))},
                ("id", "type", "function"))
    message = _obj({"role": {"const": "assistant"}, "content": _NULL_STR, "reasoning_content": _STR,
                    "tool_calls": {"type": "array", "items": call}}, ("role", "content"))
    choice = _obj({"index": _INT, "message": message, "logprobs": {"anyOf": [{"type": "null"}, ref("ChatLogprobs")]},
                   "finish_reason": {"enum": ["stop", "length", "tool_calls", "repetition"]}},
                  ("index", "message", "finish_reason"))
    return _obj({"id": _STR, "object": {"const": "chat.completion"}, "created": _INT, "model": _STR,
                 "choices": {"type": "array", "items": choice}, "usage": ref("Usage")},
                ("id", "object", "created", "model", "choices", "usage"))


def _session_info() -> dict:
    fields = {"session_id": _STR, "created_at": _NUM, "last_used_at": _NUM, "cached_tokens": _INT,
              "cache_position": _INT, "max_seq_len": _INT, "message_count": _INT, "kv_bytes": _INT,
              "resident": _BOOL, "busy": _BOOL}
    progress = {"done": _INT, "total": _INT, "chunks_done": _INT, "chunks_total": _INT, "tokens_per_second": _NUM,
                "seconds_left": {"type": ["number", "null"]}}
    prefill = {"anyOf": [_obj(progress, tuple(progress)), {"type": "null"}],
               "description": "the prefill under way (a long message or document), else null"}
    return _obj({**fields, "prefill": prefill}, tuple(fields), closed=False)


def _snapshot_info(extra: dict | None = None) -> dict:
    fields = {"snapshot_id": _STR, "created_at": _NUM, "title": _NULL_STR, "description": _NULL_STR,
              "tags": {"type": "array", "items": _STR}, "tokens": _INT, "bytes": _INT,
              "model": {"type": "object", "additionalProperties": _STR}, "message_count": _INT, **(extra or {})}
    return _obj(fields, tuple(fields), closed=False)


def _transfer(name: str) -> dict:
    return _obj({name: _STR, "tokens": _INT, "bytes": _INT, "seconds": _NUM}, (name, "tokens", "bytes", "seconds"))


def schemas() -> dict:
    """Return every component schema, by name."""
    history_message = {"type": "object", "required": ["role", "content"],
                       "properties": {"role": _STR, "content": _STR, "reasoning_content": _STR}}
    return {
        "Error": _error(),
        "Health": _obj({"status": {"enum": ["ok", "loading", "error", "stopping"]}, "model": _STR,
                        "sessions": _INT, "error": _NULL_STR}, ("status",), closed=False),
        "Model": _obj({"id": _STR, "object": {"const": "model"}, "created": _INT, "owned_by": _STR},
                      ("id", "object", "created", "owned_by")),
        "ModelList": _obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref("Model")}},
                          ("object", "data")),
        "Usage": _usage(),
        "ChatLogprobs": _chat_logprobs(),
        "ChatCompletion": _completion(),
        "SessionInfo": _session_info(),
        "SessionList": _obj({"sessions": {"type": "array", "items": _STR},
                             "data": {"type": "array", "items": ref("SessionInfo")}}, ("sessions", "data")),
        "SessionHistory": _obj({"session_id": _STR, "messages": {"type": "array", "items": history_message}},
                               ("session_id", "messages")),
        "Deleted": _obj({"session_id": _STR, "snapshot_id": _STR, "deleted": {"const": True}}, ("deleted",)),
        "SaveResult": _transfer("snapshot_id"),
        "SnapshotInfo": _snapshot_info(),
        "SnapshotList": _obj({"object": {"const": "list"},
                              "data": {"type": "array", "items": _snapshot_info({"compatible": _BOOL})},
                              "snapshots": {"type": "array", "items": _snapshot_info({"compatible": _BOOL}),
                                            "description": "the same items as data (published client)"}},
                             ("object", "data", "snapshots")),
        "LoadResult": _transfer("session_id"),
        "ImportResult": _obj({"snapshot_id": _STR, "tokens": _INT, "bytes": _INT, "messages": _INT,
                              "logits": {"type": "boolean", "description": "false: the first turn computes them"},
                              "seconds": _NUM},
                             ("snapshot_id", "tokens", "bytes", "messages", "logits", "seconds")),
    }
