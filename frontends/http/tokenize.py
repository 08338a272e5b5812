"""POST /tokenize and /detokenize, with vLLM's request and response fields.

`/tokenize` takes a `prompt` (text as is) or `messages` (rendered by the chat template exactly as a
stateless chat turn prefills them); `/detokenize` turns ids back into text. Both run on the request
thread: the tokenizer is thread-safe and the engine thread is not needed.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ...core.prompt import plan_prompt
from .body import read_json, reject_unknown
from .limits import Limits
from .services import Get, Services
from .wire import model_matches
from .wire_messages import parse_messages, parse_tools, require

__all__ = ["Tokenize", "Detokenize", "TOKENIZE_FIELDS", "MAX_DETOKENIZE_IDS"]

TOKENIZE_FIELDS = ("model", "prompt", "messages", "add_special_tokens", "add_generation_prompt",
                   "return_token_strs", "chat_template_kwargs", "tools")
MAX_DETOKENIZE_IDS = 1 << 20


def _flag(body: Mapping, key: str, default: bool) -> bool:
    value = body.get(key)
    require(value is None or isinstance(value, bool), f"{key} must be a boolean", key)
    return default if value is None else value


def _model(body: Mapping, svc: Services) -> None:
    model = body.get("model")
    require(model in (None, "") or (isinstance(model, str) and model_matches(model, svc.model_name)),
            f"model {model!r} is not served here", "model")


def _chat_ids(body: Mapping, svc: Services) -> list[int]:
    tok = svc.sessions.tok
    kwargs = body.get("chat_template_kwargs")
    require(kwargs is None or isinstance(kwargs, dict), "chat_template_kwargs must be an object",
            "chat_template_kwargs")
    reserved = sorted(set(kwargs or {}) & {"messages", "add_generation_prompt", "tools", "bos_token", "eos_token"})
    require(not reserved, f"chat_template_kwargs may not set {', '.join(reserved)}", "chat_template_kwargs")
    kwargs = dict(kwargs or {})
    tools = parse_tools(body.get("tools"))
    if tools:
        kwargs["tools"] = tools
    plan = plan_prompt(tok, (), parse_messages(body.get("messages")), "", kwargs)
    ids = tok.encode(plan.context)
    return ids + tok.encode(plan.generation) if _flag(body, "add_generation_prompt", True) else ids


def tokenize(body: Mapping, svc: Services) -> dict:
    """Answer a /tokenize body: {count, max_model_len, tokens, token_strs}."""
    reject_unknown(body, TOKENIZE_FIELDS)
    _model(body, svc)
    # This engine never adds BOS/EOS on its own (the chat template writes them), so neither does this.
    _flag(body, "add_special_tokens", True)
    has_prompt, has_messages = "prompt" in body, "messages" in body
    require(has_prompt != has_messages, "give exactly one of prompt and messages", "prompt")
    if has_prompt:
        require(isinstance(body["prompt"], str), "prompt must be a string", "prompt")
        require(not {"add_generation_prompt", "chat_template_kwargs", "tools"} & set(body),
                "add_generation_prompt, chat_template_kwargs and tools go with messages", "prompt")
        ids = svc.sessions.tok.encode(body["prompt"])
    else:
        ids = _chat_ids(body, svc)
    strs = [svc.sessions.tok.decode([i]) for i in ids] if _flag(body, "return_token_strs", False) else None
    return {"count": len(ids), "max_model_len": svc.sessions.max_len_limit, "tokens": ids, "token_strs": strs}


def detokenize(body: Mapping, svc: Services) -> dict:
    """Answer a /detokenize body: {prompt}; every id must be in the vocabulary."""
    reject_unknown(body, ("model", "tokens"))
    _model(body, svc)
    ids = body.get("tokens")
    vocab = svc.sessions.model.info.vocab_size
    require(isinstance(ids, list) and len(ids) <= MAX_DETOKENIZE_IDS, "tokens must be a list of token ids",
            "tokens")
    require(all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < vocab for i in ids),
            f"tokens must be integers in [0, {vocab})", "tokens")
    return {"prompt": svc.sessions.tok.decode(ids)}


@attrs.define
class Tokenize:
    """POST /tokenize."""

    get: Get
    limits: Limits

    def on_post(self, req, resp):
        resp.media = tokenize(read_json(req, self.limits.max_body_bytes, required=True), self.get())


@attrs.define
class Detokenize:
    """POST /detokenize."""

    get: Get
    limits: Limits

    def on_post(self, req, resp):
        resp.media = detokenize(read_json(req, self.limits.max_body_bytes, required=True), self.get())
