"""Saving sessions as snapshots and loading them back, verified before any live session is touched."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import attrs

from .errors import Conflict, ModelMismatch, NotFound, SnapshotError
from .ids import validate_id
from .ports import Clock, IdSource, ModelPort, SnapshotManifest, SnapshotStore, TokenizerPort
from .prompt import closing_text
from .session import Session
from .values import Message, SnapshotInfo

__all__ = ["SnapshotService", "PublishedSource", "SessionHost"]

_T = TypeVar("_T")


class SessionHost(Protocol):
    """What the snapshot use cases need of the session registry (`SessionService` provides it)."""

    model: ModelPort
    tok: TokenizerPort
    store: SnapshotStore
    clock: Clock
    ids: IdSource

    @property
    def max_len_limit(self) -> int:
        """The longest session the server allows."""

    def exists(self, session_id: str) -> bool:
        """Whether a live session has this id."""

    def exclusive(self, session_id: str, fn: Callable[[Session], _T]) -> _T:
        """Run `fn(session)` on the engine thread with the session resident and locked."""

    def adopt(self, sid: str, cap: int, make_state: Callable[[], Any], replace: bool = False,
              **record: Any) -> Session:
        """Build a state on the engine thread and register a session holding it."""


@attrs.frozen
class PublishedSource:
    """What an import keeps of a published server's snapshot (its cache goes separately, as arrays)."""

    snapshot_id: str
    created_at: float
    current_pos: int
    max_seq_len: int
    transcript: tuple[Message, ...]
    title: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()


def _usable_id(snapshot_id: str) -> bool:
    """Keep the published id when it is one of ours (32 hex digits, as both servers make them)."""
    return len(snapshot_id) == 32 and all(c in "0123456789abcdef" for c in snapshot_id)


