"""A live session: model state plus the exact record of what is in it."""

from __future__ import annotations

import threading
from typing import Any

import attrs

from .errors import SessionBusy
from .values import Message, PrefillProgress, SessionInfo

__all__ = ["Session", "TurnMark"]

MAX_MARKS = 4


@attrs.frozen
class TurnMark:
    """A turn boundary the session can rewind to cheaply: lengths, trailer and a model checkpoint."""

    ledger_len: int
    transcript_len: int
    trailer: str
    checkpoint: Any


@attrs.define(eq=False)
class Session:
    """A conversation whose model state stays hot between turns.

    `ledger` holds exactly the token ids in the model state, in order. `transcript` holds the messages as
    the client sees them. `trailer` is template text that closes the last assistant message (for example
    "<|im_end|>\\n"): it is not in the state yet and is prefilled at the start of the next turn.
    """

    session_id: str
    state: Any
    max_seq_len: int
    created_at: float
    last_used_at: float
    ledger: list[int] = attrs.Factory(list)
    transcript: list[Message] = attrs.Factory(list)
    trailer: str = ""
    marks: list[TurnMark] = attrs.Factory(list)
    spilled: str | None = None
    # Progress of the prefill under way (written by the turn runner on the engine thread, read by info()).
    prefill: PrefillProgress | None = None
    _lock: threading.Lock = attrs.Factory(threading.Lock)
    _busy: bool = False

    @property
    def resident(self) -> bool:
        """False while the state is offloaded to disk."""
        return self.state is not None

    def add_mark(self, checkpoint: Any) -> None:
        """Remember the current turn boundary; only the newest few are kept (they hold state copies)."""
        mark = TurnMark(len(self.ledger), len(self.transcript), self.trailer, checkpoint)
        self.marks = [m for m in self.marks if m.ledger_len < mark.ledger_len][-(MAX_MARKS - 1):] + [mark]

    def mark_at_or_before(self, keep_messages: int) -> TurnMark | None:
        """Return the newest mark that holds at most `keep_messages` messages."""
        usable = [m for m in self.marks if m.transcript_len <= keep_messages]
        return usable[-1] if usable else None

    def rewind(self, mark: TurnMark) -> None:
        """Cut the record back to a mark (the caller restores the model state to its checkpoint)."""
        del self.ledger[mark.ledger_len:]
        del self.transcript[mark.transcript_len:]
        self.trailer = mark.trailer
        self.marks = [m for m in self.marks if m.ledger_len <= mark.ledger_len]

    @property
    def busy(self) -> bool:
        return self._busy

    def acquire(self) -> None:
        """Mark the session as running a turn; raise SessionBusy if one is in flight."""
        with self._lock:
            if self._busy:
                raise SessionBusy(f"session {self.session_id!r} is running another turn", param="session_id")
            self._busy = True

    def release(self) -> None:
        """Mark the turn as finished."""
        with self._lock:
            self._busy = False

    def info(self, kv_bytes: int) -> SessionInfo:
        """Describe the session for management calls."""
        return SessionInfo(
            session_id=self.session_id,
            created_at=self.created_at,
            last_used_at=self.last_used_at,
            cached_tokens=len(self.ledger),
            max_seq_len=self.max_seq_len,
            message_count=len(self.transcript),
            kv_bytes=kv_bytes,
            resident=self.resident,
            busy=self._busy,
            prefill=self.prefill,
        )
