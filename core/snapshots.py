"""Saving sessions as snapshots and loading them back, verified before any live session is touched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from .errors import Conflict, ModelMismatch, SnapshotError
from .ids import validate_id
from .ports import SnapshotManifest
from .values import SnapshotInfo

if TYPE_CHECKING:
    from .sessions import SessionService

__all__ = ["SnapshotService"]


@attrs.define(eq=False)
class SnapshotService:
    """Snapshot use cases over a session service."""

    svc: SessionService

    def fingerprint(self) -> dict[str, str]:
        """Identify model, kernels and tokenizer: a snapshot only loads where these are equal."""
        svc = self.svc
        return {**svc.model.info.fingerprint, **{f"tokenizer.{k}": v for k, v in svc.tok.fingerprint.items()}}

    def save(self, session_id: str, title: str | None, description: str | None, tags: Sequence[str]) -> dict:
        svc = self.svc
        start = svc.clock.now()

        def write(s):
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

    def load(self, snapshot_id: str, session_id: str | None, force: bool) -> dict:
        svc = self.svc
        start = svc.clock.now()
        manifest, arrays = svc.store.load(snapshot_id)
        self.check_compatible(manifest)
        self.check_ledger(manifest)
        sid = validate_id(session_id, "session_id") if session_id is not None else svc.ids.new_id("sess_")
        if not force and svc.exists(sid):
            raise Conflict(f"session {sid!r} exists; pass force to replace it", param="session_id")
        # The session being replaced is locked like any other use of it: a busy one is a 409, never torn down.
        old = svc.find(sid) if force else None
        if old is not None:
            old.acquire()
        cap = min(manifest.max_seq_len, svc.max_len_limit)
        try:
            s = svc.adopt(sid, cap, lambda: self._import(manifest, arrays, cap),
                          replace=force, ledger=list(manifest.ledger), transcript=list(manifest.transcript),
                          trailer=str(manifest.extra.get("trailer", "")))
        except BaseException:
            if old is not None:
                old.release()
            raise
        return {"session_id": sid, "tokens": len(s.ledger), "bytes": svc.model.nbytes(s.state),
                "seconds": svc.clock.now() - start}

    def _import(self, manifest: SnapshotManifest, arrays, cap: int):
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
