"""POST /tokenize and /detokenize, with vLLM's request and response fields.

`/tokenize` takes a `prompt` (text as is) or `messages` (rendered by the chat template exactly as a
stateless chat turn prefills them); `/detokenize` turns ids back into text. Both run on the request
thread: the tokenizer is thread-safe and the engine thread is not needed.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from superlinear.core.prompt import plan_prompt

from .body import read_json
from .contract import parse, to_json
from .fields import require
from .limits import Limits
from .responses import DetokenizeResponse, TokenizeResponse
from .services import Get, Services
from .wire import check_model
from .wire_bodies import DetokenizeRequest, TokenizeRequest
from .wire_messages import to_message

__all__ = ["Tokenize", "Detokenize", "tokenize", "detokenize"]


def _chat_ids(body: TokenizeRequest, svc: Services) -> list[int]:
    tok = svc.sessions.tok
    kwargs = dict(body.chat_template_kwargs or {})
    if body.tools:
        kwargs["tools"] = list(body.tools)
    plan = plan_prompt(tok, (), tuple(to_message(m) for m in body.messages), "", kwargs)
    ids = tok.encode(plan.context)
    return ids + tok.encode(plan.generation) if body.add_generation_prompt else ids


def tokenize(raw: Mapping, svc: Services) -> dict:
    """Answer a /tokenize body: {count, max_model_len, tokens, token_strs}."""
    body = parse(TokenizeRequest, raw)
    check_model(body.model, svc.model_name)
    # This engine never adds BOS/EOS on its own (the chat template writes them): add_special_tokens does nothing.
    if body.prompt is not None:
        ids = svc.sessions.tok.encode(body.prompt)
    else:
        ids = _chat_ids(body, svc)
    strs = [svc.sessions.tok.decode([i]) for i in ids] if body.return_token_strs else None
    return to_json(TokenizeResponse(count=len(ids), max_model_len=svc.sessions.max_len_limit, tokens=ids,
                                    token_strs=strs))


def detokenize(raw: Mapping, svc: Services) -> dict:
    """Answer a /detokenize body: {prompt}; every id must be in the vocabulary."""
    body = parse(DetokenizeRequest, raw)
    check_model(body.model, svc.model_name)
    vocab = svc.sessions.model.info.vocab_size
    require(all(i < vocab for i in body.tokens), f"tokens must be integers in [0, {vocab})", "tokens")
    return to_json(DetokenizeResponse(prompt=svc.sessions.tok.decode(list(body.tokens))))


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
