"""GET /openapi.json: the OpenAPI 3.1 description of every built-in route.

Bodies come from their body classes (bodies.py, wire_bodies.py, responses.py, session_responses.py), the
same declarations that validate requests; this module adds the routes, their statuses and their errors."""

from __future__ import annotations

import attrs

from . import responses, session_responses
from .bodies import BODIES
from .contract import Components
from .path_ids import PATH_IDS
from .wire_bodies import ChatCompletionRequest, CompletionRequest, DetokenizeRequest, TokenizeRequest

__all__ = ["openapi_document", "OpenApi"]

_ERROR_TEXT = {
    400: "Invalid request (the error's param names the field)",
    401: "Missing or wrong API key",
    403: "Not allowed to this client (snapshot import: loopback clients, or any with an API key)",
    404: "No such session, snapshot, model or route",
    405: "Method not allowed on this route",
    409: "Conflict: the id exists, the session is busy (code session_busy), or the model differs",
    413: "Request body over the size limit",
    415: "The body is not JSON (Content-Type)",
    422: "The snapshot is corrupt, truncated or of an unknown schema",
    499: "The client closed the connection before the answer",
    501: "Not available in this build",
    500: "Internal error (code internal_error; the cause is in the server log, never in the answer)",
    503: "Loading, shutting down, or not enough memory (code insufficient_memory); see Retry-After",
    507: "No space left to write the snapshot (code insufficient_storage)",
}
# Every route may answer these; a route with a body also 400 (not JSON, a field at fault) and 415.
_COMMON = (401, 405, 413, 500, 503)
_WITH_BODY = (400, 415)


_RESPONSES = (*(getattr(responses, n) for n in responses.__all__),
              *(getattr(session_responses, n) for n in session_responses.__all__))
_REQUESTS = (ChatCompletionRequest, CompletionRequest, TokenizeRequest, DetokenizeRequest, *BODIES)


def ref(name: str) -> dict:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _responses(ok: int, ok_schema: dict | None, errors: tuple[int, ...], content: dict | None = None) -> dict:
    out: dict = {str(ok): {"description": "Success", "content": content or _json(ok_schema or {})}}
    for status in sorted(set(errors) | set(_COMMON)):
        entry: dict = {"description": _ERROR_TEXT[status], "content": _json(ref("ErrorResponse"))}
        if status in (405, 503):
            name = "Allow" if status == 405 else "Retry-After"
            entry["headers"] = {name: {"schema": {"type": "string"}}}
        out[str(status)] = entry
    return out


def _op(summary: str, ok: int, ok_schema: dict | None, errors: tuple[int, ...] = (), body: str | None = None,
        required: bool = False, content: dict | None = None) -> dict:
    errors = (*errors, *_WITH_BODY) if body else errors
    op: dict = {"summary": summary, "responses": _responses(ok, ok_schema, errors, content)}
    if body:
        op["requestBody"] = {"required": required, "content": _json(ref(body))}
    return op


_EXAMPLES = {"session_id": "my-chat", "snapshot_id": "764cb17e"}


def _path_param(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "example": _EXAMPLES[name],
            "schema": PATH_IDS[name].schema(Components())}


def _session_paths() -> dict:
    sid = [_path_param("session_id")]
    info = ref("SessionInfo")
    return {
        "/v1/sessions": {
            "post": _op("Create a session", 201, info, (400, 409), "SessionCreate"),
            "get": _op("List sessions", 200, ref("SessionList")),
        },
        "/v1/sessions/{session_id}": {
            "parameters": sid,
            "get": _op("Get session info", 200, info, (400, 404)),
            "delete": _op("Close a session and free its memory", 200, ref("Deleted"), (400, 404, 409)),
        },
        "/v1/sessions/{session_id}/history": {
            "parameters": sid, "get": _op("The session's messages", 200, ref("SessionHistory"), (400, 404))},
        "/v1/sessions/{session_id}/resize": {
            "parameters": sid,
            "post": _op("Change the session's maximum length", 200, info, (400, 404, 409), "SessionResize", True)},
        "/v1/sessions/{session_id}/resize/next_pow2": {
            "parameters": sid,
            "post": _op("Grow the session's maximum length to the next power of two", 200, ref("ResizedNextPow2"),
                        (400, 404, 409), "SessionResizeNextPow2")},
        "/v1/sessions/{session_id}/rollback": {
            "parameters": sid,
            "post": _op("Cut the conversation back to its first keep_messages messages", 200, info,
                        (400, 404, 409, 501), "SessionRollback", True)},
        "/v1/sessions/{session_id}/fork": {
            "parameters": sid,
            "post": _op("Copy the session in memory under a new id", 201, info, (400, 404, 409), "SessionFork")},
        "/v1/sessions/{session_id}/save": {
            "parameters": sid,
            "post": _op("Save the session as a snapshot", 200, ref("SaveResult"), (400, 404, 409, 507),
                        "SnapshotMetadata")},
    }


