"""Falcon resources for saving sessions to snapshots and managing the snapshot store."""

from __future__ import annotations

import attrs

from . import bodies
from . import render_sessions as rs
from .bodies import SnapshotMetadata, SnapshotPatch
from .contract import read_body, to_json
from .limits import Limits
from .metrics import Metrics
from .services import Get
from .session_responses import Deleted

__all__ = ["SessionSave", "Snapshots", "SnapshotItem", "SnapshotLoad"]


@attrs.define
class SessionSave:
    get: Get
    limits: Limits
    metrics: Metrics

    def on_post(self, req, resp, session_id):
        fields = read_body(req, SnapshotMetadata, self.limits.max_body_bytes).changes()
        result = self.get().sessions.save(session_id, fields.get("title"),
                                          fields.get("description"), fields.get("tags", ()))
        answer = rs.save_result(result)
        self.metrics.snapshot_written.inc(answer.bytes)
        resp.media = to_json(answer)


@attrs.define
class SnapshotLoad:
    get: Get
    limits: Limits
    metrics: Metrics

    def on_post(self, req, resp, snapshot_id):
        body = read_body(req, bodies.SnapshotLoad, self.limits.max_body_bytes)
        result = self.get().sessions.load(snapshot_id, body.session_id, body.force)
        answer = rs.load_result(result)
        self.metrics.snapshot_read.inc(answer.bytes)
        resp.media = to_json(answer)


@attrs.define
class Snapshots:
    get: Get

    def on_get(self, req, resp):
        svc = self.get()
        resp.media = to_json(rs.snapshot_list(svc.sessions.snapshots(), svc.model_name))


@attrs.define
class SnapshotItem:
    get: Get
    limits: Limits

    def on_get(self, req, resp, snapshot_id):
        resp.media = to_json(rs.snapshot_info(self.get().sessions.store.get(snapshot_id)))

    def on_patch(self, req, resp, snapshot_id):
        fields = read_body(req, SnapshotPatch, self.limits.max_body_bytes).changes()
        store = self.get().sessions.store
        # Ask for the snapshot first so an unknown id is a 404 whatever the store's patch does with it.
        store.get(snapshot_id)
        resp.media = to_json(rs.snapshot_info(store.patch(snapshot_id, **fields)))

    def on_delete(self, req, resp, snapshot_id):
        self.get().sessions.store.delete(snapshot_id)
        resp.media = to_json(Deleted(snapshot_id=snapshot_id, deleted=True))
