"""OpenAPI schemas and paths of the OpenAI-surface routes: /tokenize, /detokenize (and more as they come)."""

from __future__ import annotations

from collections.abc import Callable

from .openapi_schemas import ref

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


def extra_schemas() -> dict:
    """Component schemas of these routes, by name."""
    return {
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
    return {
        "/tokenize": {"post": op("Token ids of a prompt or of chat messages (vLLM's fields)", 200,
                                 ref("TokenizeResponse"), (400,), "TokenizeRequest", True)},
        "/detokenize": {"post": op("Text of token ids (vLLM's fields)", 200, ref("DetokenizeResponse"), (400,),
                                   "DetokenizeRequest", True)},
    }
