"""POST /v1/snapshots/import: turn a snapshot directory of the published superlinear server into ours.

The import runs here, where the model and tokenizer are loaded: checking the cache's shapes against the
model and recovering the token ids from the transcript both need them, and a client process would have to
load a 30B model to do the same. The server reads a path on its own file system, so the route is open only
to loopback clients, or to any client when the server requires an API key (the key holder runs the server).
The cache is unpickled with `weights_only=True`: tensors and plain containers only, nothing executes.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import attrs
import falcon

from superlinear.core import InvalidRequest, PublishedSource, SnapshotError
from superlinear.storage.published import PublishedSnapshot, read_published_snapshot

from . import bodies
from .contract import read_body, to_json
from .limits import Limits
from .metrics import Metrics
from .render_sessions import import_result
from .services import Get
from .wire_messages import parse_messages

__all__ = ["SnapshotImport"]

# The message fields the published server's template rendering reads; others it stored (a client's extra
# keys) never reached its cache, so they are dropped rather than refused.
_RENDERED = ("role", "content", "tool_calls", "tool_call_id")


@attrs.define
class SnapshotImport:
    get: Get
    limits: Limits
    metrics: Metrics
    secured: bool = False

    def on_post(self, req, resp):
        if not (self.secured or _loopback(req.remote_addr)):
            raise falcon.HTTPForbidden(
                description="snapshot import reads the server's files: it is allowed from loopback clients, "
                            "or from any client when the server requires an API key")
        path = read_body(req, bodies.SnapshotImport, self.limits.max_body_bytes).path
        svc = self.get()
        model = svc.sessions.model
        if not hasattr(model, "published_arrays"):
            raise InvalidRequest("the loaded model cannot import published snapshots", param="path")
        published = read_published_snapshot(Path(path))
        arrays = model.published_arrays(published.cache)
        answer = import_result(svc.sessions.import_published(_source(published), arrays))
        self.metrics.snapshot_written.inc(answer.bytes)
        resp.media = to_json(answer)


def _source(published: PublishedSnapshot) -> PublishedSource:
    """The manifest and transcript fields an import keeps, validated as a chat request's would be."""
    messages = [{k: v for k, v in m.items() if k in _RENDERED} if isinstance(m, dict) else m
                for m in published.messages]
    try:
        transcript = parse_messages(messages) if messages else ()
    except InvalidRequest as exc:
        raise SnapshotError(f"transcript.json: {exc.message}", param="path") from exc
    meta = published.metadata
    tags = meta.get("tags") if isinstance(meta.get("tags"), list) else []
    return PublishedSource(
        snapshot_id=published.snapshot_id,
        created_at=published.created_at,
        current_pos=published.current_pos,
        max_seq_len=published.max_seq_len,
        transcript=transcript,
        title=meta.get("title") if isinstance(meta.get("title"), str) else None,
        description=meta.get("description") if isinstance(meta.get("description"), str) else None,
        tags=tuple(str(t) for t in tags),
    )


def _loopback(addr: str | None) -> bool:
    try:
        return addr is not None and ipaddress.ip_address(addr.strip("[]")).is_loopback
    except ValueError:
        return False
