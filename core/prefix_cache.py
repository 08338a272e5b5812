"""Prefix caching for stateless requests: model states kept at the end of recent stateless turns.

An agent that resends its whole conversation to a stateless endpoint sends, each time, the previous
request's messages, the reply it got, and something new. The state at the end of a stateless turn holds
exactly that prefix (the reply as the template renders it), so the next request resumes from a copy of it
and prefills only what is new, under the same ledger rules as a named session. Entries are keyed by
their messages and the template's arguments (tools, thinking, ...), bounded in number and bytes, evicted
least recently used, and give their memory back first when the KV budget needs room. A long leading
system prompt is also kept on its own, so a new conversation that shares it starts from there. Engine
thread only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from .ports import ModelPort, TokenizerPort
from .prompt import plan_prompt
from .scheduler import Steps
from .session import Session
from .values import ChatRequest, Message, StreamEvent

__all__ = ["PrefixCache", "CachedPrefix", "cached_turn"]


def _kwargs_key(kwargs: Mapping[str, object]) -> str:
    return json.dumps(kwargs, sort_keys=True, default=repr)


@attrs.define(eq=False)
class CachedPrefix:
    """One cached state: the messages it holds, its ledger and trailer."""

    key: str
    transcript: tuple[Message, ...]
    ledger: tuple[int, ...]
    trailer: str
    state: Any
    nbytes: int
    last_used: int = 0


@attrs.define(eq=False)
class PrefixCache:
    """At most `max_entries` states and `max_bytes` bytes (None: no byte cap besides the KV budget)."""

    model: ModelPort
    max_entries: int = 8
    max_bytes: int | None = None
    # A leading system prompt at least this long is cached on its own, for new conversations that share it.
    min_prefix_tokens: int = 256
    hits: int = 0
    misses: int = 0
    _entries: list[CachedPrefix] = attrs.Factory(list)
    _tick: int = 0

    def nbytes(self) -> int:
        """Bytes held by cached states."""
        return sum(e.nbytes for e in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, messages: Sequence[Message], kwargs: Mapping[str, object]) -> CachedPrefix | None:
        """The entry holding the longest proper prefix of `messages` under the same template arguments."""
        key = _kwargs_key(kwargs)
        best = None
        for entry in self._entries:
            n = len(entry.transcript)
            if entry.key != key or n >= len(messages) or (best and n <= len(best.transcript)):
                continue
            if all(a.same_as(b) for a, b in zip(entry.transcript, messages, strict=False)):
                best = entry
        if best is None:
            self.misses += 1
            return None
        self.hits += 1
        self._tick += 1
        best.last_used = self._tick
        return best

    def resume(self, entry: CachedPrefix, session: Session) -> None:
        """Give `session` a copy of the entry's state and its record."""
        session.replace(self.model.fork(entry.state), entry.ledger, entry.transcript, entry.trailer)

    def prime(self, session: Session, request: ChatRequest, tok: TokenizerPort) -> list[int]:
        """Plan prefilling the request's leading system messages into the session's fresh state, so that
        other conversations with the same system prompt can start from a copy of it: the session's record
        says it holds them; return their ids for the engine to feed, then `keep_primed` (none unless the
        prompt has at least `min_prefix_tokens` and messages after it)."""
        lead = 0
        while lead < len(request.messages) and request.messages[lead].role in ("system", "developer"):
            lead += 1
        if lead == 0 or lead == len(request.messages) or self.max_entries < 1:
            return []
        prefix = request.messages[:lead]
        ids = tok.encode(plan_prompt(tok, (), prefix, "", request.template_kwargs).context)
        if len(ids) < self.min_prefix_tokens:
            return []
        session.expect(ids, prefix)
        return ids

    def keep_primed(self, session: Session, kwargs: Mapping[str, object]) -> None:
        """Keep a copy of the session's state once it holds the primed system prompt (and nothing more)."""
        self._keep(_kwargs_key(kwargs), session, self.model.fork(session.state))

    def adopt(self, session: Session, kwargs: Mapping[str, object]) -> None:
        """Take the state of a finished stateless turn (the session no longer owns it)."""
        if self.max_entries >= 1:
            self._keep(_kwargs_key(kwargs), session, session.state)
            session.surrender()

    def _keep(self, key: str, session: Session, state: Any) -> None:
        """Add an entry for `state` with the session's record, replacing one for the same messages."""
        size = self.model.nbytes(state)
        if self.max_bytes is not None and size > self.max_bytes:
            self.model.release(state)
            return
        for old in [e for e in self._entries if e.key == key and len(e.transcript) == len(session.transcript)
                    and all(a.same_as(b) for a, b in zip(e.transcript, session.transcript, strict=True))]:
            self._drop(old)
        self._tick += 1
        self._entries.append(CachedPrefix(key, tuple(session.transcript), tuple(session.ledger), session.trailer,
                                          state, size, self._tick))
        while len(self._entries) > self.max_entries or (self.max_bytes is not None and self.nbytes() > self.max_bytes):
            self._drop(min(self._entries, key=lambda e: e.last_used))

    def evict(self, needed: int) -> int:
        """Drop least recently used entries until `needed` bytes are freed (or none is left); return the bytes."""
        freed = 0
        while freed < needed and self._entries:
            victim = min(self._entries, key=lambda e: e.last_used)
            freed += victim.nbytes
            self._drop(victim)
        return freed

    def _drop(self, entry: CachedPrefix) -> None:
        self._entries.remove(entry)
        self.model.release(entry.state)


def cached_turn(cache: PrefixCache | None, steps: Steps, session: Session,
                request: ChatRequest, over_budget: Callable[[], int],
                primed: int = 0) -> Steps:
    """Run a stateless turn's steps; once it is done, the cache adopts its state (if there is a cache) and
    gives back what the KV budget can't hold (`over_budget`: bytes in use past the budget). `primed`
    tokens were prefilled for this request before the turn began: they are not reported as cached.

    Feeds pass through to the engine; an error the engine raises into this generator (a failed feed) or a
    close (a cancel) reaches the turn's own steps, which restore their state."""
    item = next(steps)
    while True:
        if cache is not None and isinstance(item, StreamEvent) and item.kind == "done":
            item = _adopted(cache, item, session, request, over_budget, primed)
        try:
            yield item
        except GeneratorExit:
            steps.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the turn's steps
            try:
                item = steps.throw(exc)
            except StopIteration:
                return
            continue
        try:
            item = next(steps)
        except StopIteration:
            return


def _adopted(cache: PrefixCache, event: StreamEvent, session: Session, request: ChatRequest,
             over_budget: Callable[[], int], primed: int) -> StreamEvent:
    cache.adopt(session, request.template_kwargs)
    cache.evict(over_budget())
    if primed and event.usage is not None:
        event = attrs.evolve(event, usage=attrs.evolve(event.usage, cached_tokens=event.usage.cached_tokens - primed))
    return event
