"""The response bodies of the session and snapshot routes, declared once as body classes (see responses.py).

Each is closed: it declares every field sent, the published client's second names for some of them included
(render_sessions.py fills them from the core's values)."""

from __future__ import annotations

from .contract import Obj, body, optional, sent
from .fields import Anything, Bool, Const, Int, ListOf, MapOf, Num, Str

__all__ = ["SessionInfo", "ResizedNextPow2", "SessionList", "SessionHistory", "HistoryMessage", "Deleted",
           "SaveResult", "SnapshotInfo", "ListedSnapshot", "SnapshotList", "LoadResult", "ImportResult"]

_STR, _INT, _NUM, _BOOL = Str(), Int(), Num(), Bool()


@body()
class PrefillProgress:
    done: int = sent(_INT)
    total: int = sent(_INT)
    chunks_done: int = sent(_INT)
    chunks_total: int = sent(_INT)
    tokens_per_second: float = sent(_NUM)
    seconds_left: float | None = sent(_NUM, nullable=True, doc="at the rate so far, to 0.1 s; null before the "
                                                                "first chunk has finished")


@body()
class SessionInfo:
    session_id: str = sent(_STR)
    created_at: float = sent(_NUM)
    last_used_at: float = sent(_NUM)
    cached_tokens: int = sent(_INT)
    max_seq_len: int = sent(_INT)
    message_count: int = sent(_INT)
    kv_bytes: int = sent(_INT)
    resident: bool = sent(_BOOL)
    busy: bool = sent(_BOOL)
    prefill: PrefillProgress | None = sent(Obj(PrefillProgress, inline=True), nullable=True,
                                           doc="the prefill under way (a long message or document), else null")
    cache_position: int = sent(_INT, doc="cached_tokens again (published client)")
    current_pos: int = sent(_INT, doc="cached_tokens again (published client)")
    has_prefill: bool = sent(_BOOL, doc="whether any token is cached (published client)")
    cache_id: str = sent(_STR, doc="session_id again (published client)")


@body()
class ResizedNextPow2(SessionInfo):
    mode: str = sent(Const("next_pow2"))
    old_max_seq_len: int = sent(_INT)


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


@body()
class PublishedMetadata:
    title: str | None = sent(_STR, nullable=True)
    description: str | None = sent(_STR, nullable=True)
    tags: list = sent(ListOf(_STR))


@body()
class PublishedSession:
    current_pos: int = sent(_INT)
    max_seq_len: int = sent(_INT)


@body()
class SnapshotInfo:
    snapshot_id: str = sent(_STR)
    created_at: float = sent(_NUM)
    title: str | None = sent(_STR, nullable=True)
    description: str | None = sent(_STR, nullable=True)
    tags: list = sent(ListOf(_STR))
    tokens: int = sent(_INT)
    bytes: int = sent(_INT)
    model: dict = sent(MapOf(_STR), doc="the fingerprint of the model, kernels and tokenizer that saved it")
    message_count: int = sent(_INT)
    max_seq_len: int = sent(_INT)
    metadata: PublishedMetadata = sent(Obj(PublishedMetadata, inline=True),
                                       doc="title, description and tags again (published client)")
    session: PublishedSession = sent(Obj(PublishedSession, inline=True),
                                     doc="tokens (as current_pos) and max_seq_len again (published client)")
    model_id: str | None = sent(_STR, nullable=True, doc="in a list, the loaded model's name when the snapshot "
                                                         "is compatible with it; else null (published client)")


@body()
class ListedSnapshot(SnapshotInfo):
    compatible: bool = sent(_BOOL, doc="whether the loaded model can load it")


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
