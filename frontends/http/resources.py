"""Falcon resources for health, models and sessions: small classes that translate HTTP to service calls."""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs
import falcon

from . import bodies
from . import render_sessions as rs
from .contract import read_body, to_json
from .errors import RETRY_AFTER
from .limits import Limits
from .responses import Health as HealthBody
from .responses import Model, ModelList
from .services import Get
from .session_responses import Deleted

__all__ = [
    "Health",
    "Models",
    "ModelItem",
    "Sessions",
    "SessionItem",
    "SessionHistory",
    "SessionResize",
    "SessionResizeNextPow2",
    "SessionRollback",
    "SessionFork",
]

log = logging.getLogger(__name__)


@attrs.define
class Health:
    """Liveness and readiness; never waits on the engine thread."""

    status: Callable[[], HealthBody]

    def on_get(self, req, resp):
        try:
            info = to_json(self.status())
        except Exception:  # noqa: BLE001 - the liveness probe never answers 500
            log.exception("/health: building the status failed")
            info = to_json(HealthBody(status="error", error="the status could not be built (see the server log)"))
        resp.status = 200 if info["status"] == "ok" else 503
        if resp.status != 200:
            resp.set_header("Retry-After", RETRY_AFTER)
        resp.media = info

    def on_head(self, req, resp):
        """The same status and headers as GET, for load balancers that probe with HEAD."""
        self.on_get(req, resp)


def _model(name: str) -> Model:
    return Model(id=name, object="model", created=0, owned_by="superlinear")


@attrs.define
class Models:
    get: Get

    def on_get(self, req, resp):
        resp.media = to_json(ModelList(object="list", data=(_model(self.get().model_name),)))


@attrs.define
class ModelItem:
    get: Get

    def on_get(self, req, resp, model_id):
        name = self.get().model_name
        if model_id != name:
            raise falcon.HTTPNotFound(title="model_not_found", description=f"no model {model_id!r}")
        resp.media = to_json(_model(name))


@attrs.define
class Sessions:
    get: Get
    limits: Limits

    def on_post(self, req, resp):
        body = read_body(req, bodies.SessionCreate, self.limits.max_body_bytes)
        info = self.get().sessions.create(body.session_id, body.max_seq_len)
        resp.status = 201
        resp.media = to_json(rs.session_info(info))

    def on_get(self, req, resp):
        resp.media = to_json(rs.session_list(self.get().sessions.list()))


@attrs.define
class SessionItem:
    get: Get

    def on_get(self, req, resp, session_id):
        resp.media = to_json(rs.session_info(self.get().sessions.info(session_id)))

    def on_delete(self, req, resp, session_id):
        self.get().sessions.delete(session_id)
        resp.media = to_json(Deleted(session_id=session_id, deleted=True))


@attrs.define
class SessionHistory:
    get: Get

    def on_get(self, req, resp, session_id):
        resp.media = to_json(rs.session_history(session_id, self.get().sessions.history(session_id)))


@attrs.define
class SessionResize:
    get: Get
    limits: Limits

    def on_post(self, req, resp, session_id):
        body = read_body(req, bodies.SessionResize, self.limits.max_body_bytes, required=True)
        resp.media = to_json(rs.session_info(self.get().sessions.resize(session_id, body.max_seq_len)))


@attrs.define
class SessionResizeNextPow2:
    """Grow a session's capacity to the next power of two strictly above its current one."""

    get: Get
    limits: Limits

    def on_post(self, req, resp, session_id):
        read_body(req, bodies.SessionResizeNextPow2, self.limits.max_body_bytes)
        sessions = self.get().sessions
        current = sessions.info(session_id).max_seq_len
        target = 1 << max(current, 1).bit_length()
        resp.media = to_json(rs.resized_next_pow2(sessions.resize(session_id, target), current))


@attrs.define
class SessionRollback:
    """Cut a session's conversation back to its first `keep_messages` messages."""

    get: Get
    limits: Limits

    def on_post(self, req, resp, session_id):
        body = read_body(req, bodies.SessionRollback, self.limits.max_body_bytes, required=True)
        resp.media = to_json(rs.session_info(self.get().sessions.rollback(session_id, body.keep_messages)))


@attrs.define
class SessionFork:
    get: Get
    limits: Limits

    def on_post(self, req, resp, session_id):
        body = read_body(req, bodies.SessionFork, self.limits.max_body_bytes)
        info = self.get().sessions.fork(session_id, body.session_id)
        resp.status = 201
        resp.media = to_json(rs.session_info(info))

