"""The KV budget with LRU offload, rollback, and edited histories, against the fakes."""

import threading

import pytest

from superlinear.core import (
    ChatRequest,
    ExceedsMemoryBudget,
    InsufficientMemory,
    InvalidRequest,
    Message,
    SamplingParams,
    SessionService,
)
from superlinear.core.testing import FakeSnapshotStore, FixedClock, SequentialIds

GREEDY = SamplingParams(max_tokens=8, temperature=0.0)
NO_THINK = {"enable_thinking": False}


def run(service, messages, sid):
    events = list(service.chat(ChatRequest(tuple(messages), GREEDY, sid, NO_THINK)).events(timeout=10))
    return "".join(e.text for e in events if e.kind == "content"), events[-1]


def ask(service, text, sid):
    return run(service, [Message("user", text)], sid)


@pytest.fixture
def budgeted(model, engine):
    def make(budget):
        return SessionService(model=model, tok=model.tok, engine=engine, store=FakeSnapshotStore(),
                              clock=FixedClock(), ids=SequentialIds(), stop_rules=lambda r: [],
                              entropy=lambda: 1, default_max_seq_len=2048, spill=FakeSnapshotStore(),
                              kv_budget=budget)
    return make


def test_a_third_session_offloads_the_least_recently_used_one(budgeted):
    svc = budgeted(8 * 80)
    for sid in ("a", "b"):
        svc.create(sid)
        ask(svc, "hi", sid)
    assert all(i.resident for i in svc.list())
    svc.create("c")
    ask(svc, "hello there", "c")
    infos = {i.session_id: i for i in svc.list()}
    assert not infos["a"].resident and infos["b"].resident and infos["c"].resident
    assert infos["a"].kv_bytes == 0 and infos["a"].cached_tokens > 0
    assert svc.memory.used() <= 8 * 80


def test_an_offloaded_session_answers_as_if_it_never_left(budgeted):
    reference = budgeted(None)
    reference.create("a")
    ask(reference, "hi", "a")
    expected, expected_done = ask(reference, "and then?", "a")

    svc = budgeted(8 * 80)
    svc.create("a")
    ask(svc, "hi", "a")
    cached = svc.info("a").cached_tokens
    for sid in ("b", "c"):
        svc.create(sid)
        ask(svc, "filler text", sid)
    assert not svc.info("a").resident
    got, done = ask(svc, "and then?", "a")
    assert got == expected
    assert done.usage.cached_tokens == cached == expected_done.usage.cached_tokens
    assert svc.session("a").ledger == reference.session("a").ledger
    assert svc.memory.restores == 1


def test_a_turn_that_can_never_fit_the_budget_fails_at_once_and_nothing_is_lost(budgeted):
    svc = budgeted(8 * 40)
    svc.create("a")
    with pytest.raises(ExceedsMemoryBudget, match="whole budget"):
        ask(svc, "x" * 60, "a")
    assert svc.info("a").cached_tokens == 0 and not svc.info("a").busy


def test_a_turn_that_fits_later_waits_for_a_running_turn_to_end(budgeted, model):
    svc = budgeted(8 * 100)
    for sid in ("a", "b"):
        svc.create(sid)
    model.gate = gate = threading.Semaphore(3)
    first = svc.chat(ChatRequest((Message("user", "y" * 40),), GREEDY, "a", NO_THINK))
    while model.appended < 40:  # "a" holds most of the budget and is busy, so it can't be offloaded
        threading.Event().wait(0.01)
    second: list = []
    waiter = threading.Thread(target=lambda: second.append(ask(svc, "z" * 40, "b")), daemon=True)
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive() and not second, "the second turn did not wait for memory"
    model.gate = None
    gate.release(1000)
    assert list(first.events(timeout=10))[-1].kind == "done"
    waiter.join(10)
    assert second and second[0][1].kind == "done"
    assert not svc.info("a").resident  # offloaded to make room once its turn ended


def test_a_turn_that_fits_later_gives_up_after_the_admission_timeout(budgeted):
    svc = budgeted(8 * 100)
    svc.admission_timeout = 0.2
    for sid in ("a", "b"):
        svc.create(sid)
    ask(svc, "y" * 40, "a")
    svc.session("a").acquire()  # busy, so it can't be offloaded
    with pytest.raises(InsufficientMemory):
        ask(svc, "z" * 40, "b")
    assert svc.info("b").cached_tokens == 0 and not svc.info("b").busy
    svc.session("a").release()
    assert ask(svc, "z" * 40, "b")[1].kind == "done"


