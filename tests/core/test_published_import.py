"""Importing a published server's snapshot: token ids recovered from the transcript, against the fakes."""

import pytest

from superlinear.core import ChatRequest, Message, PublishedSource, SamplingParams, SnapshotError
from superlinear.core.errors import Conflict

GREEDY = SamplingParams(max_tokens=6, temperature=0.0)


def turn(service, sid, text):
    request = ChatRequest((Message("user", text),), GREEDY, sid, {"enable_thinking": False})
    return list(service.chat(request).events(timeout=10))


def published(service, sid, snapshot_id, transcript=None, pos=None):
    """What the published server saves for a session: its transcript and its state, no token ids."""
    s = service.find(sid)
    source = PublishedSource(snapshot_id=snapshot_id, created_at=1.0, current_pos=len(s.ledger) if pos is None
                             else pos, max_seq_len=s.max_seq_len,
                             transcript=tuple(s.transcript if transcript is None else transcript), title="t")
    return source, dict(service.model.export_state(s.state))


def test_the_ledger_is_recovered_with_the_unfed_closing_as_trailer(service):
    service.create("a")
    turn(service, "a", "hello there")
    s = service.find("a")
    assert s.trailer, "the fake template closes an assistant turn with text the model never fed"
    source, arrays = published(service, "a", "ab" * 16)
    result = service.import_published(source, arrays)
    assert result["snapshot_id"] == "ab" * 16 and result["tokens"] == len(s.ledger)
    manifest, _ = service.store.load("ab" * 16)
    assert list(manifest.ledger) == s.ledger and manifest.extra["trailer"] == s.trailer
    loaded = service.load("ab" * 16, "b")
    assert loaded["tokens"] == len(s.ledger)
    assert [e.text for e in turn(service, "b", "again")] == [e.text for e in turn(service, "a", "again")]


def test_a_cache_holding_the_closing_too_gets_no_trailer(service):
    service.create("a")
    turn(service, "a", "hello there")
    trailer = service.find("a").trailer
    service.model.append(service.find("a").state, service.tok.encode(trailer))
    source, arrays = published(service, "a", "cd" * 16, pos=len(service.find("a").ledger)
                               + len(service.tok.encode(trailer)))
    service.import_published(source, arrays)
    manifest, _ = service.store.load("cd" * 16)
    assert manifest.extra["trailer"] == "" and len(manifest.ledger) == source.current_pos


def test_a_position_the_transcript_does_not_render_to_is_refused_and_nothing_stored(service):
    service.create("a")
    turn(service, "a", "hello there")
    source, arrays = published(service, "a", "ef" * 16, pos=len(service.find("a").ledger) - 1)
    with pytest.raises(SnapshotError, match="the cache holds"):
        service.import_published(source, arrays)
    assert service.store.list() == []


def test_an_id_already_stored_is_a_conflict(service):
    service.create("a")
    turn(service, "a", "hi")
    source, arrays = published(service, "a", "12" * 16)
    service.import_published(source, arrays)
    with pytest.raises(Conflict, match="exists already"):
        service.import_published(source, arrays)
    other, arrays = published(service, "a", "not-ours")
    assert service.import_published(other, arrays)["snapshot_id"] != "not-ours"