@attrs.define(eq=False)
class SnapshotService:
    """Snapshot use cases over a session service."""

    svc: SessionHost

    def fingerprint(self) -> dict[str, str]:
        """Identify model, kernels and tokenizer: a snapshot only loads where these are equal."""
        svc = self.svc
        return {**svc.model.info.fingerprint, **{f"tokenizer.{k}": v for k, v in svc.tok.fingerprint.items()}}

    def save(self, session_id: str, title: str | None, description: str | None, tags: Sequence[str]) -> dict[str, Any]:
        svc = self.svc
        start = svc.clock.now()

        def write(s: Session) -> tuple[SnapshotManifest, SnapshotInfo]:
            manifest = SnapshotManifest(
                snapshot_id=svc.ids.new_id(""),
                created_at=start,
                model=self.fingerprint(),
                ledger=tuple(s.ledger),
                transcript=tuple(s.transcript),
                max_seq_len=s.max_seq_len,
                title=title,
                description=description,
                tags=tuple(tags),
                extra={"trailer": s.trailer},
            )
            return manifest, svc.store.save(manifest, svc.model.export_state(s.state))

        manifest, info = svc.exclusive(session_id, write)
        return {"snapshot_id": info.snapshot_id, "tokens": len(manifest.ledger), "bytes": info.bytes,
                "seconds": svc.clock.now() - start}

    def load(self, snapshot_id: str, session_id: str | None, force: bool) -> dict[str, Any]:
        svc = self.svc
        start = svc.clock.now()
        manifest, arrays = svc.store.load(snapshot_id)
        self.check_compatible(manifest)
        self.check_ledger(manifest)
        sid = validate_id(session_id, "session_id") if session_id is not None else svc.ids.new_id("sess_")
        if not force and svc.exists(sid):
            raise Conflict(f"session {sid!r} exists; pass force to replace it", param="session_id")
        cap = min(manifest.max_seq_len, svc.max_len_limit)
        # The session being replaced is locked like any other use of it when the new one is registered
        # (SessionService._register): a busy one is a 409 session_busy, never torn down.
        s = svc.adopt(sid, cap, lambda: self._import(manifest, arrays, cap),
                      replace=force, ledger=list(manifest.ledger), transcript=list(manifest.transcript),
                      trailer=str(manifest.extra.get("trailer", "")))
        state = s.state  # another request may offload the new session at once (state None)
        return {"session_id": sid, "tokens": s.held, "bytes": svc.model.nbytes(state) if state is not None else 0,
                "seconds": svc.clock.now() - start}

    def _import(self, manifest: SnapshotManifest, arrays: Mapping[str, Any], cap: int) -> Any:
        """Import the state; refuse one whose length is not the ledger's (the record would lie about it)."""
        model = self.svc.model
        state = model.import_state(arrays, cap)
        held = model.length(state)
        if held != len(manifest.ledger):
            model.release(state)
            raise SnapshotError(f"snapshot {manifest.snapshot_id!r} is inconsistent: its state holds {held} tokens "
                                f"but its ledger lists {len(manifest.ledger)}", param="snapshot_id")
        return state

    def check_ledger(self, manifest: SnapshotManifest) -> None:
        """Refuse a ledger with ids the model's vocabulary does not have (an edited or corrupt manifest)."""
        vocab = self.svc.model.info.vocab_size
        bad = next((t for t in manifest.ledger if not isinstance(t, int) or not 0 <= t < vocab), None)
        if bad is not None:
            raise SnapshotError(f"snapshot {manifest.snapshot_id!r} is inconsistent: its ledger holds token id "
                                f"{bad!r}, outside the vocabulary of {vocab}", param="snapshot_id")

    def import_published(self, source: PublishedSource, arrays: Mapping[str, Any]) -> dict[str, Any]:
        """Store a published server's snapshot (its arrays already re-laid by the model) as one of ours.

        The published cache holds no token ids: the ledger is the transcript rendered by the loaded
        template and tokenizer, which must come to exactly the cache's position (the published server
        keeps its cache equal to that rendering; when the last turn's closing was never fed, the rendering
        without it must match, and the closing becomes the trailer the next turn prefills). Anything else
        is refused, since the ids would not describe the state. Nothing is written on refusal.
        """
        svc = self.svc
        start = svc.clock.now()
        sid = source.snapshot_id if _usable_id(source.snapshot_id) else svc.ids.new_id("")
        if self._stored(sid):
            raise Conflict(f"snapshot {sid!r} exists already (imported before?); delete it to import again",
                           param="path")
        ledger, trailer = self._published_ledger(source.transcript, source.current_pos)
        manifest = SnapshotManifest(
            snapshot_id=sid, created_at=source.created_at or svc.clock.now(), model=self.fingerprint(),
            ledger=tuple(ledger), transcript=tuple(source.transcript), max_seq_len=source.max_seq_len,
            title=source.title, description=source.description, tags=tuple(source.tags),
            extra={"trailer": trailer, "imported_from": "published superlinear server snapshot"},
        )
        self.check_ledger(manifest)
        info = svc.store.save(manifest, iter(arrays.items()))
        return {"snapshot_id": info.snapshot_id, "tokens": len(ledger), "bytes": info.bytes,
                "messages": len(source.transcript), "logits": False, "seconds": svc.clock.now() - start}

    def _stored(self, snapshot_id: str) -> bool:
        try:
            self.svc.store.get(snapshot_id)
        except NotFound:
            return False
        return True

    def _published_ledger(self, transcript: tuple[Message, ...], position: int) -> tuple[list[int], str]:
        tok = self.svc.tok
        text = tok.render(list(transcript), add_generation_prompt=False) if transcript else ""
        closing = closing_text(tok, transcript, {}) if transcript else ""
        ids = tok.encode(text)
        if len(ids) == position:
            return ids, ""
        if closing and text.endswith(closing):
            shorter = tok.encode(text[: len(text) - len(closing)])
            if len(shorter) == position:
                return shorter, closing
        raise SnapshotError(
            f"the transcript renders to {len(ids)} tokens with the loaded chat template and tokenizer, but the "
            f"cache holds {position}: it was made with another template, tokenizer or template options, so "
            "its token ids cannot be recovered", param="path")

    def list(self) -> list[tuple[SnapshotInfo, bool]]:
        mine = self.fingerprint()
        return [(info, dict(info.model) == mine) for info in self.svc.store.list()]

    def check_compatible(self, manifest: SnapshotManifest) -> None:
        mine = self.fingerprint()
        differ = sorted(k for k in set(mine) | set(manifest.model) if mine.get(k) != manifest.model.get(k))
        if differ:
            raise ModelMismatch(
                f"snapshot {manifest.snapshot_id!r} was made with a different model or tokenizer; "
                f"differing fields: {', '.join(differ)}",
                param="snapshot_id",
            )
