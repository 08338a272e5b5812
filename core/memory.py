"""The memory manager: a KV budget, LRU offload of idle sessions to disk, transparent restore."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from .errors import InsufficientMemory
from .ports import Clock, IdSource, ModelPort, SnapshotManifest, SnapshotStore
from .session import Session

__all__ = ["MemoryManager"]


@attrs.define(eq=False)
class MemoryManager:
    """Keep the resident sessions' state within `budget` bytes (None: no limit).

    Idle sessions are offloaded, least recently used first, to a private snapshot store (`spill`) and
    come back on their next use. Only when nothing idle is left to offload does a request fail, with
    InsufficientMemory, and nothing is lost. Every method runs on the engine thread.
    """

    model: ModelPort
    spill: SnapshotStore | None
    clock: Clock
    ids: IdSource
    sessions: Callable[[], Iterable[Session]]
    budget: int | None = None
    offloads: int = 0
    restores: int = 0
    # Bytes a running turn's session may grow to (by session id), counted as held until the turn ends, so
    # turns admitted together cannot outgrow the budget.
    reserved: dict[int, int] = attrs.Factory(dict)
    # The stateless prefix cache (core/prefix_cache.py): its bytes count, and it gives them back first.
    cache: Any = None

    def used(self) -> int:
        """Bytes held by resident sessions (or reserved by their running turns if more) and the prefix cache."""
        cached = self.cache.nbytes() if self.cache is not None else 0
        return cached + sum(self._held(s) for s in self.sessions() if s.resident)

    def _held(self, session: Session) -> int:
        return max(self.model.nbytes(session.state), self.reserved.get(id(session), 0))

    def growth(self, session: Session, tokens: int) -> int:
        """Bytes `session` will add when it grows to hold `tokens` tokens."""
        now = self._held(session) if session.resident else 0
        return max(0, self.model.bytes_for(tokens) - now)

    def reserve(self, session: Session, tokens: int, copies: int = 1) -> None:
        """Count `session` as holding `copies` states of `tokens` tokens until `unreserve` (its turn's end)."""
        self.reserved[id(session)] = copies * self.model.bytes_for(tokens)

    def unreserve(self, session: Session) -> bool:
        """End `session`'s reservation; return whether it had one."""
        return self.reserved.pop(id(session), None) is not None

    def make_room(self, needed: int, keep: Session | None = None) -> None:
        """Offload idle sessions until `needed` more bytes fit the budget; raise if they cannot."""
        if self.budget is None or needed <= 0 and self.used() <= self.budget:
            return
        used = self.used()
        if self.cache is not None and used + needed > self.budget:
            used -= self.cache.evict(used + needed - self.budget)
        victims = sorted(
            (s for s in self.sessions() if s.resident and s is not keep and not s.busy),
            key=lambda s: s.last_used_at,
        )
        for victim in victims:
            if used + needed <= self.budget:
                return
            freed = self.model.nbytes(victim.state)
            if self._offload(victim):
                used -= freed
        if used + needed > self.budget:
            raise InsufficientMemory(
                f"{needed} more bytes of KV memory do not fit the budget of {self.budget} bytes "
                f"({used} in use by sessions that are busy or needed now)"
            )

    def _offload(self, session: Session) -> bool:
        try:
            session.acquire()
        except Exception:  # noqa: BLE001 - it became busy; skip it
            return False
        try:
            manifest = SnapshotManifest(
                snapshot_id=self.ids.new_id("spill-"),
                created_at=self.clock.now(),
                model={},
                ledger=tuple(session.ledger),
                transcript=tuple(session.transcript),
                max_seq_len=session.max_seq_len,
                extra={"trailer": session.trailer},
            )
            session.offload(self.model, self.spill, manifest)
            self.offloads += 1
            return True
        finally:
            session.release()

    def ensure_resident(self, session: Session) -> None:
        """Bring an offloaded session back, or allocate a new one's state (offloading others if needed).

        The caller holds the session's lock.
        """
        if session.resident:
            return
        offloaded = session.spilled is not None  # else created lazily: the state is allocated on first use
        session.reload(self.model, self.spill, lambda needed: self.make_room(needed, keep=session))
        self.restores += offloaded

    def forget(self, session: Session) -> None:
        """Drop the offloaded copy of a deleted session."""
        session.forget_spill(self.spill)