def test_rollback_then_a_turn_equals_a_fresh_session_fed_the_kept_messages(service):
    service.create("s")
    first, _ = ask(service, "one", "s")
    ask(service, "two", "s")
    ask(service, "three", "s")
    info = service.rollback("s", 2)
    assert info.message_count == 2
    ask(service, "again", "s")

    service.create("fresh")
    run(service, [Message("user", "one"), Message("assistant", first), Message("user", "again")], "fresh")
    assert service.session("s").ledger == service.session("fresh").ledger
    assert service.history("s") == service.history("fresh")


def test_rollback_past_every_mark_reprefills_from_empty(service, model):
    service.create("s")
    for text in ("a", "b", "c", "d", "e", "f"):
        ask(service, text, "s")
    service.rollback("s", 1)
    s = service.session("s")
    assert s.transcript == [Message("user", "a")]
    assert s.ledger == s.state.ids == model.tok.encode("<|im_start|>user\na<|im_end|>\n")


def test_rollback_rejects_a_count_outside_the_transcript(service):
    service.create("s")
    ask(service, "a", "s")
    for bad in (-1, 3, "1", True):
        with pytest.raises(InvalidRequest, match="keep_messages"):
            service.rollback("s", bad)


def test_an_edited_history_rewinds_to_where_it_diverges(service, model):
    service.create("s")
    service.create("ref")
    first, _ = ask(service, "one", "s")
    after_first = len(service.session("s").ledger)
    ask(service, "two", "s")
    edited = [Message("user", "one"), Message("assistant", first), Message("user", "TWO, edited")]
    before = model.appended
    run(service, edited, "s")
    spent = model.appended - before
    run(service, edited, "ref")
    assert service.history("s") == service.history("ref")
    assert service.session("s").ledger == service.session("ref").ledger
    # The shared first turn came back from a mark, so far less than the whole history was prefilled.
    assert spent == len(service.session("ref").ledger) - after_first


def test_a_running_turn_reserves_what_it_may_grow_to_so_a_second_turn_waits(budgeted, model):
    svc = budgeted(8 * 100)
    for sid in ("a", "b"):
        svc.create(sid)
    order: list[int] = []
    append = model.append
    model.append = lambda state, ids: (order.append(id(state)), append(state, ids))[1]
    model.gate = gate = threading.Semaphore(2)
    # "a" holds ~25 tokens (200 bytes) while it runs, but may grow to ~85 (max_tokens 60): 680 bytes.
    first = svc.chat(ChatRequest((Message("user", "y"),), SamplingParams(max_tokens=60, temperature=0.0), "a",
                                 NO_THINK))
    while model.appended < 10:
        threading.Event().wait(0.01)
    second: list = []
    waiter = threading.Thread(target=lambda: second.append(ask(svc, "z", "b")), daemon=True)
    waiter.start()
    while svc.engine._inbox.qsize() < 1:  # the second turn's admission is queued behind the held step
        threading.Event().wait(0.01)
    finished = threading.Event()

    def trickle():  # one model call per 5 ms, so the second turn is submitted while the first still runs
        while not finished.is_set():
            gate.release()
            finished.wait(0.005)

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()
    assert list(first.events(timeout=10))[-1].kind == "done"
    waiter.join(10)
    finished.set()
    feeder.join()
    model.gate = None
    assert second and second[0][1].kind == "done"
    a_state, b_state = id(svc.session("a").state), id(svc.session("b").state)
    last_a = max(i for i, sid in enumerate(order) if sid == a_state)
    first_b = min(i for i, sid in enumerate(order) if sid == b_state)
    assert last_a < first_b, "the second turn was admitted while the first could still grow past the budget"


def test_a_load_waits_for_memory_and_one_that_can_never_fit_fails_at_once(budgeted):
    svc = budgeted(8 * 100)
    svc.create("a")
    ask(svc, "y" * 40, "a")
    saved = svc.save("a")["snapshot_id"]
    svc.admission_timeout = 0.2
    svc.session("a").acquire()  # busy: it can't be offloaded, so the copy doesn't fit beside it
    with pytest.raises(InsufficientMemory):
        svc.load(saved, "c")
    svc.session("a").release()
    assert svc.load(saved, "c")["session_id"] == "c"
    assert not svc.info("a").resident
    svc.memory.budget = 8 * 30
    with pytest.raises(ExceedsMemoryBudget):
        svc.load(saved, "d")
