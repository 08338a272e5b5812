"""The built-in routes, registered through the `superlinear_http_routes` hook like any plugin's."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import falcon

from superlinear.plugins import hookimpl
from superlinear.plugins.hookspecs import RegisterHttpRoute

from .chat import ChatCompletions
from .completions import Completions
from .limits import Limits
from .metrics import CONTENT_TYPE, Metrics
from .openapi import OpenApi
from .resources import (
    Health,
    ModelItem,
    Models,
    SessionFork,
    SessionHistory,
    SessionItem,
    SessionResize,
    SessionResizeNextPow2,
    SessionRollback,
    Sessions,
)
from .services import Get
from .snapshot_import import SnapshotImport
from .snapshots import SessionSave, SnapshotItem, SnapshotLoad, Snapshots
from .tokenize import Detokenize, Tokenize

__all__ = ["BuiltinRoutes", "MetricsResource", "mount"]


@attrs.define
class MetricsResource:
    """GET /metrics: the Prometheus exposition text of this app's registry."""

    metrics: Metrics

    def on_get(self, req, resp):
        resp.content_type = CONTENT_TYPE
        resp.data = self.metrics.render()


@attrs.define
class BuiltinRoutes:
    """A plugin object (not a module: its resources need this app's services, metrics and limits)."""

    get: Get
    status: Callable[[], dict]
    metrics: Metrics
    limits: Limits
    secured: bool = False

    def resources(self) -> dict[str, object]:
        """Return every built-in resource by path."""
        get, lim, met = self.get, self.limits, self.metrics
        return {
            "/health": Health(self.status),
            "/metrics": MetricsResource(met),
            "/openapi.json": OpenApi.for_app(self.secured),
            "/v1/models": Models(get),
            "/v1/models/{model_id}": ModelItem(get),
            "/v1/chat/completions": ChatCompletions(get, met, lim),
            "/v1/completions": Completions(get, met, lim),
            "/tokenize": Tokenize(get, lim),
            "/detokenize": Detokenize(get, lim),
            "/v1/sessions": Sessions(get, lim),
            "/v1/sessions/{session_id}": SessionItem(get),
            "/v1/sessions/{session_id}/history": SessionHistory(get),
            "/v1/sessions/{session_id}/save": SessionSave(get, lim, met),
            "/v1/sessions/{session_id}/resize": SessionResize(get, lim),
            "/v1/sessions/{session_id}/resize/next_pow2": SessionResizeNextPow2(get, lim),
            "/v1/sessions/{session_id}/rollback": SessionRollback(get, lim),
            "/v1/sessions/{session_id}/fork": SessionFork(get, lim),
            "/v1/snapshots": Snapshots(get),
            "/v1/snapshots/import": SnapshotImport(get, lim, met, self.secured),
            "/v1/snapshots/{snapshot_id}": SnapshotItem(get, lim),
            "/v1/snapshots/{snapshot_id}/load": SnapshotLoad(get, lim, met),
        }

    @hookimpl
    def superlinear_http_routes(self, register: RegisterHttpRoute) -> None:
        """Register the OpenAI-compatible, session, snapshot and operational routes."""
        for path, resource in self.resources().items():
            register(path, resource)


def mount(app: falcon.App, routes: dict[str, object]) -> None:
    """Add every collected route to the app."""
    for path, resource in routes.items():
        app.add_route(path, resource)
