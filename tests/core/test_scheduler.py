"""The batching scheduler against the fakes: batched decode, chunked prefill, cancellation inside a prefill."""

import threading

import pytest

from superlinear.core import ChatRequest, Engine, Message, SamplingParams, SessionService, TurnCancelled
from superlinear.core.testing import FakeModel, FakeSnapshotStore, FakeTokenizer, FixedClock, SequentialIds

GREEDY = SamplingParams(max_tokens=24, temperature=0.0)
NO_THINK = {"enable_thinking": False}


class RecordingModel(FakeModel):
    """Records every model call as (kind, [(state length before, tokens)...])."""

    def __init__(self, **kw):
        super().__init__(FakeTokenizer(), **kw)
        self.calls: list = []

    def append(self, state, token_ids):
        if not getattr(self, "_in_batch", False):
            self.calls.append(("append", id(state), len(token_ids)))
        super().append(state, token_ids)

    def decode_batch(self, states, token_ids):
        self.calls.append(("batch", tuple(id(s) for s in states), 1))
        self._in_batch = True
        try:
            super().decode_batch(states, token_ids)
        finally:
            self._in_batch = False


def make_service(model, budget=16):
    engine = Engine(prefill_budget=budget).start()
    svc = SessionService(model=model, tok=model.tok, engine=engine, store=FakeSnapshotStore(), clock=FixedClock(),
                         ids=SequentialIds(), stop_rules=lambda r: [], entropy=lambda: 7, default_max_seq_len=4096)
    return svc


def request(text, sid, max_tokens=24):
    return ChatRequest(messages=(Message("user", text),), session_id=sid, template_kwargs=NO_THINK,
                       sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0))


def _hold(svc) -> threading.Event:
    """Post a call that holds the engine until the returned event is set; return once it is queued."""
    release, running, queued = threading.Event(), threading.Event(), svc.engine._inbox.qsize()
    threading.Thread(target=svc.engine.call, args=(lambda: (running.set(), release.wait(10)),), daemon=True).start()
    while not running.is_set() and svc.engine._inbox.qsize() <= queued:
        threading.Event().wait(0.005)
    return release


def all_at_once(svc, starts, gate=None):
    """Start turns so that they all join the engine's next step together.

    The engine is busy (held by a call, or by `gate` on the model) while the turns prepare; a second hold
    then keeps it until every turn is submitted.
    """
    first = _hold(svc) if gate is None else None
    handles: dict = {}
    threads = [threading.Thread(target=lambda s=sid, r=req: handles.__setitem__(s, svc.chat(r)), daemon=True)
               for sid, req in starts]
    for t in threads:
        t.start()
    while svc.engine._inbox.qsize() < len(starts):
        threading.Event().wait(0.005)
    second = _hold(svc)
    if gate is None:
        first.set()
    else:
        svc.model.gate = None
        gate.release(1000)
    for t in threads:
        t.join(10)
    second.set()
    return handles


def collect(handle):
    events = list(handle.events(timeout=20))
    return "".join(e.text for e in events if e.kind == "content"), events[-1]


@pytest.fixture
def svc():
    s = make_service(RecordingModel(reply_len=20))
    yield s
    s.engine.stop()


def test_concurrent_turns_decode_in_one_batch_and_answer_as_they_would_alone(svc):
    prompts = {"a": "hi", "b": "a longer question here", "c": "mid"}
    alone = make_service(RecordingModel(reply_len=20))
    expected = {}
    for sid, text in prompts.items():
        alone.create(sid)
        expected[sid] = collect(alone.chat(request(text, sid)))[0]
    alone.engine.stop()
    for sid in prompts:
        svc.create(sid)
    handles = all_at_once(svc, [(sid, request(text, sid)) for sid, text in prompts.items()])
    got = {sid: collect(h)[0] for sid, h in handles.items()}
    assert got == expected
    assert max(svc.model.batch_sizes) == 3, "the three turns never shared a step"
    for sid in prompts:
        s = svc.session(sid)
        assert s.ledger == s.state.ids


