"""Concurrent turns on the real default model share batched steps and answer exactly as they do alone."""

import threading

import pytest

from superlinear.adapters import HFTokenizer, TorchModel, default_model_dir
from superlinear.core import ChatRequest, Engine, Message, SamplingParams, SessionService
from superlinear.core.testing import FakeSnapshotStore, FixedClock, SequentialIds

NO_THINK = {"enable_thinking": False}
PROMPTS = {"a": ("Hi.", 40), "b": ("Tell me about the sea and the ships on it, please.", 12),
           "c": ("Count to ten.", 25), "d": ("What is 15 x 17?", 6)}


class CountingModel:
    """The real model, counting the rows of each batched decode call."""

    def __init__(self, model):
        self._model = model
        self.batch_sizes: list[int] = []
        self.prompt_batches: list[list[int]] = []

    def __getattr__(self, name):
        return getattr(self._model, name)

    def decode_batch(self, states, token_ids):
        self.batch_sizes.append(len(states))
        self._model.decode_batch(states, token_ids)

    def append_batch(self, states, runs):
        self.prompt_batches.append([len(run) for run in runs])
        self._model.append_batch(states, runs)


@pytest.fixture(scope="module")
def model():
    return CountingModel(TorchModel.from_dir(default_model_dir()))


def service(model, budget=64):
    return SessionService(model=model, tok=HFTokenizer.from_dir(default_model_dir()),
                          engine=Engine(prefill_budget=budget).start(), store=FakeSnapshotStore(),
                          clock=FixedClock(), ids=SequentialIds(), stop_rules=lambda r: [], entropy=lambda: 5,
                          default_max_seq_len=4096)


def request(sid, text, n):
    return ChatRequest((Message("user", text),), SamplingParams(max_tokens=n, temperature=0), sid, NO_THINK)


def answer(handle):
    return "".join(e.text for e in handle.events(timeout=120) if e.kind == "content")


def answers_alone(model) -> dict:
    """Each prompt's greedy answer and final ledger, every turn run on its own (no other turn in the step)."""
    alone = service(model)
    expected = {}
    for sid, (text, n) in PROMPTS.items():
        alone.create(sid)
        expected[sid] = (answer(alone.chat(request(sid, text, n))), list(alone.session(sid).ledger))
    alone.engine.stop()
    return expected


def test_greedy_answers_of_a_batched_run_equal_the_answers_alone(model):
    expected = answers_alone(model)
    model.batch_sizes.clear()

    svc = service(model)
    for sid in PROMPTS:
        svc.create(sid)
    first = svc.chat(request("a", *PROMPTS["a"]))
    events = first.events(timeout=120)
    head = [next(events) for _ in range(3)]  # "a" is decoding before the others arrive, at other lengths
    handles = {}
    threads = [threading.Thread(target=lambda s=sid: handles.__setitem__(s, svc.chat(request(s, *PROMPTS[s]))))
               for sid in ("b", "c", "d")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    got = {sid: answer(h) for sid, h in handles.items()}
    got["a"] = "".join(e.text for e in head + list(events) if e.kind == "content")
    for sid in PROMPTS:
        assert (got[sid], list(svc.session(sid).ledger)) == expected[sid], sid
        s = svc.session(sid)
        assert s.state.cursor == len(s.ledger)
    assert max(model.batch_sizes) >= 2, "the turns never shared a step"
    svc.engine.stop()


def hold(engine) -> threading.Event:
    """Queue a call that keeps the engine busy until the returned event is set."""
    release, running, queued = threading.Event(), threading.Event(), engine._inbox.qsize()
    threading.Thread(target=engine.call, args=(lambda: (running.set(), release.wait(60)),), daemon=True).start()
    while engine._inbox.qsize() <= queued and not running.is_set():
        threading.Event().wait(0.005)
    return release


def start_together(svc, requests):
    """Start the turns so that all of them join the engine's next step: the engine is held while they
    prepare (on the engine thread) and again while they are submitted."""
    first, handles = hold(svc.engine), {}
    threads = [threading.Thread(target=lambda s=sid, r=req: handles.__setitem__(s, svc.chat(r)))
               for sid, req in requests.items()]
    for t in threads:
        t.start()
    while svc.engine._inbox.qsize() < len(requests):
        threading.Event().wait(0.005)
    second = hold(svc.engine)
    first.set()
    for t in threads:
        t.join(60)
    second.set()
    return handles


def test_prompts_prefilled_together_in_one_forward_answer_as_alone(model):
    """Four turns of different prompt lengths start in one step: their prompts (and then their generation
    prompts) share batched forwards of rows of different lengths; every answer and ledger is as alone."""
    expected = answers_alone(model)
    model.prompt_batches.clear()

    svc = service(model, budget=4096)
    for sid in PROMPTS:
        svc.create(sid)
    handles = start_together(svc, {sid: request(sid, *PROMPTS[sid]) for sid in PROMPTS})
    got = {sid: answer(h) for sid, h in handles.items()}
    for sid in PROMPTS:
        assert (got[sid], list(svc.session(sid).ledger)) == expected[sid], sid
        s = svc.session(sid)
        assert s.state.cursor == len(s.ledger)
    shared = [rows for rows in model.prompt_batches if len(rows) >= 2]
    assert any(len(set(rows)) > 1 and min(rows) > 1 for rows in shared), model.prompt_batches
    svc.engine.stop()
