"""The response bodies of the session and snapshot routes, declared once as body classes (see responses.py)."""

from __future__ import annotations

from .contract import Obj, body, optional, sent
from .fields import Anything, Bool, Const, Int, ListOf, MapOf, Num, Str

__all__ = ["SessionInfo", "SessionList", "SessionHistory", "HistoryMessage", "Deleted", "SaveResult", "SnapshotInfo",
           "ListedSnapshot", "SnapshotList", "LoadResult", "ImportResult"]

_STR, _INT, _NUM, _BOOL = Str(), Int(), Num(), Bool()



@body()
class PrefillProgress:
    done: int = sent(_INT)
    total: int = sent(_INT)
    chunks_done: int = sent(_INT)
    chunks_total: int = sent(_INT)
    tokens_per_second: float = sent(_NUM)
    seconds_left: float | None = sent(_NUM, nullable=True)


@body(open=True)
class SessionInfo:
    session_id: str = sent(_STR)
    created_at: float = sent(_NUM)
    last_used_at: float = sent(_NUM)
    cached_tokens: int = sent(_INT)
    cache_position: int = sent(_INT)
    max_seq_len: int = sent(_INT)
    message_count: int = sent(_INT)
    kv_bytes: int = sent(_INT)
    resident: bool = sent(_BOOL)
    busy: bool = sent(_BOOL)
    prefill: PrefillProgress | None = optional(Obj(PrefillProgress, inline=True), nullable=True,
                                                doc="the prefill under way (a long message or document), else null")


@body()
class SessionList:
    sessions: list = sent(ListOf(_STR))
    data: list = sent(ListOf(Obj(SessionInfo)))


@body()
class HistoryMessage:
    role: str = sent(_STR)
    content: str = sent(_STR)
    reasoning_content: str = optional(_STR)
    tool_calls: list = optional(ListOf(Anything(dict)), doc="the assistant's tool calls, as the client sent them")
    tool_call_id: str = optional(_STR)
    name: str = optional(_STR)


@body()
class SessionHistory:
    session_id: str = sent(_STR)
    messages: list = sent(ListOf(Obj(HistoryMessage, inline=True)))


@body()
class Deleted:
    session_id: str = optional(_STR)
    snapshot_id: str = optional(_STR)
    deleted: bool = sent(Const(True))


@body()
class SaveResult:
    snapshot_id: str = sent(_STR)
    tokens: int = sent(_INT)
    bytes: int = sent(_INT)
    seconds: float = sent(_NUM)


@body()
class LoadResult:
    session_id: str = sent(_STR)
    tokens: int = sent(_INT)
    bytes: int = sent(_INT)
    seconds: float = sent(_NUM)


@body(open=True)
class SnapshotInfo:
    snapshot_id: str = sent(_STR)
    created_at: float = sent(_NUM)
    title: str | None = sent(_STR, nullable=True)
    description: str | None = sent(_STR, nullable=True)
    tags: list = sent(ListOf(_STR))
    tokens: int = sent(_INT)
    bytes: int = sent(_INT)
    model: dict = sent(MapOf(_STR))
    message_count: int = sent(_INT)


@body(open=True)
class ListedSnapshot(SnapshotInfo):
    compatible: bool = sent(_BOOL)


@body()
class SnapshotList:
    object: str = sent(Const("list"))
    data: list = sent(ListOf(Obj(ListedSnapshot)))
    snapshots: list = sent(ListOf(Obj(ListedSnapshot)), doc="the same items as data (published client)")


@body()
class ImportResult:
    snapshot_id: str = sent(_STR)
    tokens: int = sent(_INT)
    bytes: int = sent(_INT)
    messages: int = sent(_INT)
    logits: bool = sent(_BOOL, doc="false: the first turn computes them")
    seconds: float = sent(_NUM)
