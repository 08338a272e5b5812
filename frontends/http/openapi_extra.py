"""OpenAPI schemas and paths of the OpenAI-surface routes: /tokenize, /detokenize (and more as they come)."""

from __future__ import annotations

from collections.abc import Callable

from .openapi_schemas import ref, schemas

__all__ = ["extra_schemas", "extra_paths"]

_STR = {"type": "string"}
_INT = {"type": "integer"}
_OPT_BOOL = {"type": ["boolean", "null"]}


def _closed(props: dict, required: tuple = ()) -> dict:
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


def _tokenize_request() -> dict:
    common = {"model": {"type": ["string", "null"]}, "add_special_tokens": _OPT_BOOL,
              "return_token_strs": _OPT_BOOL}
    prompt = _closed({**common, "prompt": _STR}, ("prompt",))
    chat = _closed({**common, "messages": {"type": "array", "minItems": 1, "items": ref("ChatMessage")},
                    "add_generation_prompt": _OPT_BOOL,
                    "chat_template_kwargs": {"type": ["object", "null"]},
                    "tools": {"type": ["array", "null"], "maxItems": 128, "items": ref("Tool")}}, ("messages",))
    return {"oneOf": [prompt, chat], "description": "a prompt as is, or messages rendered by the chat template "
            "as a stateless chat turn prefills them (the generation prompt included unless "
            "add_generation_prompt is false); no BOS/EOS is ever added"}


_SHARED = ("model", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "n", "stream", "stream_options",
           "logit_bias", "presence_penalty", "frequency_penalty", "user", "repetition_detection")


def _completion_request() -> dict:
    chat_request = schemas()["ChatCompletionRequest"]
    chat = chat_request["properties"]
    ids = {"type": "array", "items": {"type": "integer", "minimum": 0}}
    prompt = {"anyOf": [_STR, ids, {"type": "array", "minItems": 1, "maxItems": 1, "items": {"anyOf": [_STR, ids]}}],
              "description": "a string or a list of token ids (one prompt per request)"}
    request = _closed({
        **{k: chat[k] for k in _SHARED}, "prompt": prompt,
        "echo": _OPT_BOOL, "logprobs": {"type": ["integer", "null"], "minimum": 0, "maximum": 20},
        "suffix": {"enum": ["", None], "description": "fill-in-the-middle is not supported"},
        "best_of": {"enum": [1, None]},
        "session_id": {"type": "null", "description": "sessions hold chat transcripts: use chat completions"},
    }, ("prompt",))
    # stream_options needs stream: true, as in chat completions.
    request["if"], request["then"] = chat_request["if"], chat_request["then"]
    return request


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
        "CompletionRequest": _completion_request(),
        "Completion": _completion(),
        "TokenizeRequest": _tokenize_request(),
        "TokenizeResponse": _closed({"count": _INT, "max_model_len": _INT, "tokens": {"type": "array", "items": _INT},
                                     "token_strs": {"type": ["array", "null"], "items": _STR}},
                                    ("count", "max_model_len", "tokens", "token_strs")),
        "DetokenizeRequest": _closed({"model": {"type": ["string", "null"]},
                                      "tokens": {"type": "array", "items": {"type": "integer", "minimum": 0}}},
                                     ("tokens",)),
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