def _snapshot_paths() -> dict:
    snap = [_path_param("snapshot_id")]
    return {
        "/v1/snapshots": {"get": _op("List snapshots, newest first", 200, ref("SnapshotList"))},
        "/v1/snapshots/{snapshot_id}": {
            "parameters": snap,
            "get": _op("Get a snapshot's manifest", 200, ref("SnapshotInfo"), (400, 404, 422)),
            "patch": _op("Edit title, description, tags", 200, ref("SnapshotInfo"), (400, 404, 422, 507),
                         "SnapshotPatch"),
            "delete": _op("Delete a snapshot", 200, ref("Deleted"), (400, 404)),
        },
        "/v1/snapshots/import": {
            "post": _op("Import a snapshot directory saved by the published superlinear server", 200,
                        ref("ImportResult"), (400, 403, 409, 422, 507), "SnapshotImport", required=True)},
        "/v1/snapshots/{snapshot_id}/load": {
            "parameters": snap,
            "post": _op("Load a snapshot into a session", 200, ref("LoadResult"), (400, 404, 409, 422),
                        "SnapshotLoad")},
    }


def _events(chunk: str) -> dict:
    """Server-sent events, as SSE parsers (and OpenAPI 3.2's itemSchema) see each: `data` is a `chunk` (a
    response body class, the one the stream is built as) or an error object as JSON, or the last, [DONE]."""
    json_data = {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"anyOf": [ref(chunk), ref("ErrorResponse")]}}
    data = {"anyOf": [json_data, {"const": "[DONE]"}],
            "description": f"a {chunk} or an Error as JSON; the last event's data is [DONE]"}
    event = {"type": "object", "required": ["data"], "properties": {"data": data, "event": {"type": "string"}}}
    return {"text/event-stream": {"schema": event}}


def _openai_paths() -> dict:
    chat = _op("Chat completion (stream: true gives server-sent events)", 200, None, (400, 404, 409, 499),
               "ChatCompletionRequest", True, content={**_json(ref("ChatCompletion")), **_events("ChatCompletionChunk")})
    text = _op("Text completion (stream: true gives server-sent events)", 200, None, (400, 404, 499),
               "CompletionRequest", True, content={**_json(ref("Completion")), **_events("CompletionChunk")})
    return {
        "/v1/chat/completions": {"post": chat},
        "/v1/completions": {"post": text},
        "/tokenize": {"post": _op("Token ids of a prompt or of chat messages (vLLM's fields)", 200,
                                  ref("TokenizeResponse"), (400,), "TokenizeRequest", True)},
        "/detokenize": {"post": _op("Text of token ids (vLLM's fields)", 200, ref("DetokenizeResponse"), (400,),
                                    "DetokenizeRequest", True)},
    }


def _core_paths() -> dict:
    text = {"text/plain": {"schema": {"type": "string"}}}
    health = {"summary": "Liveness and readiness (never needs the API key)", "security": [],
              "responses": {"200": {"description": "Ready", "content": _json(ref("Health"))},
                            "503": {"description": "Loading, failed or stopping", "content": _json(ref("Health")),
                                    "headers": {"Retry-After": {"schema": {"type": "string"}}}}}}
    return {
        "/health": {"get": health, "head": {**health, "summary": "Liveness and readiness, headers only"}},
        "/metrics": {"get": _op("Prometheus metrics", 200, None, (), content=text)},
        "/openapi.json": {"get": _op("This document", 200, {"type": "object"})},
        "/v1/models": {"get": _op("List models", 200, ref("ModelList"))},
        "/v1/models/{model_id}": {"parameters": [{"name": "model_id", "in": "path", "required": True,
                                                  "schema": {"type": "string"}}],
                                  "get": _op("Get a model", 200, ref("Model"), (404,))},
    }


def _components() -> dict:
    """Every component schema, from the body classes."""
    components = Components()
    for cls in (*_RESPONSES, *_REQUESTS):
        components.ref(cls)
    return components.schemas


def openapi_document(secured: bool = False, version: str = "0.1.0") -> dict:
    """Return the OpenAPI 3.1 document of the built-in routes (plugin routes are not described).

    `secured` (the server runs with an API key) adds the bearer requirement to every route but /health.
    """
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "superlinear", "version": version,
                 "description": "OpenAI-compatible chat completions with stateful sessions and snapshots. "
                                "Every error body is {\"error\": {message, type, param, code}}."},
        "servers": [{"url": "/"}],
        "paths": {**_core_paths(), **_openai_paths(), **_session_paths(), **_snapshot_paths()},
        "components": {"schemas": _components()},
    }
    if secured:
        doc["security"] = [{"bearer": []}]
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    else:
        for item in doc["paths"].values():
            for op in item.values():
                if isinstance(op, dict) and "responses" in op:
                    op["responses"].pop("401", None)
    return doc


@attrs.define
class OpenApi:
    """Serve the document, built once per app."""

    document: dict = attrs.Factory(openapi_document)

    @classmethod
    def for_app(cls, secured: bool) -> OpenApi:
        return cls(openapi_document(secured))

    def on_get(self, req, resp):
        resp.media = self.document
