"""The stateless prefix cache against the fakes: hits, misses, LRU bounds, the KV budget, atomicity."""

import pytest

from superlinear.core import ChatRequest, Message, SamplingParams, SessionService
from superlinear.core.prefix_cache import PrefixCache
from superlinear.core.testing import FakeModel, FakeSnapshotStore, FakeTokenizer, FixedClock, SequentialIds

GREEDY = SamplingParams(max_tokens=12, temperature=0.0)
NO_THINK = {"enable_thinking": False}


def make(engine, model, cache=None, budget=None):
    return SessionService(
        model=model, tok=model.tok, engine=engine, store=FakeSnapshotStore(), clock=FixedClock(),
        ids=SequentialIds(), stop_rules=lambda request: [], entropy=lambda: 5, default_max_seq_len=2048,
        prefix_cache=cache, kv_budget=budget, spill=FakeSnapshotStore() if budget is not None else None)


def ask(service, messages, kwargs=NO_THINK):
    req = ChatRequest(messages=tuple(messages), sampling=GREEDY, template_kwargs=kwargs)
    events = list(service.chat(req).events(timeout=10))
    return "".join(e.text for e in events if e.kind == "content"), events[-1].usage


def loop(service, turns=4):
    """An agent that resends its whole conversation each turn; returns the replies and usages."""
    messages, out = [Message("system", "You are terse."), Message("user", "q0")], []
    for i in range(turns):
        reply, usage = ask(service, messages)
        out.append((reply, usage))
        messages += [Message("assistant", reply), Message("user", f"q{i + 1}")]
    return out


def test_an_agent_loop_resumes_from_its_last_turn_and_answers_the_same(engine):
    cached_model, plain_model = FakeModel(FakeTokenizer()), FakeModel(FakeTokenizer())
    cache = PrefixCache(cached_model)
    with_cache = loop(make(engine, cached_model, cache))
    without = loop(make(engine, plain_model))
    assert [r for r, _ in with_cache] == [r for r, _ in without]
    assert with_cache[0][1].cached_tokens == 0 and all(u.cached_tokens == 0 for _, u in without)
    for i in range(1, len(with_cache)):
        before, usage = with_cache[i - 1][1], with_cache[i][1]
        assert usage.cached_tokens == before.prompt_tokens + before.completion_tokens - 1  # eos is not fed
        assert usage.prompt_tokens == without[i][1].prompt_tokens
    assert cached_model.appended < plain_model.appended and cache.hits == 3 and cache.misses == 1


def test_other_template_arguments_or_an_edited_history_miss(engine):
    model = FakeModel(FakeTokenizer())
    cache = PrefixCache(model)
    service = make(engine, model, cache)
    first = [Message("user", "hello")]
    reply, _ = ask(service, first)
    _, usage = ask(service, [*first, Message("assistant", reply), Message("user", "more")], {"enable_thinking": True})
    assert usage.cached_tokens == 0
    _, usage = ask(service, [*first, Message("assistant", reply + "!"), Message("user", "more")])
    assert usage.cached_tokens == 0
    _, usage = ask(service, [*first, Message("assistant", reply), Message("user", "more")])
    assert usage.cached_tokens > 0


def test_entries_are_bounded_and_evicted_least_recently_used(engine):
    model = FakeModel(FakeTokenizer())
    cache = PrefixCache(model, max_entries=2)
    service = make(engine, model, cache)
    replies = {q: ask(service, [Message("user", q)])[0] for q in ("a", "b")}
    follow = {q: [Message("user", q), Message("assistant", replies[q]), Message("user", "next")] for q in "ab"}
    assert ask(service, follow["a"])[1].cached_tokens > 0  # "a" is now the most recently used
    ask(service, [Message("user", "c")])
    assert len(cache) == 2
    assert ask(service, follow["b"])[1].cached_tokens == 0  # "b" was the least recently used


def test_the_cache_stays_under_the_kv_budget_and_gives_way_to_sessions(engine):
    model = FakeModel(FakeTokenizer())
    cache = PrefixCache(model)
    service = make(engine, model, cache, budget=8 * 120)
    for q in ("first question", "second question", "third question"):
        ask(service, [Message("user", q)])
        assert service.memory.used() <= 8 * 120
    assert len(cache) >= 1
    service.create("s")
    req = ChatRequest(messages=(Message("user", "x" * 40),), sampling=GREEDY, session_id="s", template_kwargs=NO_THINK)
    list(service.chat(req).events(timeout=10))
    assert service.memory.used() <= 8 * 120 and service.memory.offloads == 0


def test_a_failed_turn_leaves_the_cached_entry_as_it_was(engine):
    model = FakeModel(FakeTokenizer())
    cache = PrefixCache(model)
    service = make(engine, model, cache)
    first = [Message("user", "hello")]
    reply, _ = ask(service, first)
    [entry] = cache._entries
    held = list(entry.state.ids)
    model.fail_at = len(held) + 20
    with pytest.raises(RuntimeError):
        ask(service, [*first, Message("assistant", reply), Message("user", "more " * 10)])
    assert entry.state.ids == held and len(cache) == 1


def test_a_long_system_prompt_is_shared_by_new_conversations(engine):
    model, plain_model = FakeModel(FakeTokenizer()), FakeModel(FakeTokenizer())
    cache = PrefixCache(model, min_prefix_tokens=40)
    service, plain = make(engine, model, cache), make(engine, plain_model)
    system = Message("system", "You answer questions about the sea, tersely and kindly. " * 2)
    for question in ("first", "second"):
        got, usage = ask(service, [system, Message("user", question)])
        want, plain_usage = ask(plain, [system, Message("user", question)])
        assert got == want and usage.prompt_tokens == plain_usage.prompt_tokens
        shared = len(model.tok.encode(model.tok.render([system], add_generation_prompt=False)))
        assert usage.cached_tokens == (0 if question == "first" else shared)
    short = PrefixCache(FakeModel(FakeTokenizer()), min_prefix_tokens=10_000)
    other = make(engine, short.model, short)
    for question in ("first", "second"):
        assert ask(other, [system, Message("user", question)])[1].cached_tokens == 0