def test_turns_joining_and_leaving_mid_run_answer_as_alone(svc):
    alone = make_service(RecordingModel(reply_len=20))
    plan = [("a", "first", 24), ("b", "second one", 5), ("c", "third", 12)]
    expected = {}
    for sid, text, n in plan:
        alone.create(sid)
        expected[sid] = collect(alone.chat(request(text, sid, n)))[0]
    alone.engine.stop()
    for sid, *_ in plan:
        svc.create(sid)
    svc.model.gate = gate = threading.Semaphore(5)
    first = svc.chat(request("first", "a", 24))
    while len(svc.model.calls) < 5:  # "a" prefilled and is decoding alone when the others join (held)
        threading.Event().wait(0.01)
    others = all_at_once(svc, [(sid, request(text, sid, n)) for sid, text, n in plan[1:]], gate)
    got = {sid: collect(h)[0] for sid, h in others.items()}
    got["a"] = collect(first)[0]
    assert got == expected
    assert 3 in svc.model.batch_sizes and 2 in svc.model.batch_sizes


def test_a_long_prefill_runs_in_chunks_between_another_turns_decode_steps(svc):
    model = svc.model
    svc.create("talk")
    svc.create("long")
    model.gate = gate = threading.Semaphore(4)
    talk = svc.chat(request("hi", "talk", 24))
    while len(model.calls) < 4:  # "talk" is decoding when the long prompt arrives
        threading.Event().wait(0.01)
    long = all_at_once(svc, [("long", request("x" * 600, "long", 4))], gate)["long"]
    collect(talk)
    collect(long)
    long_state = id(svc.session("long").state)
    chunks = [c for c in model.calls if c[0] == "append" and c[1] == long_state and c[2] > 1]
    assert len(chunks) > 10 and all(c[2] <= 16 for c in chunks)
    first = model.calls.index(chunks[0])
    last = model.calls.index(chunks[-1])
    talk_state = id(svc.session("talk").state)
    between = [c for c in model.calls[first:last] if c[0] == "append" and c[1] == talk_state]
    assert between, "the other turn did not decode while the prompt was prefilling"


def test_a_cancel_during_prefill_stops_within_a_chunk_and_leaves_the_session_as_it_was(svc):
    model = svc.model
    svc.create("s")
    collect(svc.chat(request("hello", "s")))
    s = svc.session("s")
    before = (list(s.ledger), list(s.transcript), s.trailer, list(s.state.ids))
    fed_before = model.appended
    model.gate = gate = threading.Semaphore(3)
    handle = svc.chat(request("y" * 800, "s"))
    while model.appended < len(before[0]) + 32:
        threading.Event().wait(0.01)
    handle.cancel()
    chunks_at_cancel = len(model.calls)
    model.gate = None
    gate.release(100)  # the chunk in flight finishes; the turn must stop there
    with pytest.raises(TurnCancelled):
        list(handle.events(timeout=20))
    assert len(model.calls) - chunks_at_cancel <= 1
    assert model.appended - fed_before < 800, "the whole prompt was prefilled before the cancel was seen"
    assert (list(s.ledger), list(s.transcript), s.trailer, list(s.state.ids)) == before


def test_management_calls_wait_at_most_one_step_behind_a_prefill(svc):
    model = svc.model
    svc.create("long")
    model.gate = threading.Semaphore(2)
    handle = svc.chat(request("z" * 800, "long", 2))
    created = threading.Thread(target=svc.create, args=("new",), daemon=True)
    created.start()
    gate = model.gate
    gate.release()  # one more chunk: the call queued behind the step in flight runs next
    created.join(timeout=10)
    assert not created.is_alive(), "create waited for more than the step in flight"
    assert svc.info("new").cached_tokens == 0
    assert not svc.session("long").ledger  # the prompt is still prefilling
    model.gate = None
    for _ in range(100):
        gate.release()
    collect(handle)


