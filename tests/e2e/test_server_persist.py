"""Sessions kept across a graceful stop (frontends/http/persist.py), against the core's fakes."""

from __future__ import annotations

import attrs
import pytest

from superlinear.core import ChatRequest, Engine, Message, NotFound, SamplingParams, SessionService
from superlinear.core.testing import FakeModel, FakeSnapshotStore, FakeTokenizer, FixedClock, SequentialIds
from superlinear.frontends.http.persist import AUTOSAVE_TAG, AutosaveSpill, persist_sessions, restore_sessions


@pytest.fixture
def engines():
    made = []

    def make():
        made.append(Engine().start())
        return made[-1]

    yield make
    for engine in made:
        engine.stop()


def service(engine, store, model=None):
    model = model or FakeModel(FakeTokenizer())
    return SessionService(model=model, tok=model.tok, engine=engine, store=store, clock=FixedClock(),
                          ids=SequentialIds(), stop_rules=lambda r: [], entropy=lambda: 1, default_max_seq_len=2048,
                          spill=AutosaveSpill(FakeSnapshotStore(), store))


def talk(svc, sid, text):
    svc.create(sid)
    req = ChatRequest(messages=(Message("user", text),), session_id=sid,
                      sampling=SamplingParams(max_tokens=6, temperature=0.0), template_kwargs={"enable_thinking": False})
    list(svc.chat(req).events(timeout=10))


def state_of(svc, sid):
    svc.exclusive(sid, lambda s: None)  # brought into memory, as any use of the session does
    s = svc.session(sid)
    return list(s.ledger), list(s.transcript), s.trailer, list(s.state.ids)


def autosaves(store):
    return sorted(i.snapshot_id for i in store.list() if AUTOSAVE_TAG in i.tags)


def test_kept_sessions_come_back_whole_and_their_autosaves_are_used_up(engines):
    store = FakeSnapshotStore()
    first = service(engines(), store)
    talk(first, "alice", "My name is Alice.")
    talk(first, "bob", "My name is Bob.")
    before = {sid: state_of(first, sid) for sid in ("alice", "bob")}
    kept = persist_sessions(first)
    assert sorted(sid for sid, _ in kept.kept) == ["alice", "bob"] and kept.lost == ()
    assert "kept 2 session(s)" in kept.summary()

    again = service(engines(), store)
    saved = autosaves(store)
    assert sorted(restore_sessions(again)) == ["alice", "bob"]
    # Listed at once with what they hold, but nothing imported into the model yet.
    infos = {i.session_id: i for i in again.list()}
    assert {sid: (infos[sid].cached_tokens, infos[sid].message_count) for sid in infos} == \
        {sid: (len(b[0]), len(b[1])) for sid, b in before.items()}
    assert not any(i.resident for i in infos.values()) and again.session("alice").state is None
    assert [m.content for m in again.history("bob")] == [m.content for m in before["bob"][1]]
    assert autosaves(store) == saved
    # The first use brings the state in from the autosave and uses that autosave up; the other waits.
    assert state_of(again, "alice") == before["alice"]
    assert len(autosaves(store)) == 1 and again.session("bob").state is None
    assert state_of(again, "bob") == before["bob"]
    assert store.list() == []


def test_a_kept_session_not_used_before_the_next_stop_keeps_its_autosave(engines):
    store = FakeSnapshotStore()
    first = service(engines(), store)
    talk(first, "alice", "My name is Alice.")
    before = state_of(first, "alice")
    persist_sessions(first)
    saved = autosaves(store)
    second = service(engines(), store)
    assert restore_sessions(second) == ["alice"]
    kept = persist_sessions(second)  # nothing to write: the autosave still holds it
    assert kept.kept == (("alice", len(before[0])),) and autosaves(store) == saved
    third = service(engines(), store)
    assert restore_sessions(third) == ["alice"] and state_of(third, "alice") == before


def test_deleting_a_kept_session_before_its_first_use_removes_its_autosave(engines):
    store = FakeSnapshotStore()
    first = service(engines(), store)
    talk(first, "alice", "Hello")
    talk(first, "bob", "Hello")
    persist_sessions(first)
    again = service(engines(), store)
    restore_sessions(again)
    again.delete("alice")
    assert not again.exists("alice") and len(autosaves(store)) == 1
    assert restore_sessions(service(engines(), store)) == ["bob"]


def test_a_kept_session_whose_autosave_was_removed_by_hand_says_so_and_can_be_deleted(engines):
    store = FakeSnapshotStore()
    first = service(engines(), store)
    talk(first, "alice", "Hello")
    persist_sessions(first)
    again = service(engines(), store)
    restore_sessions(again)
    store.delete(autosaves(store)[0])  # as `spl snapshot rm` of the autosave would
    with pytest.raises(NotFound, match="kept at the last stop .* removed"):
        again.exclusive("alice", lambda s: None)
    again.delete("alice")
    assert not again.exists("alice")


def test_restoring_needs_the_autosave_spill(engines):
    store = FakeSnapshotStore()
    model = FakeModel(FakeTokenizer())
    plain = SessionService(model=model, tok=model.tok, engine=engines(), store=store, clock=FixedClock(),
                           ids=SequentialIds(), stop_rules=lambda r: [], entropy=lambda: 1, default_max_seq_len=2048)
    with pytest.raises(TypeError, match="AutosaveSpill"):
        restore_sessions(plain)


def test_a_second_stop_supersedes_the_first_autosave(engines):
    store = FakeSnapshotStore()
    svc = service(engines(), store)
    talk(svc, "alice", "Hello")
    persist_sessions(svc)
    persist_sessions(svc)
    assert len([i for i in store.list() if AUTOSAVE_TAG in i.tags]) == 1


def test_a_session_still_running_a_turn_is_reported_not_kept(engines):
    store = FakeSnapshotStore()
    svc = service(engines(), store)
    talk(svc, "idle", "Hello")
    talk(svc, "busy", "Hello")
    svc.session("busy").acquire()  # as a turn in flight holds it
    kept = persist_sessions(svc, wait_busy=0.3)
    assert [sid for sid, _ in kept.kept] == ["idle"]
    assert kept.lost == (("busy", "still running a turn"),)
    assert "not kept: busy (still running a turn)" in kept.summary()


def test_an_autosave_of_another_model_stays_in_the_store(engines):
    store = FakeSnapshotStore()
    svc = service(engines(), store)
    talk(svc, "alice", "Hello")
    persist_sessions(svc)
    other = FakeModel(FakeTokenizer())
    other._info = attrs.evolve(other.info, fingerprint={"model": "fake-v2"})
    again = service(engines(), store, other)
    assert restore_sessions(again) == []
    assert not again.exists("alice") and len(store.list()) == 1


def test_a_session_that_already_exists_is_left_alone(engines):
    store = FakeSnapshotStore()
    svc = service(engines(), store)
    talk(svc, "alice", "Hello")
    persist_sessions(svc)
    again = service(engines(), store)
    talk(again, "alice", "Something else")
    mine = state_of(again, "alice")
    assert restore_sessions(again) == []
    assert state_of(again, "alice") == mine
