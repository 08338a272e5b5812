"""What the published ``spl`` client sends and reads, against our HTTP app (in-process, over the fakes).

Each request body and each field read here is one the published client (``apps/cli`` of the published
wheel) sends or reads: ``stream_thinking``, ``extra``, ``stream_options.flush_every_n_tokens``, resize
``strategy`` and ``/resize/next_pow2``, ``snapshots`` beside ``data``, nested manifests, session
``current_pos`` / ``has_prefill`` / ``cache_id``, ``delta.thinking``, usage on the finish chunk, the
model's short id, and 32-hex snapshot ids.
"""

import json
import re

import falcon.testing
import pytest

from superlinear.core import Engine, SessionService
from superlinear.core.ports.clock import RandomIds
from superlinear.core.testing import FakeModel, FakeTokenizer, FixedClock, SequentialIds
from superlinear.frontends.http import AppOptions, Limits, ServiceHolder, Services, create_app
from superlinear.frontends.http.compose import stop_rule_source
from superlinear.frontends.http.wire import model_matches
from superlinear.plugins import build_plugin_manager
from superlinear.storage import MemorySnapshotStore

REPO_ID = "concavity-ai/superlinear-exp-v0.1"
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def model():
    return FakeModel(FakeTokenizer())


@pytest.fixture
def client(model):
    sessions = SessionService(
        model=model, tok=model.tok, engine=Engine().start(), store=MemorySnapshotStore(), clock=FixedClock(),
        ids=SequentialIds(), stop_rules=stop_rule_source(build_plugin_manager(load_entrypoints=False)),
        entropy=lambda: 7, default_max_seq_len=2048)
    services = Services(sessions=sessions, model_name=REPO_ID, default_max_tokens=64)
    app = create_app(ServiceHolder(lambda: services, background=False), AppOptions(load_plugins=False,
                                                                                    limits=Limits()))
    yield falcon.testing.TestClient(app)
    sessions.engine.stop()


def sse(result) -> list[dict]:
    payloads = [e[len("data: "):] for e in result.text.split("\n\n") if e]
    assert payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


def published_chat_body(session_id: str) -> dict:
    """The body of the published client's default `spl chat` turn (thinking on)."""
    return {"stream": True, "session_id": session_id, "messages": USER, "max_completion_tokens": 32768,
            "temperature": 0.1, "top_p": 0.95, "reasoning_budget": 64, "discard_thinking": True,
            "stream_thinking": True, "extra": {"repetition_detection": {"enabled": True}},
            "stream_options": {"flush_every_n_tokens": 8, "flush_every_ms": 50}}


def test_the_published_chat_turn_is_served_with_thinking_and_usage_it_reads(client, model):
    assert client.simulate_post("/v1/sessions", json={"session_id": "chat_1"}).status_code == 201
    model.script = ["let me think</think>the answer<|im_end|>"]
    result = client.simulate_post("/v1/chat/completions", json=published_chat_body("chat_1"))
    assert result.status_code == 200, result.text
    chunks = sse(result)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    thinking = "".join(d.get("thinking") or "" for d in deltas)
    assert thinking and thinking == "".join(d.get("reasoning_content") or "" for d in deltas)
    assert "the answer" in "".join(d.get("content") or "" for d in deltas)
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0] is chunks[-1]
    usage = finish[0]["usage"]
    assert usage["completion_tokens"] > 0 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_without_stream_thinking_there_is_no_thinking_key(client, model):
    model.script = ["hmm</think>ok<|im_end|>"]
    body = {"messages": USER, "stream": True, "reasoning_budget": 16}
    deltas = [c["choices"][0]["delta"] for c in sse(client.simulate_post("/v1/chat/completions", json=body))]
    assert any("reasoning_content" in d for d in deltas) and not any("thinking" in d for d in deltas)


@pytest.mark.parametrize("bad", [{"stream_thinking": "yes"}, {"extra": []},
                                 {"stream_options": {"flush_every_n_tokens": "8"}}])
def test_the_extras_are_still_type_checked(client, bad):
    body = {"messages": USER, "stream": True, **bad}
    assert client.simulate_post("/v1/chat/completions", json=body).status_code == 400


@pytest.mark.parametrize("name, served", [(REPO_ID, True), ("superlinear-exp-v0.1", True), ("", True),
                                          ("other/superlinear-exp-v0.1", False), ("gpt-4o", False)])
def test_the_model_is_named_by_repository_id_or_short_id(client, name, served):
    body = {"messages": USER, "model": name, "max_tokens": 4}
    assert (client.simulate_post("/v1/chat/completions", json=body).status_code == 200) is served


def test_a_model_served_by_short_id_answers_to_its_repository_id():
    assert model_matches("concavity-ai/tiny", "tiny") and model_matches("tiny", "tiny")
    assert not model_matches("tiny-2", "tiny")


def test_session_info_has_the_published_fields(client):
    client.simulate_post("/v1/sessions", json={"session_id": "s1"})
    info = client.simulate_get("/v1/sessions/s1").json
    assert (info["current_pos"], info["has_prefill"], info["cache_id"]) == (0, False, "s1")
    client.simulate_post("/v1/chat/completions", json={"messages": USER, "session_id": "s1", "max_tokens": 4})
    info = client.simulate_get("/v1/sessions/s1").json
    assert info["current_pos"] == info["cached_tokens"] > 0 and info["has_prefill"] is True