def test_per_turn_sampling_features_ride_the_batch_and_give_what_they_give_alone():
    """logit_bias, logprobs, a grammar's mask and n > 1 forks are per turn: the batched step only feeds
    tokens, so each turn's choices (and log-probabilities) are those it makes alone."""
    from superlinear.core.choices import start_choices
    from superlinear.core.values import Grammar

    from .test_grammar_turns import DIGITS, Grammars

    def stateless(**sampling):
        params = SamplingParams(max_tokens=12, temperature=1.0, seed=5, **sampling)
        return ChatRequest(messages=(Message("user", "tell me"),), template_kwargs=NO_THINK, sampling=params)

    starts = [("bias", stateless(logit_bias=((DIGITS[4], 6.0),))), ("logprobs", stateless(logprobs=2)),
              ("grammar", stateless(grammar=Grammar("lark", "digits"))), ("plain", stateless())]

    def run(svc, batched):
        svc.runner.grammars = Grammars()
        handles = (all_at_once(svc, starts) if batched else {k: svc.chat(r) for k, r in starts})
        got = {k: [(e.kind, e.text, e.logprobs) for e in h.events(timeout=20)] for k, h in handles.items()}
        forks = start_choices(svc, stateless(logprobs=1), 3)
        got["n3"] = [[(e.kind, e.text, e.logprobs) for e in h.events(timeout=20)] for h in forks]
        return got

    alone = make_service(RecordingModel(reply_len=20))
    expected = {}
    for key, req in starts:  # one at a time: never batched
        alone.runner.grammars = Grammars()
        expected[key] = [(e.kind, e.text, e.logprobs) for e in alone.chat(req).events(timeout=20)]
    alone.engine.stop()
    svc = make_service(RecordingModel(reply_len=20), budget=4096)  # every prompt in the first step
    try:
        got = run(svc, batched=True)
        assert max(svc.model.batch_sizes) >= 4, "the four turns never shared a step"
        assert {k: got[k] for k, _ in starts} == expected
        assert any(e[2] for e in expected["logprobs"]) and "".join(e[1] for e in expected["grammar"] if e[0] == "content").isdigit()
        assert got["n3"][0] != got["n3"][1]  # forks sample on their own streams, batched together
        assert svc.memory.used() == 0 and not svc.memory.reserved
    finally:
        svc.engine.stop()


def test_n_choices_share_one_prefill_that_goes_through_the_scheduler_in_chunks():
    """The first of n choices prefills the prompt in budget-sized pieces (another turn keeps decoding
    between them), forks it for the others, and all n decode batched; a cancel before the fork ends all."""
    from superlinear.core.choices import start_choices

    model = RecordingModel(reply_len=20)
    svc = make_service(model, budget=8)
    try:
        svc.create("talk")
        long = ChatRequest(messages=(Message("user", "a fairly long question " * 4),), template_kwargs=NO_THINK,
                           sampling=SamplingParams(max_tokens=6, temperature=1.0, seed=2))
        talk = svc.chat(request("hi", "talk", max_tokens=40))
        next(iter(talk.events(timeout=10)))  # decoding
        model.calls.clear()
        texts = [collect(h)[0] for h in start_choices(svc, long, 3)]
        collect(talk)
        pieces = [n for kind, _, n in model.calls if kind == "append" and n > 1]
        assert len(pieces) > 3 and max(pieces) <= 8, pieces  # the shared prompt, budget-sized
        assert sum(pieces) >= len("a fairly long question " * 4)
        assert 3 in model.batch_sizes or 4 in model.batch_sizes  # the forks decoded together
        assert len(set(texts)) > 1 and all(texts)
        assert svc.memory.used() == svc.model.nbytes(svc.session("talk").state) and not svc.memory.reserved

        model.gate = threading.Semaphore(2)  # the prefill stalls after two pieces
        handles = start_choices(svc, long, 3)
        handles[0].cancel()
        model.gate.release(1000)
        for h in handles:
            with pytest.raises(TurnCancelled):
                collect(h)
        assert svc.memory.used() == svc.model.nbytes(svc.session("talk").state) and not svc.memory.reserved
    finally:
        svc.engine.stop()


