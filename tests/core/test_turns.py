"""Chat turns against the fakes: ledger, caching, atomicity, thinking, stop rules."""

import threading

import pytest

from superlinear.core import (
    ChatRequest,
    ContextLengthExceeded,
    InvalidRequest,
    Message,
    ModelMismatch,
    SamplingParams,
    SessionBusy,
    TurnCancelled,
)
from superlinear.core.ports import CONTINUE, Verdict

GREEDY = SamplingParams(max_tokens=32, temperature=0.0)
NO_THINK = {"enable_thinking": False}


def ask(service, text, sid="s", **kw):
    req = ChatRequest(messages=(Message("user", text),), session_id=sid,
                      sampling=kw.pop("sampling", GREEDY), template_kwargs=kw.pop("tk", NO_THINK), **kw)
    events = list(service.chat(req).events(timeout=10))
    done = events[-1]
    assert done.kind == "done"
    content = "".join(e.text for e in events if e.kind == "content")
    reasoning = "".join(e.text for e in events if e.kind == "reasoning")
    return content, reasoning, done


def snapshot_of(service, sid):
    s = service.session(sid)
    return list(s.ledger), list(s.transcript), s.trailer, list(s.state.ids)


def test_the_second_turn_prefills_only_the_new_tokens(service, model):
    service.create("s")
    _, _, first = ask(service, "My name is Alice.")
    assert first.usage.cached_tokens == 0
    ledger_after_first = len(service.session("s").ledger)
    before = model.appended
    _, _, second = ask(service, "What's my name?")
    assert second.usage.cached_tokens == ledger_after_first
    new_prompt = second.usage.prompt_tokens - second.usage.cached_tokens
    # Prefill is the new prompt plus the generated tokens that were fed (all but the end token).
    assert model.appended - before == new_prompt + second.usage.completion_tokens - 1


def test_the_ledger_always_equals_what_the_model_holds(service):
    service.create("s")
    for text in ["one", "two", "three"]:
        ask(service, text)
        s = service.session("s")
        assert s.ledger == s.state.ids


def test_full_history_and_delta_requests_build_the_same_context(service):
    service.create("a")
    service.create("b")
    reply, _, _ = ask(service, "hello", sid="a")
    ask(service, "hello", sid="b")
    full = (Message("user", "hello"), Message("assistant", reply), Message("user", "again"))
    list(service.chat(ChatRequest(full, GREEDY, "a", NO_THINK)).events(timeout=10))
    ask(service, "again", sid="b")
    assert service.session("a").ledger == service.session("b").ledger
    assert service.history("a") == service.history("b")


def test_a_failing_turn_leaves_the_session_unchanged(service, model):
    service.create("s")
    ask(service, "first")
    before = snapshot_of(service, "s")
    model.fail_at = len(service.session("s").ledger) + 12
    with pytest.raises(RuntimeError, match="injected"):
        ask(service, "second")
    assert snapshot_of(service, "s") == before
    assert not service.session("s").busy


def test_a_cancelled_turn_leaves_the_session_unchanged(service, model):
    service.create("s")
    ask(service, "first")
    before = snapshot_of(service, "s")
    model.script = ["y" * 400]
    model.gate = threading.Semaphore(5)
    handle = service.chat(ChatRequest((Message("user", "x" * 50),), SamplingParams(max_tokens=500, temperature=0),
                                      "s", NO_THINK))
    events = handle.events(timeout=10)
    seen = [next(events) for _ in range(3)]
    assert all(e.kind == "content" for e in seen), seen
    handle.cancel()
    model.gate.release(100)
    with pytest.raises(TurnCancelled):
        list(events)
    assert snapshot_of(service, "s") == before
    assert not service.session("s").busy


