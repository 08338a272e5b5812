"""Falcon resources: small classes that translate HTTP to calls on the session service."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import attrs
import falcon

from ...core import InvalidRequest, SessionService, validate_id
from .streaming import sse_stream
from .wire import completion_json, make_converter, parse_chat_request

__all__ = ["Services", "add_routes"]


@attrs.define(eq=False)
class Services:
    """What the resources need, built by the composition root."""

    sessions: SessionService
    model_name: str
    default_max_tokens: int = 512


Get = Callable[[], Services]


def _body(req: falcon.Request) -> dict:
    if not req.content_length:
        return {}
    body = req.get_media()
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", param="body")
    return body


@attrs.define
class Health:
    get_services: Callable[[], Services | None]
    status: Callable[[], dict]

    def on_get(self, req, resp):
        info = self.status()
        resp.status = 200 if info.get("status") == "ok" else 503
        resp.media = info


@attrs.define
class Models:
    get: Get

    def on_get(self, req, resp):
        resp.media = {"object": "list", "data": [_model(self.get().model_name)]}


@attrs.define
class ModelItem:
    get: Get

    def on_get(self, req, resp, model_id):
        name = self.get().model_name
        if model_id != name:
            raise falcon.HTTPNotFound(title="model_not_found", description=f"no model {model_id!r}")
        resp.media = _model(name)


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "superlinear"}


@attrs.define
class ChatCompletions:
    get: Get

    def on_post(self, req, resp):
        svc = self.get()
        body = _body(req)
        request = parse_chat_request(body, svc.model_name, svc.default_max_tokens)
        handle = svc.sessions.chat(request)
        cid = f"chatcmpl-{secrets.token_hex(12)}"
        if body.get("stream"):
            options = body.get("stream_options") or {}
            resp.content_type = "text/event-stream"
            resp.set_header("Cache-Control", "no-cache")
            resp.stream = sse_stream(handle, cid, svc.model_name, bool(options.get("include_usage")))
            return
        resp.media = _collect(handle, cid, svc.model_name)


def _collect(handle, cid: str, model: str) -> dict:
    content, reasoning = [], []
    try:
        for event in handle.events():
            if event.kind == "content":
                content.append(event.text)
            elif event.kind == "reasoning":
                reasoning.append(event.text)
            else:
                done = event
    finally:
        handle.cancel()
    return completion_json(cid, model, "".join(content), "".join(reasoning), done.finish_reason, done.usage)


@attrs.define
class Sessions:
    get: Get

    def on_post(self, req, resp):
        body = _body(req)
        info = self.get().sessions.create(body.get("session_id"), body.get("max_seq_len"))
        resp.status = 201
        resp.media = _unstructure(info)

    def on_get(self, req, resp):
        infos = self.get().sessions.list()
        resp.media = {"sessions": [i.session_id for i in infos], "data": [_unstructure(i) for i in infos]}


@attrs.define
class SessionItem:
    get: Get

    def on_get(self, req, resp, session_id):
        resp.media = _unstructure(self.get().sessions.info(validate_id(session_id, "session_id")))

    def on_delete(self, req, resp, session_id):
        self.get().sessions.delete(validate_id(session_id, "session_id"))
        resp.media = {"session_id": session_id, "deleted": True}


@attrs.define
class SessionHistory:
    get: Get

    def on_get(self, req, resp, session_id):
        messages = self.get().sessions.history(validate_id(session_id, "session_id"))
        resp.media = {"session_id": session_id, "messages": [_message(m) for m in messages]}


@attrs.define
class SessionSave:
    get: Get

    def on_post(self, req, resp, session_id):
        body = _body(req)
        tags = body.get("tags") or ()
        if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
            raise InvalidRequest("tags must be a list of strings", param="tags")
        resp.media = self.get().sessions.save(
            validate_id(session_id, "session_id"), body.get("title"), body.get("description"), tuple(tags)
        )


@attrs.define
class SnapshotLoad:
    get: Get

    def on_post(self, req, resp, snapshot_id):
        body = _body(req)
        resp.media = self.get().sessions.load(
            validate_id(snapshot_id, "snapshot_id"), body.get("session_id"), bool(body.get("force", False))
        )


@attrs.define
class SessionResize:
    get: Get

    def on_post(self, req, resp, session_id):
        body = _body(req)
        resp.media = _unstructure(self.get().sessions.resize(validate_id(session_id, "session_id"),
                                                             body.get("max_seq_len")))


@attrs.define
class SessionFork:
    get: Get

    def on_post(self, req, resp, session_id):
        body = _body(req)
        info = self.get().sessions.fork(validate_id(session_id, "session_id"), body.get("session_id"))
        resp.status = 201
        resp.media = _unstructure(info)


@attrs.define
class Snapshots:
    get: Get

    def on_get(self, req, resp):
        items = self.get().sessions.snapshots()
        resp.media = {"object": "list", "data": [{**_unstructure(i), "compatible": ok} for i, ok in items]}


@attrs.define
class SnapshotItem:
    get: Get

    def on_get(self, req, resp, snapshot_id):
        store = self.get().sessions.store
        resp.media = _unstructure(store.get(validate_id(snapshot_id, "snapshot_id")))

    def on_patch(self, req, resp, snapshot_id):
        body = _body(req)
        unknown = sorted(set(body) - {"title", "description", "tags"})
        if unknown:
            raise InvalidRequest(f"only title, description and tags can change, not {', '.join(unknown)}",
                                 param=unknown[0])
        store = self.get().sessions.store
        resp.media = _unstructure(store.patch(validate_id(snapshot_id, "snapshot_id"), **body))

    def on_delete(self, req, resp, snapshot_id):
        self.get().sessions.store.delete(validate_id(snapshot_id, "snapshot_id"))
        resp.media = {"snapshot_id": snapshot_id, "deleted": True}


def _message(m) -> dict:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.reasoning_content:
        out["reasoning_content"] = m.reasoning_content
    return out


def _unstructure(value) -> dict:
    data = make_converter().unstructure(value)
    if "cached_tokens" in data:
        data["cache_position"] = data["cached_tokens"]
    return data


def add_routes(app: falcon.App, get: Get, health: Health) -> None:
    """Mount every route on `app`."""
    app.add_route("/health", health)
    app.add_route("/v1/models", Models(get))
    app.add_route("/v1/models/{model_id}", ModelItem(get))
    app.add_route("/v1/chat/completions", ChatCompletions(get))
    app.add_route("/v1/sessions", Sessions(get))
    app.add_route("/v1/sessions/{session_id}", SessionItem(get))
    app.add_route("/v1/sessions/{session_id}/history", SessionHistory(get))
    app.add_route("/v1/sessions/{session_id}/save", SessionSave(get))
    app.add_route("/v1/sessions/{session_id}/resize", SessionResize(get))
    app.add_route("/v1/sessions/{session_id}/fork", SessionFork(get))
    app.add_route("/v1/snapshots", Snapshots(get))
    app.add_route("/v1/snapshots/{snapshot_id}", SnapshotItem(get))
    app.add_route("/v1/snapshots/{snapshot_id}/load", SnapshotLoad(get))
