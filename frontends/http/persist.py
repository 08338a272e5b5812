"""Sessions survive a graceful stop: written to the snapshot store at shutdown, brought back lazily at start.

At shutdown every live session is saved as an ordinary snapshot (checksummed like any other) tagged
`spl:autosave` and `session:<id>`. At start each newest autosave of a session is read and checked, and the
session is registered under the same id as an offloaded one: listed at once with its messages and tokens,
its state imported into the model only on first use (through `AutosaveSpill`, the session service's spill
store), which uses the autosave up. A session nobody touched before the next stop keeps its autosave as it
is. An autosave that does not fit the loaded model (another model, another tokenizer) stays in the store,
listed by `spl snapshot ls`, until it is loaded by hand or removed. The one-line summaries are logged with
the `spl-persist:` marker, which `spl server start|stop` read back from the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

import attrs

from superlinear.core import Conflict, NotFound, SessionService
from superlinear.core.ports import SnapshotManifest, SnapshotStore

__all__ = ["AUTOSAVE_TAG", "MARKER", "AutosaveSpill", "Kept", "persist_sessions", "restore_sessions"]

log = logging.getLogger(__name__)

AUTOSAVE_TAG = "spl:autosave"
MARKER = "spl-persist:"


@attrs.define(eq=False)
class AutosaveSpill:
    """The session service's spill store, which also serves the autosaves of sessions restored lazily.

    A restored session is registered as offloaded under its autosave's id (`wait_for_use`); the memory
    manager loads it from here on first use (read from the snapshot store, verified as always) and then
    deletes it, which removes the autosave; so does deleting the session. Every other id is the private
    spill store's.
    """

    spill: SnapshotStore
    store: SnapshotStore
    _waiting: set[str] = attrs.Factory(set)
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    def wait_for_use(self, snapshot_id: str) -> None:
        """Serve `snapshot_id` from the snapshot store until it is deleted through this store."""
        with self._lock:
            self._waiting.add(snapshot_id)

    def stop_waiting(self, snapshot_id: str) -> None:
        """Leave `snapshot_id` to the snapshot store alone again (its session could not be registered)."""
        with self._lock:
            self._waiting.discard(snapshot_id)

    def waiting(self, snapshot_id: str | None) -> bool:
        """Say whether `snapshot_id` is an autosave still waiting for its session's first use."""
        with self._lock:
            return snapshot_id in self._waiting

    def _owner(self, snapshot_id: str) -> SnapshotStore:
        return self.store if self.waiting(snapshot_id) else self.spill

    def save(self, manifest: SnapshotManifest, arrays: Iterable):
        return self.spill.save(manifest, arrays)

    def load(self, snapshot_id: str):
        try:
            return self._owner(snapshot_id).load(snapshot_id)
        except NotFound:
            if not self.waiting(snapshot_id):
                raise
            raise NotFound(f"this session was kept at the last stop in snapshot {snapshot_id!r}, which has been "
                           "removed from the snapshot store since; delete the session") from None

    def manifest(self, snapshot_id: str):
        return self._owner(snapshot_id).manifest(snapshot_id)

    def get(self, snapshot_id: str):
        return self._owner(snapshot_id).get(snapshot_id)

    def list(self):
        return self.spill.list()

    def patch(self, snapshot_id: str, **fields):
        return self.spill.patch(snapshot_id, **fields)

    def delete(self, snapshot_id: str) -> None:
        with self._lock:
            waited = snapshot_id in self._waiting
            self._waiting.discard(snapshot_id)
        try:
            (self.store if waited else self.spill).delete(snapshot_id)
        except NotFound:
            if not waited:
                raise  # an autosave removed by hand is already gone: its session can still be deleted


@attrs.frozen
class Kept:
    """What a shutdown kept: (session id, tokens) pairs, and the sessions left out with the reason."""

    kept: tuple[tuple[str, int], ...] = ()
    lost: tuple[tuple[str, str], ...] = ()

    def summary(self) -> str:
        tokens = sum(t for _, t in self.kept)
        text = (f"kept {len(self.kept)} session(s), {tokens} tokens, for the next start: "
                + (", ".join(sid for sid, _ in self.kept) or "none"))
        if self.lost:
            text += "; not kept: " + ", ".join(f"{sid} ({why})" for sid, why in self.lost)
        return text


def _session_tag(session_id: str) -> str:
    return f"session:{session_id}"


