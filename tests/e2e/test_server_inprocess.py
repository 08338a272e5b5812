"""The HTTP app in-process over the core's fakes: paths a random-weight model cannot reach on purpose.

Loading and out-of-memory 503s, errors in the middle of a stream, tool calls, repetition detection,
metrics, and the OpenAPI document against the routes. The fuzzer lives in test_server_fuzz.py.
"""

import json
import threading

import falcon.testing
import pytest
from prometheus_client import REGISTRY

from superlinear.core import Engine, SessionService
from superlinear.core.testing import FakeModel, FakeTokenizer, FixedClock, SequentialIds
from superlinear.frontends.http import AppOptions, Limits, ServiceHolder, Services, create_app
from superlinear.frontends.http.compose import stop_rule_source
from superlinear.frontends.http.openapi import openapi_document
from superlinear.plugins import build_plugin_manager
from superlinear.storage import MemorySnapshotStore

NO_THINK = {"enable_thinking": False}
USER = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


def fake_services(model=None, kv_budget=None) -> Services:
    """Services over the fakes, with the built-in stop rules exactly as the server wires them."""
    model = model or FakeModel(FakeTokenizer())
    sessions = SessionService(
        model=model, tok=model.tok, engine=Engine().start(), store=MemorySnapshotStore(), clock=FixedClock(),
        ids=SequentialIds(), stop_rules=stop_rule_source(build_plugin_manager(load_entrypoints=False)),
        entropy=lambda: 7, default_max_seq_len=2048,
        spill=MemorySnapshotStore() if kv_budget is not None else None, kv_budget=kv_budget)
    return Services(sessions=sessions, model_name="fake", default_max_tokens=256)


@pytest.fixture
def model():
    return FakeModel(FakeTokenizer())


@pytest.fixture
def client(model):
    services = fake_services(model)
    app = create_app(ServiceHolder(lambda: services, background=False),
                     AppOptions(load_plugins=False, limits=Limits(max_body_bytes=4096)))
    yield falcon.testing.TestClient(app)
    services.sessions.engine.stop()


def chat(client, **body):
    return client.simulate_post("/v1/chat/completions", json={"messages": USER, **body})


def sse(result) -> list:
    payloads = [e[len("data: "):] for e in result.text.split("\n\n") if e]
    assert payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


def check_error(result, status, code):
    assert result.status_code == status, result.text
    assert set(result.json["error"]) == {"message", "type", "param", "code"}
    assert result.json["error"]["code"] == code


def test_requests_get_503_with_retry_after_while_the_model_loads():
    gate = threading.Event()
    services = []

    def build():
        gate.wait(10)
        services.append(fake_services())
        return services[0]

    holder = ServiceHolder(build)
    client = falcon.testing.TestClient(create_app(holder, AppOptions(load_plugins=False)))
    loading = client.simulate_get("/v1/models")
    check_error(loading, 503, "unavailable")
    assert loading.headers["retry-after"]
    health = client.simulate_get("/health")
    assert health.status_code == 503 and health.json["status"] == "loading"
    gate.set()
    assert holder.wait(10)
    assert client.simulate_get("/health").json["status"] == "ok"
    holder.close()
    check_error(client.simulate_get("/v1/sessions"), 503, "unavailable")


def test_a_failed_load_is_reported_by_health_and_every_request():
    def build():
        raise FileNotFoundError("no weights here")

    client = falcon.testing.TestClient(create_app(ServiceHolder(build, background=False),
                                                  AppOptions(load_plugins=False)))
    assert client.simulate_get("/health").json == {"status": "error", "error": "FileNotFoundError: no weights here"}
    check_error(client.simulate_post("/v1/chat/completions", json={"messages": USER}), 503, "unavailable")


def test_a_turn_larger_than_the_whole_kv_budget_is_400_exceeds_kv_budget_without_retry_after():
    services = fake_services(kv_budget=64)
    client = falcon.testing.TestClient(create_app(ServiceHolder(lambda: services, background=False),
                                                  AppOptions(load_plugins=False)))
    client.simulate_post("/v1/sessions", json={"session_id": "big"})
    result = chat(client, session_id="big", messages=[{"role": "user", "content": "x" * 200}])
    check_error(result, 400, "exceeds_kv_budget")
    assert "retry-after" not in result.headers
    assert client.simulate_get("/v1/sessions/big").json["cached_tokens"] == 0
    services.sessions.engine.stop()


def test_an_error_after_the_stream_started_is_sent_in_band(client, model):
    model.fail_at = 27
    chunks = sse(chat(client, stream=True, max_tokens=60))
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len(chunks) >= 3, "some text went out before the failure"
    assert set(chunks[-1]) == {"error"} and chunks[-1]["error"]["type"] == "server_error"
    check_error(chat(client, max_tokens=60), 500, "internal_error")


def test_tool_calls_are_split_out_of_the_answer(client, model):
    model.script = [f"Let me check. {CALL}"]
    answer = chat(client, tools=[TOOL], chat_template_kwargs=NO_THINK).json
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check. "
    call = choice["message"]["tool_calls"][0]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}


