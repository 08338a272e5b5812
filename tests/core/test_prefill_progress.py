"""Prefill progress: a long prompt is appended chunk by chunk with its progress on the session, and the
result is exactly the one-piece prefill's."""

import attrs
import pytest

from superlinear.core import ChatRequest, Message, SamplingParams, SessionService
from superlinear.core.testing import FakeModel, FakeSnapshotStore, FakeTokenizer, FixedClock, SequentialIds

GREEDY = SamplingParams(max_tokens=8, temperature=0.0)


class RecordingModel(FakeModel):
    """Records, at each append, what the session's info says about the prefill under way."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []
        self.service = None

    def append(self, state, token_ids):
        info = self.service.info("s")
        self.seen.append((len(token_ids), info.prefill))
        super().append(state, token_ids)


def make(engine, chunk):
    model = RecordingModel(FakeTokenizer())
    service = SessionService(model=model, tok=model.tok, engine=engine, store=FakeSnapshotStore(),
                             clock=FixedClock(), ids=SequentialIds(), stop_rules=lambda r: [],
                             entropy=lambda: 1, default_max_seq_len=4096, prefill_chunk=chunk)
    model.service = service
    return model, service


def ask(service, text):
    req = ChatRequest(messages=(Message("user", text),), session_id="s", sampling=GREEDY,
                      template_kwargs={"enable_thinking": False})
    events = list(service.chat(req).events(timeout=10))
    return "".join(e.text for e in events if e.kind == "content"), events[-1].usage


@pytest.mark.parametrize("chunk", [7, 64])
def test_a_long_prompt_is_prefilled_in_chunks_with_progress_and_the_same_result(engine, chunk):
    text = "A long document about lighthouses and ferries. " * 6
    model, service = make(engine, chunk)
    service.create("s")
    answer, usage = ask(service, text)
    context = [(n, p) for n, p in model.seen if p is not None]
    total = context[0][1].total
    chunks = -(-total // chunk)
    assert total > chunk and len(context) == chunks
    assert [p.chunks_done for _, p in context] == list(range(chunks))
    assert [p.done for _, p in context] == [i * chunk for i in range(chunks)]
    assert all(p.total == total and p.chunks_total == chunks for _, p in context)
    assert [n for n, _ in context] == [chunk] * (chunks - 1) + [total - (chunks - 1) * chunk]
    assert service.info("s").prefill is None  # cleared once the prefill is over

    _, whole = make(engine, None)
    whole.create("s")
    assert ask(whole, text) == (answer, usage)
    assert list(whole.session("s").state.ids) == list(service.session("s").state.ids)
    assert whole.session("s").ledger == service.session("s").ledger


def test_progress_is_cleared_when_the_prefill_fails(engine):
    model, service = make(engine, 5)
    service.create("s")
    model.fail_at = 30
    with pytest.raises(RuntimeError):
        ask(service, "x " * 40)
    info = service.info("s")
    assert info.prefill is None and info.cached_tokens == 0


def test_seconds_left_follows_the_rate():
    from superlinear.core import PrefillProgress

    p = PrefillProgress(done=100, total=400, chunks_done=1, chunks_total=4, tokens_per_second=50.0)
    assert p.seconds_left == 6.0
    assert attrs.evolve(p, tokens_per_second=0.0).seconds_left is None


def test_a_cancel_stops_a_long_prefill_within_one_chunk_and_nothing_changes(engine):
    import threading

    from superlinear.core import TurnCancelled

    model, service = make(engine, 4)
    service.create("s")
    ask(service, "Hello")
    before = (list(service.session("s").ledger), list(service.session("s").state.ids))
    model.seen.clear()
    model.gate = threading.Semaphore(0)
    req = ChatRequest(messages=(Message("user", "a long document " * 20),), session_id="s", sampling=GREEDY,
                      template_kwargs={"enable_thinking": False})
    handle = service.chat(req)
    model.gate.release()  # the first chunk runs
    while len(model.seen) < 2:  # the second chunk's append has started and waits at the gate
        threading.Event().wait(0.01)
    handle.cancel()
    model.gate.release(100)
    with pytest.raises(TurnCancelled):
        list(handle.events(timeout=10))
    chunks = [p for _, p in model.seen if p is not None]
    assert len(chunks) == 2 < chunks[0].chunks_total  # stopped after the chunk under way, not at the end
    s = service.session("s")
    assert (list(s.ledger), list(s.state.ids)) == before and service.info("s").prefill is None
    assert not s.busy
