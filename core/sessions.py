"""Session management and chat turns: the service the frontends call."""

from __future__ import annotations

import builtins
import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from .engine import Engine, TurnHandle
from .errors import (
    Conflict,
    ExceedsMemoryBudget,
    InsufficientMemory,
    InvalidRequest,
    NotFound,
    SessionBusy,
    SuperlinearError,
)
from .ids import validate_id
from .memory import MemoryManager
from .ports import Clock, GrammarPort, IdSource, ModelPort, SnapshotStore, StopRule, TokenizerPort
from .prefix_cache import PrefixCache, cached_turn
from .rewind import edited_prefix, rollback
from .scheduler import Steps
from .session import Session
from .snapshots import PublishedSource, SnapshotService
from .turn import PreparedTurn, TurnRunner
from .values import ChatRequest, Message, SessionInfo, SnapshotInfo

__all__ = ["SessionService", "validate_id"]

_T = TypeVar("_T")

@attrs.define(eq=False)
class SessionService:
    """Create, use and drop sessions; run turns on the engine thread; save and load snapshots.

    `spill` is a private store for sessions offloaded under the `kv_budget` (bytes; None = no limit).
    A turn that does not fit the budget now waits (up to `admission_timeout` seconds) for running turns to
    end and free memory; one that could not fit even alone fails at once with ExceedsMemoryBudget.
    """

    model: ModelPort
    tok: TokenizerPort
    engine: Engine
    store: SnapshotStore
    clock: Clock
    ids: IdSource
    stop_rules: Callable[[ChatRequest], Sequence[StopRule]]
    entropy: Callable[[], int]
    default_max_seq_len: int
    spill: SnapshotStore | None = None
    kv_budget: int | None = None
    reply_parser: Callable[[str], tuple[str, tuple[Any, ...]]] | None = None
    max_prompt_tokens: int | None = None
    admission_timeout: float = 300.0
    grammars: GrammarPort | None = None
    prefix_cache: PrefixCache | None = None
    # The most prompt tokens one turn feeds per engine step (the model's chunk size; the engine's prefill
    # budget bounds it too); prefill progress is published per piece. None: only the engine's budget.
    prefill_chunk: int | None = None
    memory: MemoryManager = attrs.field(init=False)
    # The chat and snapshot use cases, built once with the service (their settings are the fields above).
    runner: TurnRunner = attrs.field(init=False)
    snapshots_service: SnapshotService = attrs.field(init=False)
    _sessions: dict[str, Session] = attrs.Factory(dict)
    # Stateless turns in flight: their state counts against the KV budget like a session's.
    _stateless_turns: list[Session] = attrs.Factory(list)
    _lock: threading.Lock = attrs.Factory(threading.Lock)
    _freed: threading.Condition = attrs.Factory(threading.Condition)
    _epoch: int = 0  # counts events that may free memory (turns ending, sessions deleted)

    def __attrs_post_init__(self) -> None:
        if self.kv_budget is not None and self.spill is None:
            raise ValueError("a KV budget needs a spill store to offload sessions to")
        self.memory = MemoryManager(self.model, self.spill, self.clock, self.ids, self._all, self.kv_budget,
                                    cache=self.prefix_cache)
        self.runner = TurnRunner(self.model, self.tok, self.stop_rules, self.clock.now, self.entropy,
                                 self.reply_parser, self.max_prompt_tokens, self.grammars, self.prefill_chunk)
        self.snapshots_service = SnapshotService(self)

    def _all(self) -> list[Session]:
        with self._lock:
            return [*self._sessions.values(), *self._stateless_turns]

    def create(self, session_id: str | None = None, max_seq_len: int | None = None) -> SessionInfo:
        """Open an empty session; 409 if the id exists."""
        sid = validate_id(session_id, "session_id") if session_id is not None else self.ids.new_id("sess_")
        cap = self.check_len(max_seq_len)
        with self._lock:
            if sid in self._sessions:
                raise Conflict(f"session {sid!r} already exists", param="session_id")
        # No engine call: the state is allocated on first use (MemoryManager.ensure_resident), so creating a
        # session never waits for a model step.
        self._register(sid, cap, None, None, False, {})
        return self.info(sid)

    def adopt(self, sid: str, cap: int, make_state: Callable[[], Any], replace: bool = False,
              **record: Any) -> Session:
        """Build a state on the engine thread (room made for what it holds) and register a session for it."""
        held = len(record.get("ledger", ()))

        def build() -> tuple[Any, Any]:
            self._check_fits(held, "session_id")
            self.memory.make_room(self.model.bytes_for(held))
            state = make_state()
            return state, self.model.checkpoint(state)

        state, start = self.admit(build)
        return self._register(sid, cap, state, start, replace, record)

    def adopt_offloaded(self, sid: str, cap: int, spilled: str, **record: Any) -> Session:
        """Register a session whose state waits in the spill store under `spilled`, as an offloaded one:
        listed at once, its state brought in by the memory manager on first use. No engine call."""
        return self._register(sid, cap, None, None, False, {**record, "spilled": spilled})

    def _register(self, sid: str, cap: int, state: object, start: object, replace: bool,
                  record: dict[str, Any]) -> Session:
        now = self.clock.now()
        s = Session(sid, state, cap, now, now, **record)
        if state is not None:
            s.add_mark(start)
        # The lock only guards the dict: nothing under it waits for the engine, whose thread reads the
        # registry too (make_room -> used()), so holding it across engine.call would deadlock.
        refused: SuperlinearError | None = None
        with self._lock:
            old = self._sessions.get(sid)
            if old is not None and not replace:
                refused = Conflict(f"session {sid!r} already exists", param="session_id")
            elif old is not None:
                try:
                    old.acquire()  # a session running a turn is never replaced under it
                except SessionBusy as exc:
                    refused = exc
            if refused is None:
                self._sessions[sid] = s
        if refused is not None:
            if state is not None:
                self.engine.call(lambda: self.model.release(state))
            raise refused
        if old is not None:
            self._drop(old)
        return s

    def check_len(self, max_seq_len: object) -> int:
        """Validate a requested maximum length, or return the default."""
        if max_seq_len is None:
            return self.default_max_seq_len
        if not isinstance(max_seq_len, int) or isinstance(max_seq_len, bool) or max_seq_len < 1:
            raise InvalidRequest("max_seq_len must be a positive integer", param="max_seq_len")
        limit = self.max_len_limit
        if max_seq_len > limit:
            raise InvalidRequest(f"max_seq_len {max_seq_len} exceeds the server's limit {limit}", param="max_seq_len")
        return max_seq_len

    def exists(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._sessions

    @property
    def max_len_limit(self) -> int:
        """The longest session this server allows: the model's limit, or the lower server cap."""
        return min(self.model.info.max_seq_len, self.default_max_seq_len)

    def find(self, session_id: str) -> Session | None:
        """Return the live session, or None."""
        with self._lock:
            return self._sessions.get(session_id)

    def session(self, session_id: str) -> Session:
        """Return the live session or raise NotFound."""
        with self._lock:
            found = self._sessions.get(session_id)
        if found is None:
            raise NotFound(f"no session {session_id!r}", param="session_id")
        return found

    def info(self, session_id: str) -> SessionInfo:
        s = self.session(session_id)
        state = s.state
        return s.info(self.model.nbytes(state) if state is not None else 0)

    def list(self) -> list[SessionInfo]:
        with self._lock:
            ids = sorted(self._sessions)
        out = []
        for sid in ids:
            try:
                out.append(self.info(sid))
            except NotFound:
                continue
        return out

    def history(self, session_id: str) -> builtins.list[Message]:
        return list(self.session(session_id).transcript)

    def delete(self, session_id: str) -> None:
        """Close a session and free its memory; a busy session is a conflict."""
        s = self.session(session_id)
        s.acquire()
        with self._lock:
            self._sessions.pop(session_id, None)
        self._drop(s)
        self._signal_freed()

    def _drop(self, s: Session) -> None:
        def free() -> None:
            if s.state is not None:
                self.model.release(s.state)
            self.memory.forget(s)

        self.engine.call(free)

    def exclusive(self, session_id: str, fn: Callable[[Session], _T]) -> _T:
        """Run `fn(session)` on the engine thread with the session resident and locked."""
        s = self.session(session_id)
        s.acquire()
        try:
            return self.engine.call(lambda: self._resident(s, fn))
        finally:
            s.release()

    def _resident(self, s: Session, fn: Callable[[Session], _T]) -> _T:
        self.memory.ensure_resident(s)
        return fn(s)

    def chat(self, request: ChatRequest) -> TurnHandle:
        """Start a turn; validation errors raise here, before any event."""
        if request.session_id is None:
            return self._stateless(request)
        s = self.session(request.session_id)
        s.acquire()
        try:
            turn = self.admit(lambda: self._prepare(s, request))
        except BaseException:
            s.release()
            raise

        def done() -> None:
            self.memory.unreserve(s)
            s.release()
            self._signal_freed()

        return self.engine.submit(self.runner.run(turn), on_exit=done)

    def admit(self, prepare: Callable[[], _T]) -> _T:
        """Run `prepare` on the engine; while memory is short but could free up, wait for turns to end."""
        deadline = time.monotonic() + self.admission_timeout
        while True:
            with self._freed:
                epoch = self._epoch
            try:
                return self.engine.call(prepare)
            except InsufficientMemory:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
            with self._freed:
                self._freed.wait_for(functools.partial(self._moved_on, epoch), timeout=min(left, 1.0))

    def _moved_on(self, epoch: int) -> bool:
        """Whether something that may free memory happened since `epoch` (call under `_freed`)."""
        return self._epoch != epoch

    def _check_fits(self, tokens: int, param: str, copies: int = 1) -> None:
        """Raise ExceedsMemoryBudget when `copies` states of `tokens` tokens would not fit even the empty budget."""
        budget, need = self.memory.budget, copies * self.model.bytes_for(tokens)
        if budget is not None and need > budget:
            states = f"{copies} states of {tokens} tokens" if copies > 1 else f"{tokens} tokens"
            raise ExceedsMemoryBudget(
                f"{states} need {need} bytes of KV memory, more than the whole budget of {budget} bytes; "
                "shorten the prompt or max_tokens",
                param=param,
            )

    def _signal_freed(self) -> None:
        with self._freed:
            self._epoch += 1
            self._freed.notify_all()

    def _prepare(self, s: Session, request: ChatRequest) -> PreparedTurn:
        self.memory.ensure_resident(s)
        keep = edited_prefix(s.transcript, request.messages)
        if keep is not None:
            rollback(self.model, self.tok, s, keep, request.template_kwargs)
        turn = self.runner.prepare(s, request)
        total = s.held + len(turn.context_ids) + len(turn.gen_ids) + min(turn.room, request.sampling.max_tokens)
        self._check_fits(total, "messages")
        self.memory.make_room(self.memory.growth(s, total), keep=s)
        self.memory.reserve(s, total)
        return turn

    def _stateless(self, request: ChatRequest) -> TurnHandle:
        """Run a turn in a throwaway state, admitted under the KV budget exactly like a session's turn.

        While it runs the state is listed with the sessions (so `memory.used()` counts it, reserved at its
        full length) and it can wait for memory like any turn; the prefix cache may adopt it at the end.
        """

        def attempt() -> tuple[Session, Callable[[], None], PreparedTurn, builtins.list[int]]:
            now = self.clock.now()
            s = Session("stateless", None, self.default_max_seq_len, now, now)
            finish = self._hold(s)
            turn, primed = self._prepare_stateless(s, request, finish)
            return s, finish, turn, primed

        s, finish, turn, primed = self.admit(attempt)
        steps = cached_turn(self.prefix_cache, self._primed(s, primed, request, turn), s, request,
                            self._over_budget, len(primed))
        return self.engine.submit(steps, on_exit=finish)

    def _hold(self, s: Session) -> Callable[[], None]:
        """Count a throwaway session's state against the KV budget (busy, so never offloaded) until the
        returned function drops it, ends its reservation and releases its state (unless the prefix cache
        adopted it)."""
        s.acquire()
        with self._lock:
            self._stateless_turns.append(s)

        def finish() -> None:
            with self._lock:
                self._stateless_turns.remove(s)
            admitted = self.memory.unreserve(s)
            if s.state is not None:
                self.model.release(s.state)
            if admitted:  # a turn ended (a refused attempt signals nothing, so its retry waits)
                self._signal_freed()

        return finish

    def hold(self, state: object) -> Callable[[], None]:
        """Count a throwaway `state` (n > 1 choices, text completions) against the KV budget until the
        returned function releases it."""
        now = self.clock.now()
        return self._hold(Session("stateless", state, self.default_max_seq_len, now, now))

    def reserve(self, state: object, tokens: int, copies: int = 0, param: str = "messages") -> None:
        """On the engine thread: make room for a held `state` to grow to `tokens` tokens and for `copies`
        more states of that size, and count the held state at that size until it is released
        (ExceedsMemoryBudget when they could never fit; InsufficientMemory when not now)."""
        self._check_fits(tokens, param)  # one alone could never fit: the prompt's fault
        self._check_fits(tokens, "n", copies + 1)  # one would, but not all the copies
        size = self.model.bytes_for(tokens)
        self.memory.make_room(max(0, size - self.model.nbytes(state)) + copies * size)
        self._reserve_held(state, tokens, copies + 1)

    def share_reservation(self, state: object, forks: Sequence[object], tokens: int) -> None:
        """On the engine thread: `state` reserved room for copies of itself, now forked into the held
        `forks`; each of them (and `state`) now counts as one state of `tokens` tokens."""
        for held in (state, *forks):
            self._reserve_held(held, tokens, 1)

    def _reserve_held(self, state: object, tokens: int, copies: int) -> None:
        with self._lock:
            held = next((s for s in self._stateless_turns if s.state is state), None)
        if held is not None:
            self.memory.reserve(held, tokens, copies)

    def _prepare_stateless(self, s: Session, request: ChatRequest,
                           finish: Callable[[], None]) -> tuple[PreparedTurn, builtins.list[int]]:
        """Give `s` a state (a cached prefix's copy, or a fresh one to be primed with a long system prompt),
        make room for the turn under the KV budget and prepare it; return it with the ids to prime first."""
        cache = self.prefix_cache
        try:
            self.memory.make_room(0)
            hit = cache.lookup(request.messages, request.template_kwargs) if cache is not None else None
            if cache is not None and hit is not None:
                cache.resume(hit, s)
            else:
                s.allocate(self.model)
            turn = self.runner.prepare(s, request)
            primed = cache.prime(s, request, self.tok) if hit is None and cache is not None else []
            if primed:
                turn = self.runner.prepare(s, request)
            total = s.held + len(turn.context_ids) + len(turn.gen_ids) + min(turn.room, request.sampling.max_tokens)
            self._check_fits(total, "messages")
            self.memory.make_room(self.memory.growth(s, total), keep=s)
            self.memory.reserve(s, total)
            return turn, primed
        except BaseException:
            finish()
            raise

    def _primed(self, s: Session, ids: builtins.list[int], request: ChatRequest, turn: PreparedTurn) -> Steps:
        """A stateless turn's steps: first the long system prompt the prefix cache primes (through the
        scheduler like any prompt; a copy is then kept for other conversations), then the turn itself."""
        cache = self.prefix_cache
        if ids and cache is not None:
            yield from s.feed_expected(self.model)
            cache.keep_primed(s, request.template_kwargs)
            cache.evict(self._over_budget())
        yield from self.runner.run(turn)

    def _over_budget(self) -> int:
        return 0 if self.kv_budget is None else self.memory.used() - self.kv_budget

    def rollback(self, session_id: str, keep_messages: object) -> SessionInfo:
        """Cut a session back to its first `keep_messages` messages."""
        self.exclusive(session_id, lambda s: rollback(self.model, self.tok, s, keep_messages))
        return self.info(session_id)

    def resize(self, session_id: str, max_seq_len: object) -> SessionInfo:
        """Change a session's maximum length; never below what it holds, and never losing it."""
        cap = self.check_len(max_seq_len if max_seq_len is not None else -1)

        def apply(s: Session) -> None:
            if cap < s.held + 1:
                raise InvalidRequest(
                    f"max_seq_len {cap} is below the {s.held} tokens the session holds (plus one to answer)",
                    param="max_seq_len",
                )
            s.resize(self.model, cap)

        self.exclusive(session_id, apply)
        return self.info(session_id)

    def fork(self, session_id: str, new_id: str | None = None) -> SessionInfo:
        """Copy a session in memory under a new id."""
        sid = validate_id(new_id, "session_id") if new_id is not None else self.ids.new_id("sess_")
        with self._lock:
            if sid in self._sessions:
                raise Conflict(f"session {sid!r} already exists", param="session_id")

        def copy(s: Session) -> tuple[int, Any, Any, dict[str, Any]]:
            # Everything is read under the source's lock, so a turn that starts right after can't leak in.
            self.memory.make_room(self.model.bytes_for(s.held), keep=s)
            state = self.model.fork(s.state)
            record = {"ledger": list(s.ledger), "transcript": list(s.transcript), "trailer": s.trailer}
            return s.max_seq_len, state, self.model.checkpoint(state), record

        cap, state, start, record = self.exclusive(session_id, copy)
        self._register(sid, cap, state, start, False, record)
        return self.info(sid)

    def save(self, session_id: str, title: str | None = None, description: str | None = None,
             tags: Sequence[str] = ()) -> dict[str, Any]:
        """Write a session to the snapshot store; the session stays live."""
        return self.snapshots_service.save(session_id, title, description, tags)

    def import_published(self, source: PublishedSource, arrays: Mapping[str, Any]) -> dict[str, Any]:
        """Store a published server's snapshot as ours (see SnapshotService.import_published)."""
        return self.snapshots_service.import_published(source, arrays)

    def load(self, snapshot_id: str, session_id: str | None = None, force: bool = False) -> dict[str, Any]:
        """Bring a snapshot back as a live session."""
        return self.snapshots_service.load(snapshot_id, session_id, force)

    def snapshots(self) -> builtins.list[tuple[SnapshotInfo, bool]]:
        """List snapshots newest first, each with whether it fits the loaded model."""
        return self.snapshots_service.list()