def test_a_second_turn_on_a_busy_session_is_refused(service, engine):
    service.create("s")
    release = threading.Event()
    # Hold the engine thread so the first turn stays in flight.
    holder = threading.Thread(target=engine.call, args=(lambda: release.wait(5),))
    holder.start()
    first = service.chat(ChatRequest((Message("user", "hi"),), GREEDY, "s", NO_THINK))
    with pytest.raises(SessionBusy):
        service.chat(ChatRequest((Message("user", "again"),), GREEDY, "s", NO_THINK))
    release.set()
    holder.join()
    assert list(first.events(timeout=10))[-1].kind == "done"
    assert not service.session("s").busy


def test_thinking_is_reported_apart_and_kept_out_of_later_context(service, model):
    service.create("s")
    model.script = ["weighing it</think>Paris"]
    content, reasoning, done = ask(service, "Capital of France?", tk={})
    assert (content, reasoning) == ("Paris", "weighing it")
    assert done.usage.reasoning_tokens == len("weighing it") + 1
    s = service.session("s")
    assert "weighing" not in model.tok.decode(s.state.ids)
    assert s.ledger == s.state.ids
    assert s.transcript[-1].reasoning_content == "weighing it"


def test_the_reasoning_budget_closes_thinking_and_the_answer_follows(service, model):
    service.create("s")
    model.script = ["a" * 40]
    params = SamplingParams(max_tokens=60, temperature=0, reasoning_budget=5)
    content, reasoning, _ = ask(service, "think", tk={}, sampling=params, discard_thinking=False)
    assert reasoning == "aaaaa"
    assert content == "a" * 35
    assert "</think>" in model.tok.decode(service.session("s").state.ids)


def test_a_stop_string_ends_the_turn_and_never_appears(service, model, rules):
    class StopAtEnd:
        def observe(self, token_id, text):
            if text.endswith("END"):
                return Verdict(stop=True, reason="stop", trim=3)
            for k in (2, 1):
                if text.endswith("END"[:k]):
                    return Verdict(hold=k)
            return CONTINUE

    rules.append(lambda params: StopAtEnd())
    service.create("s")
    model.script = ["before EN-ENDafter"]
    content, _, done = ask(service, "go")
    assert content == "before EN-"
    assert done.finish_reason == "stop"


def test_max_tokens_ends_with_length(service):
    service.create("s")
    _, _, done = ask(service, "go", sampling=SamplingParams(max_tokens=3, temperature=0))
    assert done.finish_reason == "length"
    assert done.usage.completion_tokens == 3


def test_a_prompt_longer_than_the_session_is_refused_before_running(service, model):
    service.create("s", max_seq_len=20)
    with pytest.raises(ContextLengthExceeded):
        ask(service, "x" * 50)
    assert service.session("s").ledger == []
    assert model.appended == 0


def test_repeating_the_history_without_new_messages_is_invalid(service):
    service.create("s")
    reply, _, _ = ask(service, "hello")
    again = (Message("user", "hello"), Message("assistant", reply))
    with pytest.raises(InvalidRequest):
        service.chat(ChatRequest(again, GREEDY, "s", NO_THINK))


def test_the_same_seed_gives_the_same_reply(service):
    service.create("a")
    service.create("b")
    params = SamplingParams(max_tokens=10, temperature=1.0, seed=7)
    assert ask(service, "hi", "a", sampling=params)[0] == ask(service, "hi", "b", sampling=params)[0]


def test_a_stateless_request_keeps_nothing(service):
    req = ChatRequest((Message("user", "hi"),), GREEDY, None, NO_THINK)
    events = list(service.chat(req).events(timeout=10))
    assert events[-1].usage.cached_tokens == 0
    assert service.list() == []


def test_a_saved_snapshot_loads_into_an_identical_session(service):
    service.create("s")
    ask(service, "remember this")
    saved = service.save("s", title="t")
    loaded = service.load(saved["snapshot_id"], session_id="copy")
    assert loaded["tokens"] == saved["tokens"] == len(service.session("s").ledger)
    a, _, _ = ask(service, "next", sid="s")
    b, _, _ = ask(service, "next", sid="copy")
    assert a == b
    assert service.session("s").ledger == service.session("copy").ledger


