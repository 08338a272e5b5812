"""Every answer is built as a response body class: each one sent validates against the schema /openapi.json
gives it (the app over the core's fakes). Chat and text completions and every stream chunk, over the shapes
a random request rarely reaches (tool calls, logprobs, n choices, echo, usage on or off, thinking deltas);
every session and snapshot route, over the shapes schemathesis rarely reaches (a prefill under way, a
snapshot another model saved, the published client's nested fields); error answers of every kind (400, 404,
405, 409, 413, 415, 500, an error event in a started stream) against the schema each route gives that status;
/health in every state (loading, failed, stopping, sharded, a rank down) and a live server's, keys included, with
its fallbacks (a rank row the class does not declare, ranks that cannot be read, a status that cannot be
built); and a planted schema bug fails the answers."""

import copy
import json
import threading

import attrs
import falcon.testing
import jsonschema
import pytest
import requests

from superlinear.core import Engine, SessionService
from superlinear.core.testing import FakeModel, FakeTokenizer, FixedClock, SequentialIds
from superlinear.frontends.http import AppOptions, Limits, ServiceHolder, Services, create_app
from superlinear.frontends.http.contract import UNSET, to_json
from superlinear.frontends.http.openapi import openapi_document
from superlinear.frontends.http.responses import ChatCompletionChunk, Delta
from superlinear.storage import MemorySnapshotStore

from .test_openai_inprocess import client, model, services  # noqa: F401 - fixtures
from .test_server_inprocess import CALL, NO_THINK, TOOL, USER

DOCUMENT = openapi_document()


def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}",
                                            "components": DOCUMENT["components"]})