def test_tool_calls_stream_as_delta_tool_calls(client, model):
    model.script = [CALL]
    chunks = sse(chat(client, tools=[TOOL], chat_template_kwargs=NO_THINK, stream=True))
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [d["tool_calls"] for d in deltas if "tool_calls" in d]
    assert len(calls) == 1 and calls[0][0]["index"] == 0 and calls[0][0]["function"]["name"] == "get_weather"
    assert not any("<tool_call>" in (d.get("content") or "") for d in deltas)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]] == ["tool_calls"]


def test_without_tools_or_with_tool_choice_none_the_text_stays_text(client, model):
    model.script = [CALL, CALL]
    plain = chat(client, chat_template_kwargs=NO_THINK).json["choices"][0]
    assert plain["message"]["content"] == CALL and plain["finish_reason"] == "stop"
    none = chat(client, tools=[TOOL], tool_choice="none", chat_template_kwargs=NO_THINK).json["choices"][0]
    assert none["message"]["content"] == CALL and "tool_calls" not in none["message"]


def test_repetition_detection_ends_a_loop_after_fresh_text(client, model):
    model.script = ["The start is varied; " + "loop " * 40]
    options = {"enabled": True, "tail_len": 64, "min_repeats": 4, "max_period": 8}
    choice = chat(client, chat_template_kwargs=NO_THINK, max_tokens=200,
                  repetition_detection=options).json["choices"][0]
    assert choice["finish_reason"] == "repetition"
    assert choice["message"]["content"].startswith("The start is varied; loop")


def test_metrics_count_turns_in_a_registry_of_their_own(client):
    chat(client, max_tokens=5)
    chat(client, max_tokens=5, stream=True)
    client.simulate_post("/v1/sessions", json={"session_id": "m1"})
    text = client.simulate_get("/metrics").text
    assert "spl_time_to_first_token_seconds_count 2.0" in text
    assert 'spl_request_duration_seconds_count{stream="true"} 1.0' in text
    assert "spl_requests_running 0.0" in text and "spl_requests_waiting 0.0" in text
    assert "spl_sessions_resident 1.0" in text and "spl_sessions_offloaded 0.0" in text
    assert "spl_kv_bytes_used" in text and "spl_queue_time_seconds_count 2.0" in text
    assert "spl_engine_queue_seconds_count 2.0" in text
    assert 'spl_http_request_duration_seconds_count{method="POST",route="/v1/sessions",status="201"} 1.0' in text
    assert not [m for m in REGISTRY.collect() if m.name.startswith("spl_")], "the global registry stays clean"


def test_snapshot_bytes_are_counted(client):
    client.simulate_post("/v1/sessions", json={"session_id": "s1"})
    chat(client, session_id="s1", max_tokens=5)
    saved = client.simulate_post("/v1/sessions/s1/save", json={"title": "t", "tags": ["a"]}).json
    client.simulate_post(f"/v1/snapshots/{saved['snapshot_id']}/load", json={"session_id": "s2"})
    text = client.simulate_get("/metrics").text
    assert f"spl_snapshot_written_bytes_total {float(saved['bytes'])}" in text
    assert "spl_snapshot_read_bytes_total" in text


def test_the_openapi_document_describes_exactly_the_routes_and_their_methods(client):
    doc = client.simulate_get("/openapi.json").json
    assert doc == openapi_document(secured=False) and doc["openapi"].startswith("3.1")
    app = client.app
    routes = {}
    for path in doc["paths"]:
        resource, _, _, _ = app._router.find(path.replace("{", "").replace("}", ""))
        routes[path] = resource
    for path, item in doc["paths"].items():
        responders = {m[3:].upper() for m in dir(routes[path]) if m.startswith("on_")}
        documented = {m.upper() for m in item if m != "parameters"}
        assert documented == responders, path
        for op in (item[m.lower()] for m in documented):
            errors = [s for s in op["responses"] if s.startswith(("4", "5"))]
            assert all(op["responses"][s]["content"]["application/json"]["schema"] in (
                {"$ref": "#/components/schemas/ErrorResponse"}, {"$ref": "#/components/schemas/Health"}) for s in errors)


def test_every_route_with_an_id_in_its_path_answers_a_bad_one_400_naming_it(client):
    """The path ids are checked in one place, before any resource runs (and before any body is read)."""
    doc = client.simulate_get("/openapi.json").json
    checked = 0
    for path, item in doc["paths"].items():
        for param in item.get("parameters", ()):
            if param["name"] not in ("session_id", "snapshot_id"):
                continue
            for bad in ("bad id", "-starts-with-dash", "x" * 129, "a\nb"):
                for method in (m for m in item if m != "parameters"):
                    concrete = path.replace("{" + param["name"] + "}", bad.replace("\n", "%0A").replace(" ", "%20"))
                    result = client.simulate_request(method.upper(), concrete, body="not json")
                    assert result.status_code == 400, (method, concrete)
                    assert result.json["error"]["param"] == param["name"], (method, concrete)
                    assert result.json["error"]["type"] == "invalid_request_error"
                    checked += 1
    assert checked >= 4 * 12
