"""Stress: many threads run random session operations against the real default model on CPU.

Every operation must end within a timeout in success or a documented error, the engine must stay free,
and afterwards every session's ledger must be exactly what its state holds (a fresh prefill of the ledger
gives the same next-token logits).
"""

import random
import threading
import time
import traceback

import pytest
import torch

from superlinear.adapters import HFTokenizer, TorchModel, default_model_dir
from superlinear.core import ChatRequest, Engine, Message, SamplingParams, SessionService, TurnCancelled
from superlinear.core.errors import SuperlinearError
from superlinear.core.testing import FixedClock, SequentialIds
from superlinear.storage.memory import MemorySnapshotStore

THREADS, OPS, OP_TIMEOUT = 8, 40, 60.0
IDS = [f"s{i}" for i in range(8)]
WORDS = "the sea ship bird count one two three tell me about why how blue green".split()


class CountingModel(TorchModel):
    """The real model, recording the rows of each batched prompt forward."""

    def append_batch(self, states, runs):
        self.prompt_batches.append([len(run) for run in runs])
        super().append_batch(states, runs)


@pytest.fixture(scope="module")
def model():
    m = CountingModel.from_dir(default_model_dir())
    m.prompt_batches = []
    return m


def make_service(model):
    # A budget for about four sessions of a few hundred tokens: idle sessions go to disk and come back.
    return SessionService(model=model, tok=HFTokenizer.from_dir(default_model_dir()),
                          engine=Engine(prefill_budget=64).start(), store=MemorySnapshotStore(),
                          clock=FixedClock(), ids=SequentialIds(), stop_rules=lambda r: [], entropy=lambda: 3,
                          default_max_seq_len=2048, spill=MemorySnapshotStore(),
                          kv_budget=model.bytes_for(256) * 4, admission_timeout=5.0)


class Worker:
    def __init__(self, svc, seed, snapshots):
        self.svc, self.rng, self.snapshots = svc, random.Random(seed), snapshots
        self.outcomes: list[tuple[str, str, float]] = []

    def sid(self):
        return self.rng.choice(IDS)

    def live(self):
        """An id that exists now, most of the time (sessions come and go under other threads)."""
        ids = [i.session_id for i in self.svc.list()]
        return self.rng.choice(ids) if ids else self.sid()

    def chat(self, cancel=False, stateless=False):
        text = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randrange(3, 40)))
        req = ChatRequest((Message("user", text),), SamplingParams(max_tokens=self.rng.randrange(1, 12),
                          temperature=self.rng.choice([0.0, 0.8])), None if stateless else self.sid(),
                          {"enable_thinking": False})
        handle = self.svc.chat(req)
        events = handle.events(timeout=OP_TIMEOUT)
        if cancel:
            handle.cancel()
        for _ in events:
            pass

    def step(self):
        svc, op = self.svc, self.rng.choice(
            ["create", "create", "fork", "delete", "chat", "chat", "chat", "chat", "cancel", "cancel", "save",
             "load", "resize", "rollback", "list", "stateless"])
        calls = {
            "create": lambda: svc.create(self.sid(), self.rng.choice([None, 512, 2048])),
            "fork": lambda: svc.fork(self.live(), self.rng.choice([None, None, self.sid()])),
            "delete": lambda: svc.delete(self.sid()),
            "chat": lambda: self.chat(),
            "cancel": lambda: self.chat(cancel=True),
            "stateless": lambda: self.chat(stateless=True),
            "save": lambda: self.snapshots.append(svc.save(self.sid())["snapshot_id"]),
            "load": lambda: svc.load(self.rng.choice(self.snapshots), self.sid(), self.rng.random() < 0.5)
            if self.snapshots else svc.list(),
            "resize": lambda: svc.resize(self.sid(), self.rng.choice([300, 1024, 2048])),
            "rollback": lambda: svc.rollback(self.sid(), self.rng.randrange(0, 3)),
            "list": lambda: svc.list(),
        }
        start = time.monotonic()
        try:
            calls[op]()
            outcome = "ok"
        except (SuperlinearError, TurnCancelled) as exc:
            outcome = type(exc).__name__
        except BaseException as exc:  # noqa: BLE001 - an undocumented error fails the test below
            outcome = f"UNEXPECTED {type(exc).__name__}: {exc}\n{''.join(traceback.format_exception(exc))}"
        self.outcomes.append((op, outcome, time.monotonic() - start))

    def run(self):
        for _ in range(OPS):
            self.step()


def test_random_concurrent_operations_end_cleanly_and_every_ledger_matches_its_state(model):
    svc = make_service(model)
    snapshots: list[str] = []
    for sid in IDS[:5]:
        svc.create(sid)
    workers = [Worker(svc, seed, snapshots) for seed in range(THREADS)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(OPS * OP_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "an operation hung"
    outcomes = [o for w in workers for o in w.outcomes]
    unexpected = [o for o in outcomes if o[1].startswith("UNEXPECTED")]
    assert not unexpected, unexpected
    for op, result in (("chat", "ok"), ("cancel", "TurnCancelled"), ("save", "ok"), ("delete", "ok"),
                       ("create", "ok"), ("fork", "ok"), ("rollback", "ok"), ("stateless", "ok")):
        assert any(o[:2] == (op, result) for o in outcomes), f"no {op} ended {result}: {outcomes}"
    assert len({op for op, result, _ in outcomes if result == "ok"}) >= 8, outcomes
    assert svc.memory.offloads > 0, "the KV budget never made a session go to disk"
    assert max(len(rows) for rows in model.prompt_batches) >= 2, "no two prompts ever shared a forward"
    assert all(seconds < OP_TIMEOUT for _, _, seconds in outcomes)
    assert svc.engine.call(lambda: "free", timeout=10) == "free"
    for info in svc.list():
        assert not info.busy
        svc.exclusive(info.session_id, lambda s: check_ledger(model, s))
    svc.engine.stop()


def check_ledger(model, s):
    assert s.in_sync(model) and s.state.cursor == len(s.ledger)
    if not s.ledger:
        assert s.state.logits is None
        return
    fresh = model.new_state(len(s.ledger) + 1)
    model.append(fresh, s.ledger)
    torch.testing.assert_close(s.state.logits, fresh.logits, rtol=1e-3, atol=1e-3)
