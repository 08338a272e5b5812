"""Sessions kept across a graceful stop (frontends/http/persist.py), against the core's fakes."""

from __future__ import annotations

import attrs
import pytest
from superlinear.core import ChatRequest, Engine, Message, SamplingParams, SessionService
from superlinear.core.testing import FakeModel, FakeSnapshotStore, FakeTokenizer, FixedClock, SequentialIds
from superlinear.frontends.http.persist import AUTOSAVE_TAG, persist_sessions, restore_sessions


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
                          ids=SequentialIds(), stop_rules=lambda r: [], entropy=lambda: 1, default_max_seq_len=2048)


def talk(svc, sid, text):
    svc.create(sid)
    req = ChatRequest(messages=(Message("user", text),), session_id=sid,
                      sampling=SamplingParams(max_tokens=6, temperature=0.0), template_kwargs={"enable_thinking": False})
    list(svc.chat(req).events(timeout=10))


def state_of(svc, sid):
    s = svc.session(sid)
    return list(s.ledger), list(s.transcript), s.trailer, list(s.state.ids)


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
    assert sorted(restore_sessions(again)) == ["alice", "bob"]
    assert {sid: state_of(again, sid) for sid in ("alice", "bob")} == before
    assert store.list() == []


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
