"""The session registry never waits for the engine while it holds its lock (it used to deadlock)."""

import threading

import pytest

from superlinear.core import Conflict, Engine, SessionBusy, SessionService
from superlinear.core.testing import FakeModel, FakeSnapshotStore, FakeTokenizer, FixedClock, SequentialIds


class WatchedEngine(Engine):
    """An engine that counts the calls posted to it, so a test can order threads without sleeping."""

    def __init__(self):
        super().__init__()
        self.posted = 0
        self.changed = threading.Condition()

    def call(self, fn, timeout=None):
        with self.changed:
            self.posted += 1
            self.changed.notify_all()
        return super().call(fn, timeout)

    def wait_posted(self, n: int, timeout: float = 5.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.posted >= n, timeout)


def test_a_load_that_loses_an_id_race_does_not_freeze_the_engine():
    engine = WatchedEngine().start()
    model = FakeModel(FakeTokenizer())
    svc = SessionService(model=model, tok=model.tok, engine=engine, store=FakeSnapshotStore(), clock=FixedClock(),
                         ids=SequentialIds(), stop_rules=lambda r: [], entropy=lambda: 1, default_max_seq_len=256,
                         spill=FakeSnapshotStore(), kv_budget=1 << 20)
    svc.create("src")
    saved = svc.save("src")["snapshot_id"]
    base = engine.posted
    hold, go = threading.Event(), threading.Event()
    outcomes: list = []

    def blocker(event, then=lambda: None):
        threading.Thread(target=lambda: engine.call(lambda: (event.wait(10), then())), daemon=True).start()

    def load():
        try:
            outcomes.append(svc.load(saved, "x"))
        except Conflict as exc:
            outcomes.append(exc)

    blocker(hold)  # the engine is busy, so both loaders pass the id check before either registers
    assert engine.wait_posted(base + 1)
    creators = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for t in creators:
        t.start()
    assert engine.wait_posted(base + 3)
    # Queued behind both builds: once released, this call reads the registry (make_room -> used()).
    blocker(go, lambda: svc.memory.make_room(1))
    assert engine.wait_posted(base + 4)
    hold.set()
    # The loser of the race frees its state through the engine; let the registry reader run only then.
    engine.wait_posted(base + 5)
    go.set()
    for t in creators:
        t.join(timeout=10)
    alive = [t for t in creators if t.is_alive()]
    assert not alive, "a load is stuck: the registry lock was held while waiting for the engine"
    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "dict"]
    assert engine.call(lambda: "free", timeout=5) == "free"
    engine.stop()


def test_loading_over_a_busy_session_is_refused_and_leaves_it_in_place(service):
    service.create("s")
    saved = service.save("s")["snapshot_id"]
    s = service.session("s")
    s.acquire()  # as a running turn does
    with pytest.raises(SessionBusy):
        service.load(saved, "s", force=True)
    assert service.session("s") is s and not s.state.released
    s.release()
    assert service.load(saved, "s", force=True)["session_id"] == "s"
    assert service.session("s") is not s and s.state.released


def test_create_never_waits_for_the_engine(service, engine):
    release = threading.Event()
    holder = threading.Thread(target=engine.call, args=(lambda: release.wait(10),), daemon=True)
    holder.start()
    try:
        info = service.create("lazy")  # the engine is held: this must not need it
        assert info.cached_tokens == 0 and info.kv_bytes == 0 and info.resident
        assert [i.session_id for i in service.list()] == ["lazy"]
    finally:
        release.set()
        holder.join()
