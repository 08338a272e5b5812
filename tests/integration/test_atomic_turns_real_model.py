"""Atomic turns with the real model: a failed or cancelled turn leaves the same ledger and the same logits."""

import threading

import pytest
import torch

from superlinear.adapters import HFTokenizer, TorchModel, default_model_dir
from superlinear.core import ChatRequest, Engine, Message, SamplingParams, SessionService, TurnCancelled
from superlinear.core.testing import FakeSnapshotStore, FixedClock, SequentialIds

NO_THINK = {"enable_thinking": False}


class Interfering:
    """A TorchModel whose appends can be held (gate) or made to fail after a number of calls."""

    def __init__(self, model):
        self._model = model
        self.gate: threading.Semaphore | None = None
        self.fail_after: int | None = None

    def __getattr__(self, name):
        return getattr(self._model, name)

    def append(self, state, ids):
        if self.gate is not None:
            self.gate.acquire(timeout=30)
        if self.fail_after is not None:
            self.fail_after -= 1
            if self.fail_after < 0:
                raise RuntimeError("injected failure")
        self._model.append(state, ids)


@pytest.fixture(scope="module")
def model():
    return Interfering(TorchModel.from_dir(default_model_dir()))


@pytest.fixture
def service(model):
    engine = Engine().start()
    yield SessionService(model=model, tok=HFTokenizer.from_dir(default_model_dir()), engine=engine,
                         store=FakeSnapshotStore(), clock=FixedClock(), ids=SequentialIds(),
                         stop_rules=lambda r: [], entropy=lambda: 5, default_max_seq_len=4096)
    model.gate, model.fail_after = None, None
    engine.stop()


def request(text, max_tokens=8):
    return ChatRequest((Message("user", text),), SamplingParams(max_tokens=max_tokens, temperature=0), "s", NO_THINK)


def observed(service):
    s = service.session("s")
    return list(s.ledger), list(s.transcript), s.state.cursor, s.state.logits.clone()


def assert_same(before, after):
    assert before[:3] == after[:3]
    assert torch.equal(before[3], after[3])


def test_a_failing_turn_restores_ledger_and_next_token_distribution(service, model):
    service.create("s")
    list(service.chat(request("Hello there, model.")).events(timeout=60))
    before = observed(service)
    model.fail_after = 5
    with pytest.raises(RuntimeError, match="injected"):
        list(service.chat(request("Another message", max_tokens=50)).events(timeout=60))
    model.fail_after = None
    assert_same(before, observed(service))


def test_a_cancelled_turn_restores_ledger_and_next_token_distribution(service, model):
    service.create("s")
    list(service.chat(request("Hello there, model.")).events(timeout=60))
    before = observed(service)
    model.gate = threading.Semaphore(3)
    handle = service.chat(request("Go on for a while", max_tokens=200))
    events = handle.events(timeout=60)
    # Context, generation prompt and the first answer token went in; the turn is now held mid-answer.
    assert next(events).kind == "content"
    handle.cancel()
    model.gate.release(1000)
    with pytest.raises(TurnCancelled):
        list(events)
    assert_same(before, observed(service))
    after_retry = list(service.chat(request("Go on for a while")).events(timeout=60))
    assert after_retry[-1].usage.cached_tokens == len(before[0])
