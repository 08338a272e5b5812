"""Render the core's session and snapshot values as the response body classes of session_responses.py: one
function per answer kind, the only place where a core value becomes what a session or snapshot route sends."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from superlinear.core import Message, PrefillProgress, SessionInfo, SnapshotInfo

from . import session_responses as sr

__all__ = ["session_info", "resized_next_pow2", "session_list", "session_history", "snapshot_info",
           "snapshot_list", "save_result", "load_result", "import_result"]

T = TypeVar("T")


def _prefill(p: PrefillProgress | None) -> sr.PrefillProgress | None:
    if p is None:
        return None
    left = p.seconds_left
    return sr.PrefillProgress(done=p.done, total=p.total, chunks_done=p.chunks_done, chunks_total=p.chunks_total,
                              tokens_per_second=p.tokens_per_second,
                              seconds_left=round(left, 1) if left is not None else None)


def _session_fields(info: SessionInfo) -> dict[str, Any]:
    """The fields of a session's answer: the core's, and the published client's names for two of them."""
    return dict(session_id=info.session_id, created_at=info.created_at, last_used_at=info.last_used_at,
                cached_tokens=info.cached_tokens, max_seq_len=info.max_seq_len, message_count=info.message_count,
                kv_bytes=info.kv_bytes, resident=info.resident, busy=info.busy, prefill=_prefill(info.prefill),
                cache_position=info.cached_tokens, current_pos=info.cached_tokens,
                has_prefill=info.cached_tokens > 0, cache_id=info.session_id)


def session_info(info: SessionInfo) -> sr.SessionInfo:
    """A session, as create, get, resize, rollback and fork answer it."""
    return sr.SessionInfo(**_session_fields(info))


def resized_next_pow2(info: SessionInfo, old_max_seq_len: int) -> sr.ResizedNextPow2:
    """A session grown to the next power of two, with its length before."""
    return sr.ResizedNextPow2(**_session_fields(info), mode="next_pow2", old_max_seq_len=old_max_seq_len)


def session_list(infos: Sequence[SessionInfo]) -> sr.SessionList:
    """Every session: the ids (published client) and the infos."""
    return sr.SessionList(sessions=[i.session_id for i in infos], data=[session_info(i) for i in infos])


def session_history(session_id: str, messages: Iterable[Message]) -> sr.SessionHistory:
    """A session's transcript, each message the way the client sent it."""
    return sr.SessionHistory(session_id=session_id, messages=[_history_message(m) for m in messages])


def _history_message(m: Message) -> sr.HistoryMessage:
    return sr.HistoryMessage(role=m.role, content=m.content, reasoning_content=m.reasoning_content or None,
                             tool_calls=list(m.tool_calls) or None, tool_call_id=m.tool_call_id, name=m.name)


def _snapshot_fields(info: SnapshotInfo, model_id: str | None) -> dict[str, Any]:
    """The fields of a snapshot's answer: the flat ones, and the published server's nested manifest fields.

    The published `spl` client reads `metadata.{title,description,tags}` (its docs REPL keeps its source list
    in `metadata.description`), `session.{current_pos,max_seq_len}` and `model_id`.
    """
    tags = list(info.tags)
    return dict(snapshot_id=info.snapshot_id, created_at=info.created_at, title=info.title,
                description=info.description, tags=tags, tokens=info.tokens, bytes=info.bytes,
                model=dict(info.model), message_count=info.message_count, max_seq_len=info.max_seq_len,
                metadata=sr.PublishedMetadata(title=info.title, description=info.description, tags=list(tags)),
                session=sr.PublishedSession(current_pos=info.tokens, max_seq_len=info.max_seq_len),
                model_id=model_id)


def snapshot_info(info: SnapshotInfo) -> sr.SnapshotInfo:
    """A snapshot's manifest, as get and patch answer it."""
    return sr.SnapshotInfo(**_snapshot_fields(info, None))


def snapshot_list(listed: Iterable[tuple[SnapshotInfo, bool]], model_name: str) -> sr.SnapshotList:
    """The stored snapshots, each with whether the loaded model (named `model_name`) can load it."""
    data = [sr.ListedSnapshot(**_snapshot_fields(info, model_name if ok else None), compatible=ok)
            for info, ok in listed]
    # `snapshots` beside `data`: the published client reads that key (as `sessions` for sessions).
    return sr.SnapshotList(object="list", data=data, snapshots=data)


def _result(cls: type[T], result: Mapping[str, Any]) -> T:
    """A body class from the core's result mapping: a key missing, or one the class does not declare, is an
    error here, so a field the core adds cannot be sent undocumented."""
    return cls(**result)


def save_result(result: Mapping[str, Any]) -> sr.SaveResult:
    """What saving a session wrote."""
    return _result(sr.SaveResult, result)


def load_result(result: Mapping[str, Any]) -> sr.LoadResult:
    """What loading a snapshot into a session read."""
    return _result(sr.LoadResult, result)


def import_result(result: Mapping[str, Any]) -> sr.ImportResult:
    """What importing a published snapshot wrote."""
    return _result(sr.ImportResult, result)