def test_resize_takes_a_strategy_and_next_pow2_exists(client):
    client.simulate_post("/v1/sessions", json={"session_id": "s1", "max_seq_len": 1000})
    ok = client.simulate_post("/v1/sessions/s1/resize", json={"max_seq_len": 1500, "strategy": "auto"})
    assert ok.status_code == 200 and ok.json["max_seq_len"] == 1500
    bad = client.simulate_post("/v1/sessions/s1/resize", json={"max_seq_len": 1500, "strategy": "cloud"})
    assert bad.status_code == 400 and bad.json["error"]["param"] == "strategy"
    grown = client.simulate_post("/v1/sessions/s1/resize/next_pow2", json={"strategy": "gpu"})
    assert grown.status_code == 200 and grown.json["max_seq_len"] == 2048 and grown.json["mode"] == "next_pow2"
    # Past the server's limit (2048 here) the next power of two is refused, naming max_seq_len.
    again = client.simulate_post("/v1/sessions/s1/resize/next_pow2")
    assert again.status_code == 400 and again.json["error"]["param"] == "max_seq_len"


def test_snapshots_are_listed_under_snapshots_in_both_shapes(client):
    client.simulate_post("/v1/sessions", json={"session_id": "s1", "max_seq_len": 512})
    client.simulate_post("/v1/chat/completions", json={"messages": USER, "session_id": "s1", "max_tokens": 4})
    saved = client.simulate_post("/v1/sessions/s1/save", json={"title": "t", "description": "[sources]"}).json
    listing = client.simulate_get("/v1/snapshots").json
    assert listing["snapshots"] == listing["data"] and len(listing["data"]) == 1
    item = listing["snapshots"][0]
    assert item["snapshot_id"] == saved["snapshot_id"] and item["title"] == "t"
    assert item["metadata"] == {"title": "t", "description": "[sources]", "tags": []}
    assert item["session"] == {"current_pos": item["tokens"], "max_seq_len": 512} and item["tokens"] > 0
    assert item["model_id"] == REPO_ID
    one = client.simulate_get(f"/v1/snapshots/{saved['snapshot_id']}").json
    assert one["metadata"]["description"] == "[sources]"
    patched = client.simulate_patch(f"/v1/snapshots/{saved['snapshot_id']}", json={"metadata": {"title": "u"}})
    assert patched.status_code == 200 and patched.json["title"] == "u" == patched.json["metadata"]["title"]
    # Snapshot ids from the test's sequential ids are not 32 hex: ids of any valid form still load.
    loaded = client.simulate_post(f"/v1/snapshots/{saved['snapshot_id']}/load", json={"session_id": "s2"})
    assert loaded.status_code == 200, loaded.text


def test_new_ids_are_32_hex_digits():
    ids = RandomIds()
    assert re.fullmatch(r"[0-9a-f]{32}", ids.new_id("")) and ids.new_id("") != ids.new_id("")


def test_a_slow_prefill_keeps_the_stream_alive(client, model, monkeypatch):
    """While the engine is busy before the first token, the stream sends SSE comments (skipped by every
    SSE client) so read timeouts don't fire; a plain JSON answer is unaffected."""
    import threading

    from superlinear.frontends.http import disconnect

    monkeypatch.setattr(disconnect, "IDLE_SECONDS", 0.05)
    for stream in (True, False):
        model.gate = threading.Semaphore(0)
        opener = threading.Timer(0.6, lambda gate=model.gate: [gate.release() for _ in range(10_000)])
        opener.start()
        result = client.simulate_post("/v1/chat/completions", json={"messages": USER, "stream": stream,
                                                                    "max_tokens": 4})
        opener.join()
        assert result.status_code == 200
        if not stream:
            assert result.json["choices"][0]["finish_reason"] in ("stop", "length")
            continue
        events = [e for e in result.text.split("\n\n") if e]
        assert ": keep-alive" in events and events[-1] == "data: [DONE]"
        first_data = next(i for i, e in enumerate(events) if e.startswith("data: "))
        assert all(e == ": keep-alive" or e.startswith("data: ") for e in events)
        chunks = [json.loads(e[6:]) for e in events[first_data:-1] if e.startswith("data: ")]
        assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_a_session_keeps_one_leading_system_message(client):
    """The published client sends its system prompt before every new message: kept once, nothing lost."""
    system = {"role": "system", "content": "Be brief."}
    client.simulate_post("/v1/sessions", json={"session_id": "s"})

    def turn(*messages):
        return client.simulate_post("/v1/chat/completions", json={"session_id": "s", "max_tokens": 4,
                                                                  "messages": list(messages)})

    assert turn(system, {"role": "user", "content": "one"}).status_code == 200
    assert turn(system, {"role": "user", "content": "two"}).status_code == 200
    history = client.simulate_get("/v1/sessions/s/history").json["messages"]
    assert [(m["role"], m["content"]) for m in history if m["role"] != "assistant"] == [
        ("system", "Be brief."), ("user", "one"), ("user", "two")]
    assert len(history) == 5
    changed = turn({"role": "system", "content": "Be verbose."}, {"role": "user", "content": "three"})
    assert changed.status_code == 400 and changed.json["error"]["param"] == "messages"
    assert "rollback" in changed.json["error"]["message"]
    # An OpenAI client's whole history still extends the session.
    assert turn(*history, {"role": "user", "content": "three"}).status_code == 200
    assert len(client.simulate_get("/v1/sessions/s/history").json["messages"]) == 7
