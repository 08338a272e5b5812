"""Sessions survive a graceful stop: written to the snapshot store at shutdown, brought back at the next start.

At shutdown every live session is saved as an ordinary snapshot (checksummed like any other) tagged
`spl:autosave` and `session:<id>`. At start each newest autosave of a session is loaded back under the same
session id and then deleted; one that does not fit the loaded model (another model, another tokenizer) stays
in the store, listed by `spl snapshot ls`, until it is loaded by hand or removed. The one-line summary is
logged with the `spl-persist:` marker, which `spl server stop` reads back from the log to say what it kept.
"""

from __future__ import annotations

import logging
import time

import attrs

from ...core import Conflict, SessionService

__all__ = ["AUTOSAVE_TAG", "MARKER", "Kept", "persist_sessions", "restore_sessions"]

log = logging.getLogger(__name__)

AUTOSAVE_TAG = "spl:autosave"
MARKER = "spl-persist:"


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


def _save_one(sessions: SessionService, sid: str) -> int:
    out = sessions.save(sid, title=f"{sid} (kept at shutdown)",
                        description="saved by a graceful stop; loaded back and removed at the next start",
                        tags=(AUTOSAVE_TAG, _session_tag(sid)))
    for snap, other, _ok in _autosaves(sessions):  # an older autosave of the same session is superseded
        if other == sid and snap != out["snapshot_id"]:
            sessions.store.delete(snap)
    return int(out["tokens"])


def persist_sessions(sessions: SessionService, wait_busy: float = 5.0, sleep=time.sleep) -> Kept:
    """Save every live session; a session still running a turn is retried until `wait_busy` seconds pass."""
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
    """Load each session's newest autosave back under its id, then delete those used; return the restored ids."""
    restored, used, seen = [], [], set()
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
            sessions.load(snap, sid)
        except Exception:  # noqa: BLE001 - a damaged snapshot stays for inspection; the server still starts
            log.exception("could not restore session %s from snapshot %s; left in the store", sid, snap)
            continue
        used.append(snap)
        restored.append(sid)
    # Only now: a stop in the middle of restoring leaves every autosave for the next start.
    for snap in used:
        sessions.store.delete(snap)
    if restored:
        log.info("%s restored %d session(s) kept at the last stop: %s", MARKER, len(restored), ", ".join(restored))
    return restored
