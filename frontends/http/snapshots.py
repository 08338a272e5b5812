"""Falcon resources for saving sessions to snapshots and managing the snapshot store."""

from __future__ import annotations

import attrs

from . import bodies
from .bodies import SnapshotMetadata, SnapshotPatch
from .contract import read_body, to_json
from .limits import Limits
from .metrics import Metrics
from .render import unstructure
from .services import Get
from .session_responses import Deleted

__all__ = ["SessionSave", "Snapshots", "SnapshotItem", "SnapshotLoad", "both_shapes"]


def both_shapes(info: dict, model_id: str | None) -> dict:
    """Add the published server's nested manifest fields beside our flat ones.

    The published `spl` client reads `metadata.{title,description,tags}` (its docs REPL keeps its source
    list in `metadata.description`), `session.{current_pos,max_seq_len}` and `model_id`.
    """
    return {
        **info,
        "metadata": {"title": info.get("title"), "description": info.get("description"),
                     "tags": list(info.get("tags") or ())},
        "session": {"current_pos": info.get("tokens"), "max_seq_len": info.get("max_seq_len")},
        "model_id": model_id,
    }


@attrs.define
class SessionSave:
    get: Get
    limits: Limits
    metrics: Metrics

    def on_post(self, req, resp, session_id):
        fields = read_body(req, SnapshotMetadata, self.limits.max_body_bytes).changes()
        result = self.get().sessions.save(session_id, fields.get("title"),
                                          fields.get("description"), fields.get("tags", ()))
        self.metrics.snapshot_written.inc(result.get("bytes", 0))
        resp.media = result


@attrs.define
class SnapshotLoad:
    get: Get
    limits: Limits
    metrics: Metrics

    def on_post(self, req, resp, snapshot_id):
        body = read_body(req, bodies.SnapshotLoad, self.limits.max_body_bytes)
        result = self.get().sessions.load(snapshot_id, body.session_id, body.force)
        self.metrics.snapshot_read.inc(result.get("bytes", 0))
        resp.media = result


@attrs.define
class Snapshots:
    get: Get

    def on_get(self, req, resp):
        svc = self.get()
        data = [both_shapes({**unstructure(i), "compatible": ok}, svc.model_name if ok else None)
                for i, ok in svc.sessions.snapshots()]
        # `snapshots` beside `data`: the published client reads that key (as `sessions` for sessions).
        resp.media = {"object": "list", "data": data, "snapshots": data}


@attrs.define
class SnapshotItem:
    get: Get
    limits: Limits

    def on_get(self, req, resp, snapshot_id):
        svc = self.get()
        resp.media = both_shapes(unstructure(svc.sessions.store.get(snapshot_id)), None)

    def on_patch(self, req, resp, snapshot_id):
        fields = read_body(req, SnapshotPatch, self.limits.max_body_bytes).changes()
        store = self.get().sessions.store
        # Ask for the snapshot first so an unknown id is a 404 whatever the store's patch does with it.
        store.get(snapshot_id)
        resp.media = both_shapes(unstructure(store.patch(snapshot_id, **fields)), None)

    def on_delete(self, req, resp, snapshot_id):
        self.get().sessions.store.delete(snapshot_id)
        resp.media = to_json(Deleted(snapshot_id=snapshot_id, deleted=True))
