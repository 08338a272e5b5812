"""Session management and chat turns: the service the frontends call."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence

import attrs

from .engine import Engine, TurnHandle
from .errors import Conflict, InvalidRequest, ModelMismatch, NotFound
from .ports import Clock, IdSource, ModelPort, SnapshotManifest, SnapshotStore, StopRule, TokenizerPort
from .session import Session
from .turn import TurnRunner
from .values import ChatRequest, Message, SessionInfo, SnapshotInfo

__all__ = ["SessionService", "validate_id"]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_id(value: object, param: str) -> str:
    """Return `value` if it is a valid session or snapshot id; raise InvalidRequest naming `param`."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidRequest(
            f"{param} must match {_ID.pattern} (letters, digits, '.', '_', '-'; at most 128)", param=param
        )
    return value


@attrs.define(eq=False)
class SessionService:
    """Create, use and drop sessions; run turns on the engine thread; save and load snapshots."""

    model: ModelPort
    tok: TokenizerPort
    engine: Engine
    store: SnapshotStore
    clock: Clock
    ids: IdSource
    stop_rules: Callable[[ChatRequest], Sequence[StopRule]]
    entropy: Callable[[], int]
    default_max_seq_len: int
    _sessions: dict[str, Session] = attrs.Factory(dict)
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    @property
    def runner(self) -> TurnRunner:
        return TurnRunner(self.model, self.tok, self.stop_rules, self.clock.now, self.entropy)

    def create(self, session_id: str | None = None, max_seq_len: int | None = None) -> SessionInfo:
        """Open an empty session; 409 if the id exists."""
        sid = validate_id(session_id, "session_id") if session_id is not None else self.ids.new_id("sess_")
        cap = self._check_len(max_seq_len)
        with self._lock:
            if sid in self._sessions:
                raise Conflict(f"session {sid!r} already exists", param="session_id")
            state = self.engine.call(lambda: self.model.new_state(cap))
            now = self.clock.now()
            self._sessions[sid] = Session(sid, state, cap, now, now)
        return self.info(sid)

    def _check_len(self, max_seq_len: int | None) -> int:
        if max_seq_len is None:
            return self.default_max_seq_len
        if not isinstance(max_seq_len, int) or isinstance(max_seq_len, bool) or max_seq_len < 1:
            raise InvalidRequest("max_seq_len must be a positive integer", param="max_seq_len")
        if max_seq_len > self.model.info.max_seq_len:
            raise InvalidRequest(
                f"max_seq_len {max_seq_len} exceeds the server's limit {self.model.info.max_seq_len}",
                param="max_seq_len",
            )
        return max_seq_len

    def session(self, session_id: str) -> Session:
        """Return the live session or raise NotFound."""
        with self._lock:
            found = self._sessions.get(session_id)
        if found is None:
            raise NotFound(f"no session {session_id!r}", param="session_id")
        return found

    def info(self, session_id: str) -> SessionInfo:
        s = self.session(session_id)
        return s.info(self.model.nbytes(s.state))

    def list(self) -> list[SessionInfo]:
        with self._lock:
            ids = sorted(self._sessions)
        return [self.info(i) for i in ids if i in self._sessions]

    def history(self, session_id: str) -> list[Message]:
        return list(self.session(session_id).transcript)

    def delete(self, session_id: str) -> None:
        """Close a session and free its memory; a busy session is a conflict."""
        s = self.session(session_id)
        s.acquire()
        with self._lock:
            self._sessions.pop(session_id, None)
        self.engine.call(lambda: self.model.release(s.state))

    def chat(self, request: ChatRequest) -> TurnHandle:
        """Start a turn; validation errors raise here, before any event."""
        if request.session_id is None:
            return self._stateless(request)
        s = self.session(request.session_id)
        s.acquire()
        try:
            turn = self.runner.prepare(s, request)
        except BaseException:
            s.release()
            raise
        return self.engine.submit(self.runner.run(turn), on_exit=s.release)

    def _stateless(self, request: ChatRequest) -> TurnHandle:
        state = self.engine.call(lambda: self.model.new_state(self.default_max_seq_len))
        now = self.clock.now()
        s = Session("stateless", state, self.default_max_seq_len, now, now)
        s.acquire()
        try:
            turn = self.runner.prepare(s, request)
        except BaseException:
            self.engine.call(lambda: self.model.release(state))
            raise
        return self.engine.submit(self.runner.run(turn), on_exit=lambda: self.model.release(state))

    def save(self, session_id: str, title: str | None = None, description: str | None = None,
             tags: Sequence[str] = ()) -> dict:
        """Write a session to the snapshot store; the session stays live."""
        s = self.session(session_id)
        s.acquire()
        try:
            start = self.clock.now()
            manifest = SnapshotManifest(
                snapshot_id=self.ids.new_id(""),
                created_at=start,
                model=dict(self._fingerprint()),
                ledger=tuple(s.ledger),
                transcript=tuple(s.transcript),
                max_seq_len=s.max_seq_len,
                title=title,
                description=description,
                tags=tuple(tags),
                extra={"trailer": s.trailer},
            )
            info = self.engine.call(lambda: self.store.save(manifest, self.model.export_state(s.state)))
        finally:
            s.release()
        return {"snapshot_id": info.snapshot_id, "tokens": len(manifest.ledger), "bytes": info.bytes,
                "seconds": self.clock.now() - start}

    def load(self, snapshot_id: str, session_id: str | None = None, force: bool = False) -> dict:
        """Bring a snapshot back as a live session, verified before any live session is touched."""
        start = self.clock.now()
        manifest, arrays = self.store.load(snapshot_id)
        self._check_compatible(manifest)
        sid = validate_id(session_id, "session_id") if session_id is not None else self.ids.new_id("sess_")
        with self._lock:
            if sid in self._sessions and not force:
                raise Conflict(f"session {sid!r} exists; pass force to replace it", param="session_id")
        state = self.engine.call(lambda: self.model.import_state(arrays, manifest.max_seq_len))
        now = self.clock.now()
        s = Session(sid, state, manifest.max_seq_len, now, now, list(manifest.ledger),
                    list(manifest.transcript), str(manifest.extra.get("trailer", "")))
        with self._lock:
            old = self._sessions.get(sid)
            self._sessions[sid] = s
        if old is not None:
            self.engine.call(lambda: self.model.release(old.state))
        return {"session_id": sid, "tokens": len(s.ledger), "bytes": self.model.nbytes(state),
                "seconds": self.clock.now() - start}

    def resize(self, session_id: str, max_seq_len: object) -> SessionInfo:
        """Change a session's maximum length; never below what it holds, and never losing it."""
        s = self.session(session_id)
        cap = self._check_len(max_seq_len if max_seq_len is not None else -1)
        s.acquire()
        try:
            if cap < len(s.ledger) + 1:
                raise InvalidRequest(
                    f"max_seq_len {cap} is below the {len(s.ledger)} tokens the session holds (plus one to answer)",
                    param="max_seq_len",
                )
            self.engine.call(lambda: self.model.resize(s.state, cap))
            s.max_seq_len = cap
        finally:
            s.release()
        return self.info(session_id)

    def fork(self, session_id: str, new_id: str | None = None) -> SessionInfo:
        """Copy a session in memory under a new id."""
        s = self.session(session_id)
        sid = validate_id(new_id, "session_id") if new_id is not None else self.ids.new_id("sess_")
        s.acquire()
        try:
            with self._lock:
                if sid in self._sessions:
                    raise Conflict(f"session {sid!r} already exists", param="session_id")
            state = self.engine.call(lambda: self.model.fork(s.state))
            now = self.clock.now()
            copy = Session(sid, state, s.max_seq_len, now, now, list(s.ledger), list(s.transcript), s.trailer)
            with self._lock:
                self._sessions[sid] = copy
        finally:
            s.release()
        return self.info(sid)

    def snapshots(self) -> list[tuple[SnapshotInfo, bool]]:
        """List snapshots newest first, each with whether it fits the loaded model."""
        mine = self._fingerprint()
        return [(info, dict(info.model) == mine) for info in self.store.list()]

    def _fingerprint(self) -> dict[str, str]:
        return {**self.model.info.fingerprint, **{f"tokenizer.{k}": v for k, v in self.tok.fingerprint.items()}}

    def _check_compatible(self, manifest: SnapshotManifest) -> None:
        mine = self._fingerprint()
        differ = sorted(k for k in set(mine) | set(manifest.model) if mine.get(k) != manifest.model.get(k))
        if differ:
            raise ModelMismatch(
                f"snapshot {manifest.snapshot_id!r} was made with a different model or tokenizer; "
                f"differing fields: {', '.join(differ)}",
                param="snapshot_id",
            )