def _events(text: str) -> list[dict]:
    data = [e[len("data: "):] for e in text.split("\n\n") if e.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


CHAT = [dict(temperature=1, seed=3, max_tokens=8), dict(temperature=1, seed=3, max_tokens=8, stream_thinking=True),
        dict(temperature=1, seed=3, max_tokens=6, logprobs=True, top_logprobs=3, chat_template_kwargs=NO_THINK),
        dict(n=3, temperature=1, seed=2, max_tokens=5, logprobs=True, top_logprobs=2),
        dict(tools=[TOOL], chat_template_kwargs=NO_THINK, script=True)]
TEXT = [dict(temperature=1, seed=3, max_tokens=6), dict(temperature=1, seed=3, max_tokens=6, echo=True, n=2),
        dict(temperature=1, seed=3, max_tokens=6, logprobs=2)]
STREAMS = [{}, {"stream": True}, {"stream": True, "stream_options": {"include_usage": True}}]


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("args", CHAT)
def test_chat_answers_and_chunks_match_their_schemas(client, model, args, stream):  # noqa: F811
    args = dict(args)
    if args.pop("script", False):
        model.script = [f"Let me check. {CALL}"]
    result = client.simulate_post("/v1/chat/completions", json={"messages": USER, **args, **stream})
    assert result.status_code == 200, result.text
    if not stream:
        _validator("ChatCompletion").validate(result.json)
        return
    chunks = _events(result.text)
    for chunk in chunks:
        _validator("ChatCompletionChunk").validate(chunk)
    with_usage = "stream_options" in stream
    # include_usage: usage on every chunk (null but the last); else on the finish chunk of a single choice.
    last = chunks[-1] if args.get("n", 1) == 1 else None
    assert all(("usage" in c) == (with_usage or c is last) for c in chunks)
    assert all(set(choice) == {"index", "delta", "finish_reason", "logprobs"} for c in chunks for choice in c["choices"])


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("args", TEXT)
def test_text_answers_and_chunks_match_their_schemas(client, args, stream):  # noqa: F811
    result = client.simulate_post("/v1/completions", json={"prompt": "hello", **args, **stream})
    assert result.status_code == 200, result.text
    if not stream:
        _validator("Completion").validate(result.json)
        return
    for chunk in _events(result.text):
        _validator("CompletionChunk").validate(chunk)
        assert ("usage" in chunk) == ("stream_options" in stream)


def test_an_optional_field_is_left_out_at_its_default_and_sent_when_null_is_a_value():
    def chunk(usage):
        return to_json(ChatCompletionChunk(id="c", object="chat.completion.chunk", created=0, model="m",
                                           choices=[], usage=usage))

    assert "usage" not in chunk(UNSET)
    assert chunk(None)["usage"] is None
    assert to_json(Delta(content="x")) == {"content": "x"}
    assert to_json(Delta(role="assistant", content="")) == {"role": "assistant", "content": ""}


def test_a_session_history_with_tool_calls_comes_back_as_sent_and_matches_its_schema(client):  # noqa: F811
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    sent = [{"role": "user", "content": "weather?", "name": "ann"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
            {"role": "user", "content": "thanks"}]
    assert client.simulate_post("/v1/sessions", json={"session_id": "h"}).status_code == 201
    turn = client.simulate_post("/v1/chat/completions", json={"messages": sent, "session_id": "h", "max_tokens": 3,
                                                               "tools": [TOOL], "chat_template_kwargs": NO_THINK})
    assert turn.status_code == 200, turn.text
    history = client.simulate_get("/v1/sessions/h/history").json
    _validator("SessionHistory").validate(history)
    assert history["session_id"] == "h" and history["messages"][:4] == sent
    assert history["messages"][4]["role"] == "assistant"


# Every session and snapshot route with a JSON answer; the import needs a real model and is checked against its
# schema in test_snapshot_import.py.
SESSION_ROUTES = {(path, method) for path, item in DOCUMENT["paths"].items()
                  if path.startswith(("/v1/sessions", "/v1/snapshots")) for method in item if method != "parameters"}
IMPORT = ("/v1/snapshots/import", "post")


class Answers:
    """Call a route and validate its answer against the schema the document gives that route and status."""

    def __init__(self, app):
        self.app = app
        self.checked = set()

    def __call__(self, method, route, body=None, status=200, **ids):
        result = self.app.simulate_request(method.upper(), route.format(**ids), json=body)
        assert result.status_code == status, result.text
        schema = DOCUMENT["paths"][route][method]["responses"][str(status)]["content"]["application/json"]["schema"]
        jsonschema.Draft202012Validator({**schema, "components": DOCUMENT["components"]}).validate(result.json)
        self.checked.add((route, method))
        return result.json


class OtherModel(FakeModel):
    """A fake model of another fingerprint: its snapshots are listed as not compatible with `fake`."""

    @property
    def info(self):
        return attrs.evolve(super().info, fingerprint={"model": "other"})


def _save_with_another_model(store):
    other_model = OtherModel(FakeTokenizer())
    other = SessionService(model=other_model, tok=other_model.tok, engine=Engine().start(), store=store,
                           clock=FixedClock(), ids=SequentialIds(n=100), stop_rules=lambda r: [], entropy=lambda: 1,
                           default_max_seq_len=512)
    try:
        other.create("o")
        return other.save("o", title="another model's")["snapshot_id"]
    finally:
        other.engine.stop()


def test_every_session_and_snapshot_answer_matches_the_schema_of_its_route(client, services):  # noqa: F811
    call = Answers(client)
    s, one, snap, item = "/v1/sessions", "/v1/sessions/{session_id}", "/v1/snapshots", "/v1/snapshots/{snapshot_id}"
    assert call("post", s, {"session_id": "a"}, 201)["prefill"] is None
    call("post", s, {"max_seq_len": 100}, 201)
    turn = client.simulate_post("/v1/chat/completions", json={"messages": USER, "session_id": "a", "max_tokens": 3})
    assert turn.status_code == 200, turn.text
    info = call("get", one, session_id="a")
    assert info["cache_position"] == info["current_pos"] == info["cached_tokens"] > 0 and info["cache_id"] == "a"
    call("get", one + "/history", session_id="a")
    call("post", one + "/resize", {"max_seq_len": 300}, session_id="a")
    grown = call("post", one + "/resize/next_pow2", {}, session_id="a")
    assert (grown["mode"], grown["old_max_seq_len"], grown["max_seq_len"]) == ("next_pow2", 300, 512)
    call("post", one + "/fork", {"session_id": "f"}, 201, session_id="a")
    call("post", one + "/rollback", {"keep_messages": 1}, session_id="f")
    mine = call("post", one + "/save", {"title": "t", "tags": ["x"]}, session_id="a")["snapshot_id"]
    other = _save_with_another_model(services.sessions.store)
    listed = {i["snapshot_id"]: i for i in call("get", snap)["data"]}
    assert (listed[mine]["compatible"], listed[mine]["model_id"]) == (True, "fake")
    assert (listed[other]["compatible"], listed[other]["model_id"]) == (False, None)
    got = call("get", item, snapshot_id=mine)
    assert got["metadata"] == {"title": "t", "description": None, "tags": ["x"]} and got["model_id"] is None
    assert call("patch", item, {"title": None}, snapshot_id=mine)["metadata"]["title"] is None
    call("post", item + "/load", {"session_id": "l"}, snapshot_id=mine)
    call("get", s)
    call("delete", item, snapshot_id=other)
    call("delete", one, session_id="f")
    call("get", one, status=404, session_id="f")
    assert call.checked | {IMPORT} == SESSION_ROUTES


class WatchedModel(FakeModel):
    """Asks for the session's info over HTTP at each append: what a client polling a long prefill sees."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.client = None
        self.seen = []

    def append(self, state, token_ids):
        if self.client is not None:
            self.seen.append(self.client.simulate_get("/v1/sessions/s"))
        super().append(state, token_ids)


def test_a_session_polled_during_a_long_prefill_matches_its_schema():
    watched = WatchedModel(FakeTokenizer())
    sessions = SessionService(model=watched, tok=watched.tok, engine=Engine().start(), store=MemorySnapshotStore(),
                              clock=FixedClock(), ids=SequentialIds(), stop_rules=lambda r: [], entropy=lambda: 1,
                              default_max_seq_len=4096, prefill_chunk=16)
    held = Services(sessions=sessions, model_name="fake", default_max_tokens=4)
    watched.client = falcon.testing.TestClient(create_app(ServiceHolder(lambda: held, background=False),
                                                        AppOptions(load_plugins=False, limits=Limits())))
    try:
        sessions.create("s")
        text = "A long document about lighthouses and ferries. " * 4
        turn = watched.client.simulate_post("/v1/chat/completions", json={
            "session_id": "s", "messages": [{"role": "user", "content": text}], "max_tokens": 2})
        assert turn.status_code == 200, turn.text
    finally:
        sessions.engine.stop()
    progress = [r.json["prefill"] for r in watched.seen if r.json["prefill"] is not None]
    for r in watched.seen:
        _validator("SessionInfo").validate(r.json)
    assert len(progress) > 2 and progress[0]["seconds_left"] is None
    assert all(isinstance(p["seconds_left"], float) for p in progress[1:])


# Error answers: every one is an ErrorResponse, the schema the document gives each route's 4xx and 5xx answers.


def _documented(route: str, method: str, status: int, document: dict = DOCUMENT) -> jsonschema.Draft202012Validator:
    """The validator of the answer `document` gives `method route` for `status`."""
    schema = document["paths"][route][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


class Broken(FakeModel):
    """Fails on its `fail_at`th sampled token, as a bug in a model would."""

    fail_at = 3

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sampled = 0

    def sample(self, *args, **kwargs):
        self.sampled += 1
        if self.sampled >= self.fail_at:
            raise RuntimeError("a planted model bug")
        return super().sample(*args, **kwargs)


def _app(fake):
    sessions = SessionService(model=fake, tok=fake.tok, engine=Engine().start(), store=MemorySnapshotStore(),
                              clock=FixedClock(), ids=SequentialIds(), stop_rules=lambda r: [], entropy=lambda: 1,
                              default_max_seq_len=512)
    held = Services(sessions=sessions, model_name="fake", default_max_tokens=8, torch_threads=2)
    app = create_app(ServiceHolder(lambda: held, background=False), AppOptions(load_plugins=False,
                                                                               limits=Limits(max_body_bytes=4096)))
    return falcon.testing.TestClient(app), sessions


ERRORS = [  # (method, route, concrete path, request, status, code)
    ("post", "/v1/chat/completions", None, {"json": {"messages": USER, "max_tokens": 0}}, 400, None),
    ("post", "/v1/chat/completions", None, {"body": "{", "content_type": "application/json"}, 400, "invalid_json"),
    ("post", "/v1/chat/completions", None, {"json": {"messages": USER, "model": "other"}}, 400, None),
    ("post", "/v1/chat/completions", None, {"json": {"messages": USER, "session_id": "nope"}}, 404, "not_found"),
    ("post", "/v1/sessions", None, {"body": "x", "content_type": "text/plain"}, 415, "unsupported_media_type"),
    ("post", "/v1/sessions", None, {"json": {"session_id": "x" * 5000}}, 413, "request_too_large"),
    ("post", "/v1/sessions", None, {"json": {"session_id": "taken"}}, 409, "conflict"),
    ("get", "/v1/sessions/{session_id}", "/v1/sessions/nope", {}, 404, "not_found"),
    ("get", "/v1/sessions/{session_id}", "/v1/sessions/-bad", {}, 400, None),
    ("post", "/v1/sessions/{session_id}/rollback", "/v1/sessions/taken/rollback", {"json": {}}, 400, None),
    ("get", "/v1/snapshots/{snapshot_id}", "/v1/snapshots/deadbeef", {}, 404, "not_found"),
    ("post", "/v1/snapshots/{snapshot_id}/load", "/v1/snapshots/deadbeef/load", {"json": {}}, 404, "not_found"),
    ("get", "/v1/models/{model_id}", "/v1/models/other", {}, 404, "model_not_found"),
    ("post", "/tokenize", None, {"json": {}}, 400, None),
    ("get", "/v1/models", None, {"method": "DELETE"}, 405, "method_not_allowed"),
    ("post", "/v1/chat/completions", None, {"json": {"messages": USER, "max_tokens": 8}}, 500, "internal_error"),
]


@pytest.mark.parametrize("method,route,path,request_,status,code", ERRORS,
                         ids=[f"{e[0]} {e[2] or e[1]} {e[4]}" for e in ERRORS])
def test_error_answers_of_every_kind_match_the_schema_of_their_route(method, route, path, request_, status, code):
    app, sessions = _app(Broken(FakeTokenizer()))
    try:
        sessions.create("taken")
        request_ = dict(request_)
        result = app.simulate_request(request_.pop("method", method.upper()), path or route, **request_)
    finally:
        sessions.engine.stop()
    assert result.status_code == status, result.text
    _documented(route, method, status).validate(result.json)
    assert result.json["error"]["code"] == code


def test_an_error_in_a_started_stream_is_an_error_event_the_stream_schema_names():
    app, sessions = _app(Broken(FakeTokenizer()))
    try:
        result = app.simulate_post("/v1/chat/completions", json={"messages": USER, "max_tokens": 8, "stream": True})
    finally:
        sessions.engine.stop()
    assert result.status_code == 200
    *chunks, error = _events(result.text)
    assert chunks and error == {"error": {"message": "internal server error", "type": "server_error", "param": None,
                                          "code": "internal_error"}}
    schema = DOCUMENT["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    event = schema["schema"]["properties"]["data"]["anyOf"][0]["contentSchema"]
    for data in (*chunks, error):
        jsonschema.Draft202012Validator({**event, "components": DOCUMENT["components"]}).validate(data)


def test_every_error_status_of_every_route_is_documented_as_the_error_response():
    for item in DOCUMENT["paths"].values():
        for op in (op for m, op in item.items() if m != "parameters"):
            errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
            assert "500" in errors or op["summary"].startswith("Liveness")
            bodies = {r["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1] for r in errors.values()}
            assert bodies == ({"Health"} if op["summary"].startswith("Liveness") else {"ErrorResponse"})


# /health: the Health body class, closed; its rows of a sharded model are RankStatus.

HEALTH = DOCUMENT["components"]["schemas"]["Health"]
RANK = DOCUMENT["components"]["schemas"]["RankStatus"]


def check_health(result_status: int, health: dict) -> None:
    """Validate a /health answer against the schema the document gives its status, and its keys against the
    class: every field sent is declared, and a rank row sends every field RankStatus declares."""
    _documented("/health", "get", result_status).validate(health)
    assert set(health) <= set(HEALTH["properties"]) and set(HEALTH["required"]) <= set(health)
    for row in health.get("ranks", ()):
        assert set(row) == set(RANK["properties"]), row


class Sharded(FakeModel):
    """A fake model over ranks, reporting rows as the tensor-parallel port does (or `rows` when given)."""

    def __init__(self, *args, rows=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows = rows if rows is not None else [
            {"rank": 0, "alive": True, "pid": 10, "device": "cpu", "weight_bytes": 100},
            {"rank": 1, "alive": True, "pid": 11, "device": "cpu", "weight_bytes": 90}]

    def ranks_status(self):
        if isinstance(self.rows, Exception):
            raise self.rows
        return [dict(row) for row in self.rows]


def _health(fake):
    app, sessions = _app(fake)
    try:
        return app.simulate_get("/health")
    finally:
        sessions.engine.stop()


def test_health_of_a_single_process_and_of_a_sharded_model_matches_its_schema():
    single = _health(FakeModel(FakeTokenizer()))
    assert single.status_code == 200
    check_health(200, single.json)
    assert single.json == {"status": "ok", "model": "fake", "sessions": 0, "torch_threads": 2}
    sharded = _health(Sharded(FakeTokenizer()))
    check_health(200, sharded.json)
    assert [row["pid"] for row in sharded.json["ranks"]] == [10, 11]
    dead = Sharded(FakeTokenizer(), rows=[{"rank": 0, "alive": True, "pid": 10, "device": "cpu"},
                                          {"rank": 1, "alive": False, "pid": None, "device": "cpu"}])
    stopped = _health(dead)
    assert stopped.status_code == 503 and stopped.json["error"] == "rank(s) [1] of the sharded model stopped"
    check_health(503, {**stopped.json, "ranks": []})  # rows without weight_bytes: only the rows differ
    _documented("/health", "get", 503).validate(stopped.json)


def test_health_while_loading_after_a_failed_load_and_when_stopping_matches_its_schema():
    def failed():
        raise FileNotFoundError("no weights here")

    gate = threading.Event()
    loading = ServiceHolder(lambda: gate.wait() and None, background=True)
    stopping = ServiceHolder(lambda: None, background=False)
    stopping.close()
    try:
        for holder, status in ((loading, "loading"), (ServiceHolder(failed, background=False), "error"),
                               (stopping, "stopping")):
            result = falcon.testing.TestClient(create_app(holder, AppOptions(load_plugins=False))).simulate_get(
                "/health")
            assert result.status_code == 503 and result.json["status"] == status
            check_health(503, result.json)
    finally:
        gate.set()


def test_a_rank_row_the_class_does_not_declare_is_logged_and_health_still_answers(caplog):
    rows = [{"rank": 0, "alive": True, "pid": 10, "device": "cpu", "weight_bytes": 1, "temperature_c": 60}]
    result = _health(Sharded(FakeTokenizer(), rows=rows))
    assert result.status_code == 200 and "ranks" not in result.json
    check_health(200, result.json)
    assert "does not fit RankStatus" in caplog.text and "temperature_c" in caplog.text


def test_ranks_that_cannot_be_read_make_health_an_error_not_a_500(caplog):
    result = _health(Sharded(FakeTokenizer(), rows=ConnectionError("the link is down")))
    assert result.status_code == 503 and result.headers["retry-after"]
    assert result.json["error"] == "the ranks' status could not be read: the link is down"
    check_health(503, result.json)


def test_a_status_that_cannot_be_built_answers_503_with_what_can_be_built(monkeypatch, caplog):
    def broken(self):
        raise KeyError("a planted bug in the status")

    monkeypatch.setattr(ServiceHolder, "status", broken)
    result = _health(FakeModel(FakeTokenizer()))
    assert result.status_code == 503 and result.json["status"] == "error"
    check_health(503, result.json)
    assert "building the status failed" in caplog.text


def _planted(path: tuple[str, ...], change) -> dict:
    """A copy of the document with one planted bug at `path` under the component schemas."""
    document = copy.deepcopy(DOCUMENT)
    node = document["components"]["schemas"]
    for key in path[:-1]:
        node = node[key]
    change(node, path[-1])
    return document


def _drop(node, key):
    node.pop(key)


def _retype(kind):
    return lambda node, key: node.update({key: {"type": kind}})


@pytest.mark.parametrize("path,change", [
    (("ErrorResponse", "properties", "error", "properties", "code"), _drop),
    (("ErrorResponse", "properties", "error", "properties", "param"), _retype("null")),
    (("Health", "properties", "torch_threads"), _drop),
    (("RankStatus", "properties", "pid"), _retype("string")),
], ids=["error without code", "error param always null", "health without torch_threads", "rank pid a string"])
def test_a_planted_schema_bug_fails_the_answers(path, change):
    if path[0] == "ErrorResponse":
        route, status, answer = "/v1/sessions/{session_id}", 404, _answer(FakeModel(FakeTokenizer()), "/v1/sessions/x")
    else:
        route, status, answer = "/health", 200, _answer(Sharded(FakeTokenizer()), "/health")
    _documented(route, "get", status).validate(answer)
    with pytest.raises(jsonschema.ValidationError):
        _documented(route, "get", status, _planted(path, change)).validate(answer)


def _answer(fake, path: str) -> dict:
    app, sessions = _app(fake)
    try:
        return app.simulate_get(path).json
    finally:
        sessions.engine.stop()


def test_a_live_single_process_health_matches_its_schema(server):
    result = requests.get(f"{server}/health", timeout=10)
    assert result.status_code == 200
    check_health(200, result.json())
    assert set(result.json()) == {"status", "model", "sessions", "torch_threads"}