def test_the_prefix_cache_primes_a_long_system_prompt_through_the_scheduler():
    from superlinear.core.prefix_cache import PrefixCache

    model = RecordingModel(reply_len=6)
    svc = make_service(model, budget=8)
    svc.prefix_cache = svc.memory.cache = PrefixCache(model, 4, min_prefix_tokens=64)
    try:
        system = Message("system", "You answer questions about the sea, tersely and kindly. " * 2)
        req = ChatRequest(messages=(system, Message("user", "tides?")), template_kwargs=NO_THINK,
                          sampling=SamplingParams(max_tokens=6, temperature=0.0))
        first = collect(svc.chat(req))
        pieces = [n for kind, _, n in model.calls if kind == "append" and n > 1]
        assert max(pieces) <= 8 and len(svc.prefix_cache) == 2  # the system prompt alone, and the turn
        assert first[1].usage.cached_tokens == 0
        other = ChatRequest(messages=(system, Message("user", "waves?")), template_kwargs=NO_THINK,
                            sampling=req.sampling)
        shared = len(model.tok.encode(model.tok.render([system], add_generation_prompt=False)))
        assert collect(svc.chat(other))[1].usage.cached_tokens == shared
    finally:
        svc.engine.stop()


def test_a_prompt_that_one_budget_holds_is_not_cut_to_fit_what_others_left():
    from superlinear.core.scheduler import Feed, PendingFeed, plan_step

    def pending(*lengths):
        return [(n, PendingFeed(Feed(None, None, list(range(n))))) for n in lengths]

    # 50 runs whole; 100 would be cut to the 78 left, so it waits; 300 is longer than a budget: it takes them.
    assert plan_step(pending(100, 50), 128).prefill == [(50, 50)]
    assert plan_step(pending(100, 60, 300), 128).prefill == [(60, 60), (300, 68)]
    # Alone in a step (the whole budget left), a prompt is cut to the budget as before.
    assert plan_step(pending(200), 128).prefill == [(200, 128)]
    # Later in a step (part of the full budget left): a short feed waits, a long one takes the rest.
    assert plan_step(pending(40, 300), 30, full=128).prefill == [(300, 30)]
    assert plan_step(pending(20), 30, full=128).prefill == [(20, 20)]


def test_prompts_of_turns_that_start_together_share_one_batched_call_and_answer_as_alone():
    prompts = {"a": "hi", "b": "a longer question here", "c": "mid"}
    alone = make_service(RecordingModel(reply_len=20), budget=4096)
    expected = {}
    for sid, text in prompts.items():
        alone.create(sid)
        expected[sid] = collect(alone.chat(request(text, sid)))[0]
    alone.engine.stop()
    svc = make_service(RecordingModel(reply_len=20), budget=4096)
    try:
        for sid in prompts:
            svc.create(sid)
        handles = all_at_once(svc, [(sid, request(text, sid)) for sid, text in prompts.items()])
        assert {sid: collect(h)[0] for sid, h in handles.items()} == expected
        assert 3 in [len(rows) for rows in svc.model.prompt_batches], "the prompts never shared a forward"
        for sid in prompts:
            s = svc.session(sid)
            assert s.ledger == s.state.ids
    finally:
        svc.engine.stop()


def test_a_row_the_model_rejects_fails_alone_and_the_others_run_in_one_batch():
    from superlinear.core.errors import ContextLengthExceeded
    from superlinear.core.scheduler import Feed, PendingFeed, run_prompts

    model = FakeModel()
    states = [model.new_state(100), model.new_state(3), model.new_state(100)]
    feeds = [PendingFeed(Feed(model, s, list(range(10, 10 + n)))) for s, n in zip(states, (5, 4, 7), strict=True)]
    errors = run_prompts([(feeds[0], 5), (feeds[1], 4), (feeds[2], 3)])
    assert errors[0] is None and errors[2] is None and isinstance(errors[1], ContextLengthExceeded)
    assert model.prompt_batches == [[5, 3]]
    assert [f.done for f in feeds] == [5, 0, 3] and states[1].ids == []
    model.fail_at = 6  # any other error (here the second row's) fails the whole batch
    errors = run_prompts([(feeds[0], 0), (feeds[2], 4)])
    assert all(isinstance(e, RuntimeError) for e in errors)