def test_a_snapshot_of_another_model_is_refused_naming_the_field(service, model):
    service.create("s")
    ask(service, "x")
    snap = service.save("s")["snapshot_id"]
    model._info = __import__("attrs").evolve(model.info, fingerprint={"model": "other"})
    with pytest.raises(ModelMismatch, match="model"):
        service.load(snap)


def test_a_fork_is_independent_of_its_origin(service):
    service.create("s")
    ask(service, "shared start")
    service.fork("s", "f")
    assert service.session("f").ledger == service.session("s").ledger
    ask(service, "only in the fork", sid="f")
    assert len(service.session("f").ledger) > len(service.session("s").ledger)
    assert len(service.history("s")) == 2


def test_resize_never_goes_below_the_cached_tokens(service):
    service.create("s")
    ask(service, "hello")
    held = len(service.session("s").ledger)
    with pytest.raises(InvalidRequest, match="below"):
        service.resize("s", held)
    assert service.info("s").max_seq_len == 2048
    assert service.resize("s", held + 10).max_seq_len == held + 10
    assert service.session("s").ledger and service.info("s").cached_tokens == held


def test_a_tool_call_turn_sent_back_by_an_openai_client_is_recognised_as_history(model, engine):
    from superlinear.core import SessionService
    from superlinear.core.testing import FakeSnapshotStore, FixedClock, SequentialIds

    def parse(text):
        head, _, call = text.partition("CALL ")
        return head, ((({"id": "x", "type": "function",
                         "function": {"name": call, "arguments": '{"a": 1}'}}),) if call else ())

    service = SessionService(model=model, tok=model.tok, engine=engine, store=FakeSnapshotStore(),
                             clock=FixedClock(), ids=SequentialIds(), stop_rules=lambda r: [],
                             entropy=lambda: 1, default_max_seq_len=2048, reply_parser=parse)
    service.create("s")
    model.script = ["CALL lookup"]
    tools = {**NO_THINK, "tools": [{"type": "function", "function": {"name": "lookup"}}]}
    first = (Message("user", "look it up"),)
    list(service.chat(ChatRequest(first, GREEDY, "s", tools)).events(timeout=10))
    stored = service.history("s")[-1]
    assert stored.content == "" and stored.tool_calls[0]["function"]["name"] == "lookup"
    held = len(service.session("s").ledger)
    # The client echoes the call with its own id and re-serialised arguments, then the tool's answer.
    echoed = Message("assistant", "", tool_calls=({"id": "call_9", "type": "function",
                                                    "function": {"name": "lookup", "arguments": '{ "a":1 }'}},))
    full = (*first, echoed, Message("tool", "42", tool_call_id="call_9"))
    events = list(service.chat(ChatRequest(full, GREEDY, "s", tools)).events(timeout=10))
    assert events[-1].usage.cached_tokens == held
    assert [m.role for m in service.history("s")] == ["user", "assistant", "tool", "assistant"]


@pytest.mark.parametrize("bad", ["abc\n", "", ".hidden", "a/b", "../x", "x" * 129, 7, None])
def test_malformed_ids_are_refused_naming_the_field(bad):
    from superlinear.core import validate_id

    with pytest.raises(InvalidRequest, match="session_id") as err:
        validate_id(bad, "session_id")
    assert err.value.param == "session_id"
    assert validate_id("a" + "b" * 127, "session_id") == "a" + "b" * 127


def test_a_loaded_snapshot_gets_no_longer_than_the_servers_session_cap(service):
    service.create("s")
    ask(service, "hello")
    snap = service.save("s")["snapshot_id"]
    service.default_max_seq_len = 1000
    loaded = service.load(snap, session_id="capped")
    assert service.info(loaded["session_id"]).max_seq_len == 1000
    with pytest.raises(InvalidRequest, match="limit 1000"):
        service.create("too-long", max_seq_len=1001)
