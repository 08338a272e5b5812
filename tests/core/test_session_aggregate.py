"""The Session aggregate keeps its record (ledger, transcript, trailer) equal to what its state holds."""

import pytest

from superlinear.core.ports import SnapshotManifest
from superlinear.core.session import Session
from superlinear.core.testing import FakeModel, FakeSnapshotStore
from superlinear.core.values import Message


def fresh(model):
    s = Session("s", None, 64, 0.0, 0.0)
    s.allocate(model)
    return s


def manifest(s, sid="spill-1", ledger=None):
    return SnapshotManifest(sid, 0.0, {}, tuple(s.ledger if ledger is None else ledger), tuple(s.transcript), 64)


def test_the_record_is_read_only_from_outside():
    model = FakeModel()
    s = fresh(model)
    s.append_now(model, [5, 6, 7])
    s.ledger.append(99)  # a copy: the session's own record is untouched
    s.transcript.append(Message("user", "x"))
    assert s.ledger == s.state.ids == [5, 6, 7] and s.transcript == [] and s.in_sync(model)
    with pytest.raises(AttributeError):
        s.ledger = [1]


def test_restore_returns_state_and_record_together():
    model = FakeModel()
    s = fresh(model)
    s.append_now(model, [5, 6])
    s.close_turn([Message("user", "a")], "<end>")
    mark = s.checkpoint(model)
    feed = s.feed(model, [8, 9])
    item = next(feed)
    model.append(item.state, list(item.ids))  # what the engine does with the feed
    next(feed, None)
    s.close_turn([Message("user", "a"), Message("assistant", "b")], "")
    assert s.ledger == s.state.ids == [5, 6, 8, 9]
    s.restore(model, mark)
    assert (s.ledger, s.state.ids, s.transcript, s.trailer) == ([5, 6], [5, 6], [Message("user", "a")], "<end>")


def test_offload_and_reload_keep_the_ledger_and_refuse_a_copy_of_another_ledger():
    model, spill = FakeModel(), FakeSnapshotStore()
    s = fresh(model)
    s.append_now(model, [5, 6, 7])
    with pytest.raises(ValueError, match="ledger"):
        s.offload(model, spill, manifest(s, ledger=[5, 6]))
    assert s.resident
    s.offload(model, spill, manifest(s))
    assert not s.resident and s.spilled == "spill-1" and s.in_sync(model)
    room = []
    s.reload(model, spill, room.append)
    assert s.state.ids == s.ledger == [5, 6, 7] and s.spilled is None and room
    other = Session("o", None, 64, 0.0, 0.0, ledger=[1, 2])
    spill.save(manifest(s, "spill-2"), model.export_state(s.state))
    other._spilled = "spill-2"  # a spill entry that lists [5, 6, 7], not this session's ledger
    with pytest.raises(ValueError, match="another ledger"):
        other.reload(model, spill, room.append)


def test_allocate_refuses_a_session_that_holds_tokens():
    model = FakeModel()
    with pytest.raises(ValueError):
        Session("s", None, 64, 0.0, 0.0, ledger=[1]).allocate(model)