def _autosaves(sessions: SessionService) -> list[tuple[str, str, bool]]:
    """(snapshot id, session id, compatible) of every autosave, newest first."""
    out = []
    for info, ok in sessions.snapshots():
        if AUTOSAVE_TAG in info.tags:
            sid = next((t.split(":", 1)[1] for t in info.tags if t.startswith("session:")), None)
            if sid:
                out.append((info.snapshot_id, sid, ok))
    return out


def _still_in_its_autosave(sessions: SessionService, sid: str) -> bool:
    """A session restored lazily and not used since: its autosave already holds it."""
    spill, session = sessions.spill, sessions.find(sid)
    return isinstance(spill, AutosaveSpill) and session is not None and spill.waiting(session.spilled)


def _save_one(sessions: SessionService, sid: str) -> int:
    if _still_in_its_autosave(sessions, sid):
        return sessions.info(sid).cached_tokens
    out = sessions.save(sid, title=f"{sid} (kept at shutdown)",
                        description="saved by a graceful stop; loaded back and removed at the next start",
                        tags=(AUTOSAVE_TAG, _session_tag(sid)))
    for snap, other, _ok in _autosaves(sessions):  # an older autosave of the same session is superseded
        if other == sid and snap != out["snapshot_id"]:
            sessions.store.delete(snap)
    return int(out["tokens"])


def persist_sessions(sessions: SessionService, wait_busy: float = 5.0, sleep=time.sleep) -> Kept:
    """Save every live session; a session still running a turn is retried until `wait_busy` seconds pass.

    A session restored lazily and not used since is kept as it is: its autosave already holds it.
    """
    pending = [info.session_id for info in sessions.list()]
    kept, lost = [], []
    deadline = time.monotonic() + wait_busy
    while pending:
        busy = []
        for sid in pending:
            try:
                kept.append((sid, _save_one(sessions, sid)))
            except Conflict:
                busy.append(sid)
            except Exception as exc:  # noqa: BLE001 - one session's failure must not lose the others
                log.exception("could not keep session %s", sid)
                lost.append((sid, f"{type(exc).__name__}: {exc}"))
        pending = busy
        if pending and time.monotonic() >= deadline:
            lost += [(sid, "still running a turn") for sid in pending]
            break
        if pending:
            sleep(0.2)
    result = Kept(tuple(kept), tuple(lost))
    log.info("%s %s", MARKER, result.summary())
    return result


def restore_sessions(sessions: SessionService) -> list[str]:
    """Register each session's newest autosave under its id as an offloaded session; return the ids.

    Nothing is imported into the model here: the memory manager does it on the session's first use, from
    the autosave (the service's spill store must be an AutosaveSpill). A damaged autosave, or one of another
    model, is logged and left in the store; the server starts all the same.
    """
    spill = sessions.spill
    if not isinstance(spill, AutosaveSpill):
        raise TypeError("kept sessions are restored through an AutosaveSpill as the service's spill store")
    restored, seen = [], set()
    for snap, sid, ok in _autosaves(sessions):
        if sid in seen:
            continue
        seen.add(sid)
        if not ok:
            log.warning("kept session %s (snapshot %s) does not fit this model; left in the store", sid, snap)
            continue
        if sessions.exists(sid):
            continue
        try:
            _register_lazily(sessions, spill, snap, sid)
        except Exception:  # noqa: BLE001 - a damaged snapshot stays for inspection; the server still starts
            log.exception("could not restore session %s from snapshot %s; left in the store", sid, snap)
            continue
        restored.append(sid)
    if restored:
        log.info("%s restored %d session(s) kept at the last stop, loaded on first use: %s", MARKER,
                 len(restored), ", ".join(restored))
    return restored


def _register_lazily(sessions: SessionService, spill: AutosaveSpill, snap: str, sid: str) -> None:
    # Only the manifest is read now (and the state file's size checked), so that a start with many kept
    # sessions reads no arrays; the arrays are read and checksummed on first use, as every load is.
    manifest = sessions.store.manifest(snap)
    sessions.snapshots_service.check_ledger(manifest)
    cap = min(manifest.max_seq_len, sessions.max_len_limit)
    spill.wait_for_use(snap)
    try:
        sessions.adopt_offloaded(sid, cap, snap, ledger=list(manifest.ledger),
                                 transcript=list(manifest.transcript),
                                 trailer=str(manifest.extra.get("trailer", "")))
    except BaseException:
        spill.stop_waiting(snap)
        raise
