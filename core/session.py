"""A live session: model state plus the exact record of what is in it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from .errors import SessionBusy
from .ports import SnapshotManifest
from .scheduler import Feed
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
    """A conversation whose model state stays hot between turns; it keeps its record equal to its state.

    `ledger` holds exactly the token ids in the model state, in order. `transcript` holds the messages as
    the client sees them. `trailer` is template text that closes the last assistant message (for example
    "<|im_end|>\\n"): it is not in the state yet and is prefilled at the start of the next turn. They and
    the state change only through the methods below, which change them together: feeding tokens,
    checkpoint/restore, offload/reload, reset, resize. Model work runs on the engine thread.
    """

    session_id: str
    _state: Any
    _max_seq_len: int
    created_at: float
    last_used_at: float
    _ledger: list[int] = attrs.Factory(list)
    _transcript: list[Message] = attrs.Factory(list)
    _trailer: str = ""
    _marks: list[TurnMark] = attrs.Factory(list)
    _spilled: str | None = None
    # Progress of the prefill under way (written by the turn runner on the engine thread, read by info()).
    prefill: PrefillProgress | None = None
    _lock: threading.Lock = attrs.Factory(threading.Lock)
    _busy: bool = False
    # Tokens of the ledger recorded by `expect` whose feed has not run yet.
    _unfed: int = attrs.field(default=0, init=False)

    # Reading the record (copies: the record changes only through the methods).

    @property
    def state(self) -> Any:
        """The model state (None while offloaded, or before its first use)."""
        return self._state

    @property
    def ledger(self) -> list[int]:
        """A copy of the token ids the state holds."""
        return list(self._ledger)

    @property
    def held(self) -> int:
        """How many tokens the state holds (the ledger's length)."""
        return len(self._ledger)

    @property
    def transcript(self) -> list[Message]:
        """A copy of the messages, as the client sees them."""
        return list(self._transcript)

    @property
    def trailer(self) -> str:
        return self._trailer

    @property
    def max_seq_len(self) -> int:
        return self._max_seq_len

    @property
    def spilled(self) -> str | None:
        """The id of the offloaded copy in the spill store (None: not offloaded)."""
        return self._spilled

    @property
    def resident(self) -> bool:
        """True while the state is in memory (False when offloaded, or not allocated yet)."""
        return self._state is not None

    def in_sync(self, model: Any) -> bool:
        """Whether the state holds as many tokens as the ledger lists (an offloaded or unallocated session
        holds them on disk, or none)."""
        if self._state is None:
            return self._spilled is not None or not self._ledger
        return bool(model.length(self._state) == len(self._ledger))

    # Feeding tokens.

    def feed(self, model: Any, ids: Sequence[int], chunk: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> Iterator[Feed]:
        """Have the engine append `ids` to the state (one `Feed`, yielded), then record them."""
        if ids:
            yield Feed(model, self._state, ids, chunk, progress)
            self._ledger.extend(ids)

    def append_now(self, model: Any, ids: Sequence[int]) -> None:
        """Append `ids` to the state here and now (on the engine thread, between steps) and record them."""
        model.append(self._state, ids)
        self._ledger.extend(ids)

    def took(self, ids: Sequence[int]) -> None:
        """Record `ids` that a generation fed to this session's state, token by token, through its feeds."""
        self._ledger.extend(ids)

    def close_turn(self, transcript: Sequence[Message], trailer: str) -> None:
        """Set the messages the state now holds and the closing text it does not hold yet."""
        self._transcript[:] = transcript
        self._trailer = trailer

    # Checkpoints and rewinding.

    def checkpoint(self, model: Any) -> TurnMark:
        """The record and a model checkpoint of now, for `restore`."""
        return TurnMark(len(self._ledger), len(self._transcript), self._trailer, model.checkpoint(self._state))

    def restore(self, model: Any, mark: TurnMark) -> None:
        """Return the state and the record to `mark` (one taken from this session)."""
        model.restore(self._state, mark.checkpoint)
        del self._ledger[mark.ledger_len :]
        del self._transcript[mark.transcript_len :]
        self._trailer = mark.trailer
        self._marks = [m for m in self._marks if m.ledger_len <= mark.ledger_len]

    def add_mark(self, checkpoint: Any) -> None:
        """Remember the current turn boundary with `checkpoint` (the model's checkpoint of the state now);
        only the newest few are kept (they hold state copies)."""
        mark = TurnMark(len(self._ledger), len(self._transcript), self._trailer, checkpoint)
        self._marks = [m for m in self._marks if m.ledger_len < mark.ledger_len][-(MAX_MARKS - 1):] + [mark]

    def mark_turn(self, model: Any, now: float) -> None:
        """A turn ended: remember its boundary and when the session was used."""
        self.last_used_at = now
        self.add_mark(model.checkpoint(self._state))

    def mark_at_or_before(self, keep_messages: int) -> TurnMark | None:
        """Return the newest mark that holds at most `keep_messages` messages."""
        usable = [m for m in self._marks if m.transcript_len <= keep_messages]
        return usable[-1] if usable else None

    def reset(self, model: Any) -> None:
        """Start over with an empty state and record."""
        if self._state is not None:
            model.release(self._state)
        self._state = model.new_state(self._max_seq_len)
        self._ledger.clear()
        self._transcript.clear()
        self._trailer = ""
        self._marks = []

    def resize(self, model: Any, max_seq_len: int) -> None:
        """Change the maximum length (the caller checked it holds the ledger and a token to answer)."""
        if self._state is not None:
            model.resize(self._state, max_seq_len)
        self._max_seq_len = max_seq_len

    # State coming and going.

    def allocate(self, model: Any) -> None:
        """Give an empty session (nothing recorded, nothing offloaded) its fresh state."""
        if self._ledger or self._spilled is not None:
            raise ValueError(f"session {self.session_id!r} holds tokens; allocate is for an empty one")
        self._state = model.new_state(self._max_seq_len)

    def replace(self, state: Any, ledger: Sequence[int], transcript: Sequence[Message], trailer: str) -> None:
        """Take `state` (this session's own from now on) with the record of what it holds."""
        self._state = state
        self._ledger[:] = ledger
        self._transcript[:] = transcript
        self._trailer = trailer
        self._marks = []

    def expect(self, ids: Sequence[int], transcript: Sequence[Message]) -> None:
        """Record `ids` (the rendering of `transcript`) as what an empty state will hold once the turn's
        first feed, `feed_expected`, has run: the prompt is planned after them."""
        self._ledger[:] = ids
        self._transcript[:] = transcript
        self._trailer = ""
        self._unfed = len(ids)

    def feed_expected(self, model: Any) -> Iterator[Feed]:
        """The feed of the ids `expect` recorded ahead of it."""
        ids, self._unfed = self._ledger[len(self._ledger) - self._unfed :], 0
        if ids:
            yield Feed(model, self._state, ids)

    def surrender(self) -> Any:
        """Hand the state over to another owner (the prefix cache); the session is left empty."""
        state, self._state = self._state, None
        self._ledger.clear()
        self._transcript.clear()
        self._trailer = ""
        self._marks = []
        return state

    def offload(self, model: Any, spill: Any, manifest: SnapshotManifest) -> None:
        """Write the state to `spill` under `manifest` (which must list this ledger) and free it."""
        if list(manifest.ledger) != self._ledger:
            raise ValueError("the offload manifest does not list the session's ledger")
        spill.save(manifest, model.export_state(self._state))
        model.release(self._state)
        self._state, self._spilled, self._marks = None, manifest.snapshot_id, []

    def reload(self, model: Any, spill: Any, make_room: Callable[[int], None]) -> None:
        """Bring the offloaded state back (or allocate a new session's first one); `make_room(bytes)` is
        called first. Refuses an offloaded copy that holds another ledger."""
        if self._spilled is None:
            make_room(model.bytes_for(0))
            self.allocate(model)
        else:
            manifest, arrays = spill.load(self._spilled)
            if list(manifest.ledger) != self._ledger:
                raise ValueError(f"the offloaded copy of session {self.session_id!r} holds another ledger")
            make_room(model.bytes_for(len(manifest.ledger)))
            self._state = model.import_state(arrays, self._max_seq_len)
            spill.delete(self._spilled)
            self._spilled = None
        self.add_mark(model.checkpoint(self._state))

    def forget_spill(self, spill: Any) -> None:
        """Drop the offloaded copy (the session is being deleted)."""
        if self._spilled is not None:
            spill.delete(self._spilled)
            self._spilled = None

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
            cached_tokens=len(self._ledger),
            max_seq_len=self._max_seq_len,
            message_count=len(self._transcript),
            kv_bytes=kv_bytes,
            resident=self._spilled is None,  # not on disk: in memory, or empty and allocated on first use
            busy=self._busy,
            prefill=self.prefill,
        )
