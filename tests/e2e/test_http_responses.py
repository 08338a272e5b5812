"""Every answer is built as a response body class: each one sent validates against the schema /openapi.json
gives it (the app over the core's fakes). Chat and text completions and every stream chunk, over the shapes
a random request rarely reaches (tool calls, logprobs, n choices, echo, usage on or off, thinking deltas);
every session and snapshot route, over the shapes schemathesis rarely reaches (a prefill under way, a
snapshot another model saved, the published client's nested fields)."""

import json

import attrs
import falcon.testing
import jsonschema
import pytest

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
