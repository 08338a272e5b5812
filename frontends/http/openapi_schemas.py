"""JSON Schemas (OpenAPI 3.1 dialect) of the request and response bodies, written by hand."""

from __future__ import annotations

from .wire import MAX_STOP_CHARS, MAX_STOP_STRINGS

__all__ = ["schemas", "ID_PATTERN"]

ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"

_STR = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}
_NULL_STR = {"type": ["string", "null"]}
_ID = {"type": "string", "pattern": ID_PATTERN}


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


def _message() -> dict:
    # Nested objects are open: the server reads the fields it knows and ignores the rest, as OpenAI does.
    part = _obj({"type": {"const": "text"}, "text": _STR}, ("type", "text"), closed=False)
    call = _obj({"id": _NULL_STR, "type": {"const": "function"},
                 "function": _obj({"name": _STR, "arguments": _STR}, ("name",), closed=False)},
                ("function",), closed=False)
    return _obj({
        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"anyOf": [{"type": "string"}, {"type": "null"}, {"type": "array", "items": part}]},
        "name": _NULL_STR, "tool_call_id": _NULL_STR, "reasoning_content": _NULL_STR, "refusal": _NULL_STR,
        "tool_calls": {"type": ["array", "null"], "items": call},
    }, ("role",))


def _tool() -> dict:
    fn = _obj({"name": {"type": "string", "minLength": 1}, "description": _NULL_STR,
               "parameters": {"type": ["object", "null"]}}, ("name",), closed=False)
    return _obj({"type": {"const": "function"}, "function": fn}, ("type", "function"), closed=False)


def _repetition() -> dict:
    bounded = {"type": ["integer", "null"], "minimum": 1, "maximum": 1 << 20}
    return _obj({"enabled": {"type": ["boolean", "null"]}, "tail_len": bounded, "min_repeats": bounded, "max_period": bounded,
                 "min_unique_tokens": bounded, "check_every": bounded})


def _neutral_fields() -> dict:
    """OpenAI fields this server accepts only at the value that changes nothing."""
    null = {"type": "null"}
    return {
        "presence_penalty": {"enum": [0, None]}, "frequency_penalty": {"enum": [0, None]},
        "modalities": {"anyOf": [null, {"const": ["text"]}]},
        **{k: null for k in ("reasoning_effort", "functions", "function_call", "audio", "prediction",
                             "web_search_options")},
    }


def _logit_fields() -> dict:
    """logit_bias, logprobs and top_logprobs, as the chat and text completion requests share them."""
    bias = {"type": ["object", "null"], "maxProperties": 1024, "propertyNames": {"pattern": "^[0-9]{1,9}$"},
            "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100},
            "description": "token id -> bias added to its logit before sampling (ids must be in the vocabulary)"}
    return {"logit_bias": bias}


def _chat_logprobs() -> dict:
    token = {"token": _STR, "logprob": _NUM, "bytes": {"type": ["array", "null"], "items": _INT}}
    item = _obj({**token, "top_logprobs": {"type": "array", "items": _obj(token, ("token", "logprob", "bytes"))}},
                ("token", "logprob", "bytes", "top_logprobs"))
    return _obj({"content": {"type": ["array", "null"], "items": item}, "refusal": {"type": ["array", "null"]}},
                ("content",))


def _response_format() -> dict:
    spec = _obj({"name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}, "description": _NULL_STR,
                 "schema": {"type": "object", "description": "a JSON Schema; absent: any JSON value"},
                 "strict": {"type": ["boolean", "null"], "description": "schema keywords the server can't "
                            "enforce are a 400 instead of being ignored"}}, ("name",))
    return {"anyOf": [{"type": "null"}, _obj({"type": {"const": "text"}}, ("type",)),
                      _obj({"type": {"const": "json_object"}}, ("type",)),
                      _obj({"type": {"const": "json_schema"}, "json_schema": spec}, ("type", "json_schema"))],
            "description": "json_object and json_schema constrain the answer (after any thinking) with a grammar"}


def _tool_choice() -> dict:
    named = _obj({"type": {"const": "function"}, "function": _obj({"name": _STR}, ("name",), closed=False)},
                 ("type", "function"))
    return {"anyOf": [{"enum": ["auto", "none", "required", None]}, named],
            "description": "required or a named function: the answer is tool calls whose arguments match the "
                           "declared parameters"}


def _chat_request() -> dict:
    pos = {"type": ["integer", "null"], "minimum": 1}
    stop = {"type": "string", "minLength": 1, "maxLength": MAX_STOP_CHARS}
    request = _obj({
        "model": _NULL_STR,
        "messages": {"type": "array", "minItems": 1, "items": ref("ChatMessage")},
        "max_tokens": pos, "max_completion_tokens": pos,
        "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
        "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "top_k": {"type": ["integer", "null"], "minimum": 0},
        "seed": {"type": ["integer", "null"], "minimum": -(1 << 63), "maximum": (1 << 64) - 1},
        "stop": {"anyOf": [{"type": "null"}, stop,
                           {"type": "array", "maxItems": MAX_STOP_STRINGS, "items": stop}]},
        "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 16,
              "description": "choices from one prefill; more than 1 only without session_id"},
        "stream": {"type": ["boolean", "null"]},
        "stream_options": {"type": ["object", "null"],
                           "properties": {"include_usage": {"type": ["boolean", "null"]},
                                          "include_obfuscation": {"type": ["boolean", "null"]},
                                          "flush_every_n_tokens": {"type": ["integer", "null"], "minimum": 0},
                                          "flush_every_ms": {"type": ["integer", "null"], "minimum": 0}},
                           "additionalProperties": False,
                           "description": "only with stream: true"},
        "tools": {"type": ["array", "null"], "maxItems": 128, "items": ref("Tool")},
        "tool_choice": _tool_choice(),
        "parallel_tool_calls": {"type": ["boolean", "null"]},
        "response_format": _response_format(),
        **_neutral_fields(),
        **_logit_fields(),
        "logprobs": {"type": ["boolean", "null"], "description": "return each answer token's log-probability"},
        "top_logprobs": {"type": ["integer", "null"], "minimum": 0, "maximum": 20,
                         "description": "also the most likely alternatives at each position; needs logprobs: true"},
        "user": _NULL_STR, "metadata": {"type": ["object", "null"]}, "store": {"type": ["boolean", "null"]},
        "service_tier": _NULL_STR, "prompt_cache_key": _NULL_STR, "safety_identifier": _NULL_STR,
        "session_id": {"anyOf": [{"type": "null"}, _ID]},
        "reasoning_budget": pos,
        "chat_template_kwargs": {"type": ["object", "null"], "description": "extra chat template variables; "
                                 "messages, add_generation_prompt, tools, bos_token, eos_token and self are reserved"},
        "discard_thinking": {"type": ["boolean", "null"]},
        "stream_thinking": {"type": ["boolean", "null"],
                            "description": "also send each thinking delta as delta.thinking (published client)"},
        "extra": {"type": ["object", "null"], "description": "the published server's options; ignored"},
        "repetition_detection": {"anyOf": [{"type": "null"}, ref("RepetitionDetection")]},
    }, ("messages",))
    # stream_options is only valid with stream: true (a 400 otherwise), as the validation says.
    request["if"] = {"properties": {"stream_options": {"type": "object"}}, "required": ["stream_options"]}
    request["then"] = {"properties": {"stream": {"const": True}}, "required": ["stream"]}
    return request


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
        "ChatMessage": _message(),
        "Tool": _tool(),
        "RepetitionDetection": _repetition(),
        "ChatCompletionRequest": _chat_request(),
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
