"""Attacks from issue #16 that need only the app in-process (over the core's fakes): each got through once."""

import errno
import json

import attrs
import falcon.testing
import jsonschema
import pytest

from superlinear.core import Engine, InvalidRequest, SessionService
from superlinear.core.testing import FakeModel, FakeTokenizer, FixedClock, SequentialIds
from superlinear.frontends.http import AppOptions, Limits, ServiceHolder, Services, create_app
from superlinear.frontends.http.chat import TurnItems
from superlinear.frontends.http.compose import stop_rule_source
from superlinear.frontends.http.disconnect import ClientWatch
from superlinear.frontends.http.metrics import Metrics
from superlinear.frontends.http.openapi import openapi_document
from superlinear.frontends.http.server import parse_settings
from superlinear.frontends.http.streaming import ClosingBody, SseBody
from superlinear.frontends.http.wire import MAX_STOP_CHARS, parse_chat_request
from superlinear.plugins import build_plugin_manager
from superlinear.storage import (
    MANIFEST_NAME,
    FilesystemSnapshotStore,
    filesystem,
    make_manifest_converter,
    state_file,
)
from superlinear.storage.manifest import decode_record, encode_record
from superlinear.storage.metadata import MAX_TAG, MAX_TAGS, TEXT_LIMITS

from .test_server_inprocess import USER, chat, fake_services


def app_client(services: Services, headers: dict | None = None, **options) -> falcon.testing.TestClient:
    """A test client of the app over `services`; `options` go to AppOptions."""
    app = create_app(ServiceHolder(lambda: services, background=False),
                     AppOptions(load_plugins=False, limits=Limits(max_body_bytes=1 << 20), **options))
    return falcon.testing.TestClient(app, headers=headers)


def disk_services(model, root) -> Services:
    """Services over the fakes with a real filesystem snapshot store at `root`."""
    sessions = SessionService(
        model=model, tok=model.tok, engine=Engine().start(), store=FilesystemSnapshotStore(root), clock=FixedClock(),
        ids=SequentialIds(), stop_rules=stop_rule_source(build_plugin_manager(load_entrypoints=False)),
        entropy=lambda: 7, default_max_seq_len=2048)
    return Services(sessions=sessions, model_name="fake", default_max_tokens=8)


@pytest.fixture
def model():
    return FakeModel(FakeTokenizer())


@pytest.fixture
def served(model):
    """(test client, services) over the fakes."""
    services = fake_services(model)
    yield app_client(services), services
    services.sessions.engine.stop()


@pytest.fixture
def client(served):
    return served[0]


def test_a_stop_string_over_the_length_limit_is_a_400_naming_stop(client):
    result = chat(client, stop=["ok", "x" * (MAX_STOP_CHARS + 1)])
    assert result.status_code == 400
    assert result.json["error"]["param"] == "stop"
    assert str(MAX_STOP_CHARS) in result.json["error"]["message"]
    assert chat(client, stop="x" * MAX_STOP_CHARS, max_tokens=2).status_code == 200


def test_too_many_stop_strings_are_refused():
    with pytest.raises(InvalidRequest) as err:
        parse_chat_request({"messages": USER, "stop": ["a"] * 17}, "m", 4)
    assert err.value.param == "stop"


class _Handle:
    """A turn handle that only records whether it was cancelled."""

    cancelled = False
    queue_seconds = 0.0

    def cancel(self):
        self.cancelled = True


def test_a_streamed_body_closed_before_its_first_chunk_cancels_the_turn():
    timer = Metrics(lambda: None).turn(0.0, True)
    handle = _Handle()
    body = SseBody(TurnItems(handle, ClientWatch(None), timer, False), "chatcmpl-x", "m", False)
    body.close()  # what the server does when the first write fails: the body was never iterated
    assert handle.cancelled


def test_a_body_of_several_choices_closed_before_its_first_chunk_cancels_every_turn():
    from superlinear.frontends.http.choices import choices_stream
    from superlinear.frontends.http.completions import completion_stream
    from superlinear.frontends.http.wire_completions import CompletionCall

    for stream in (lambda items: choices_stream(items, "chatcmpl-x", "m", False),
                   lambda items: completion_stream(items, CompletionCall(None), "cmpl-x", "m")):
        handles = [_Handle(), _Handle()]
        items = [TurnItems(h, ClientWatch(None), Metrics(lambda: None).turn(0.0, True), False) for h in handles]
        ClosingBody(stream(items), items).close()
        assert all(h.cancelled for h in handles)


@pytest.fixture
def guarded(model):
    services = fake_services(model)
    client = app_client(services, headers={"Host": "127.0.0.1:8787"}, allowed_hosts=("chat.example.org",))
    yield client
    services.sessions.engine.stop()


def test_json_routes_refuse_other_content_types_with_415(client):
    for path, body in (("/v1/sessions", b'{"session_id": "ct"}'), ("/v1/chat/completions", b'{"messages": []}')):
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None):
            headers = {"Content-Type": content_type} if content_type else {}
            result = client.simulate_post(path, body=body, headers=headers)
            assert result.status_code == 415, (path, content_type)
            assert result.json["error"]["code"] == "unsupported_media_type"
    empty_form = client.simulate_post("/v1/sessions", body=b"", headers={"Content-Type": "text/plain"})
    assert empty_form.status_code == 415
    assert client.simulate_post("/v1/sessions").status_code == 201  # no body, no type: a plain POST
    ok = client.simulate_post("/v1/sessions", body=b'{"session_id": "ct"}',
                              headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 201
    assert client.simulate_get("/v1/sessions/ct").status_code == 200


def test_foreign_hosts_and_origins_are_refused_unless_allowed(guarded):
    assert guarded.simulate_post("/v1/sessions", json={"session_id": "h1"}).status_code == 201
    for host in ("evil.example", "evil.example:8787", "127.0.0.1.evil.example", "167772161", "0x7f.evil"):
        result = guarded.simulate_post("/v1/sessions/h1/rollback", json={"keep_messages": 0}, headers={"Host": host})
        assert result.status_code == 403 and result.json["error"]["code"] == "host_not_allowed", host
    for origin in ("http://evil.example", "null", "http://evil.example:8787"):
        result = guarded.simulate_post("/v1/sessions", json={}, headers={"Origin": origin})
        assert result.status_code == 403 and result.json["error"]["code"] == "origin_not_allowed", origin
    # Loopback IPv4 literals in their short forms name this machine too (no DNS can rebind a literal).
    for host in ("localhost:8787", "[::1]:8787", "chat.example.org", "app.localhost", "2130706433:8787", "127.1"):
        assert guarded.simulate_get("/v1/sessions", headers={"Host": host}).status_code == 200, host
    for origin in ("http://localhost:3000", "https://chat.example.org"):
        assert guarded.simulate_get("/v1/sessions", headers={"Origin": origin}).status_code == 200, origin
    assert guarded.simulate_get("/health", headers={"Host": "evil.example"}).status_code == 200


def test_the_allow_list_comes_from_the_flag_or_the_environment(monkeypatch):
    monkeypatch.setenv("SPL_ALLOWED_HOSTS", "a.example, B.example")
    assert parse_settings([]).allowed_hosts == ("a.example", "b.example")
    assert parse_settings(["--allow-host", "c.example", "--allow-host", "*"]).allowed_hosts == ("c.example", "*")
    assert parse_settings([]).host_check == ("a.example", "b.example")
    monkeypatch.delenv("SPL_ALLOWED_HOSTS")
    assert parse_settings([]).host_check == ()
    assert parse_settings(["--host", "0.0.0.0"]).host_check is None


def test_load_with_force_onto_a_busy_session_is_409_and_leaves_it_alone(served):
    client, services = served
    assert client.simulate_post("/v1/sessions", json={"session_id": "busy"}).status_code == 201
    first = client.simulate_post("/v1/chat/completions",
                                 json={"messages": USER, "session_id": "busy", "max_tokens": 3})
    assert first.status_code == 200
    snap = client.simulate_post("/v1/sessions/busy/save", json={}).json["snapshot_id"]
    assert client.simulate_post("/v1/sessions/busy/rollback", json={"keep_messages": 0}).status_code == 200
    live = services.sessions.session("busy")
    live.acquire()  # what a running turn holds
    try:
        result = client.simulate_post(f"/v1/snapshots/{snap}/load", json={"session_id": "busy", "force": True})
        assert result.status_code == 409 and result.json["error"]["code"] == "session_busy"
        assert services.sessions.session("busy") is live and live.state is not None
    finally:
        live.release()
    loaded = client.simulate_post(f"/v1/snapshots/{snap}/load", json={"session_id": "busy", "force": True})
    assert loaded.status_code == 200
    assert client.simulate_get("/v1/sessions/busy").json["message_count"] == 2


def test_the_kv_budget_applies_to_stateless_requests_as_to_sessions(model):
    services = fake_services(model, kv_budget=8 * 300)  # the fake model holds 8 bytes per token
    client = app_client(services)
    try:
        assert client.simulate_post("/v1/sessions", json={"session_id": "kv"}).status_code == 201
        big = [{"role": "user", "content": "word " * 400}]
        small = [{"role": "user", "content": "hi"}]
        for session in ({}, {"session_id": "kv"}):
            refused = client.simulate_post("/v1/chat/completions", json={"messages": big, "max_tokens": 4, **session})
            # It could never fit, even alone: refused at once (batching's admission), not after a wait.
            assert refused.status_code == 400, (session, refused.status_code)
            assert refused.json["error"]["code"] == "exceeds_kv_budget"
            fits = client.simulate_post("/v1/chat/completions", json={"messages": small, "max_tokens": 4, **session})
            assert fits.status_code == 200, (session, fits.text)
        # Nothing stays counted after a stateless turn, refused or finished.
        assert services.sessions.memory.used() == services.sessions.model.nbytes(services.sessions.session("kv").state)
    finally:
        services.sessions.engine.stop()


def test_the_kv_budget_covers_several_choices_completions_and_the_prefix_cache(model):
    """n > 1 choices and text completions hold their states under the budget like a stateless turn; the
    prefix cache's states count too, and are given back first."""
    from superlinear.core.prefix_cache import PrefixCache

    services = fake_services(model, kv_budget=8 * 300)  # the fake model holds 8 bytes per token
    sessions = services.sessions
    client = app_client(services)
    try:
        small = [{"role": "user", "content": "hi"}]
        # One prompt of ~130 tokens (the fake tokenizer has one per character) fits; three copies do not.
        mid = [{"role": "user", "content": "word " * 20}]
        refused = client.simulate_post("/v1/chat/completions", json={"messages": mid, "max_tokens": 4, "n": 3})
        # Three copies could never fit, even alone: refused at once (batching's admission), naming n.
        assert refused.status_code == 400 and refused.json["error"]["code"] == "exceeds_kv_budget", refused.text
        assert refused.json["error"]["param"] == "n"
        assert client.simulate_post("/v1/chat/completions",
                                    json={"messages": mid, "max_tokens": 4, "n": 1}).status_code == 200
        fits = client.simulate_post("/v1/chat/completions", json={"messages": small, "max_tokens": 4, "n": 3})
        assert fits.status_code == 200 and len(fits.json["choices"]) == 3, fits.text
        refused = client.simulate_post("/v1/completions", json={"prompt": "word " * 400, "max_tokens": 4})
        assert refused.status_code == 400 and refused.json["error"]["code"] == "exceeds_kv_budget", refused.text
        assert refused.json["error"]["param"] == "prompt"
        assert client.simulate_post("/v1/completions", json={"prompt": "hi", "max_tokens": 4, "n": 2}).status_code == 200
        assert sessions.memory.used() == 0
    finally:
        sessions.engine.stop()

    services = fake_services(model, kv_budget=8 * 300)
    sessions = services.sessions
    sessions.prefix_cache = sessions.memory.cache = PrefixCache(sessions.model, 4)
    client = app_client(services)
    try:
        first = client.simulate_post("/v1/chat/completions", json={"messages": small, "max_tokens": 4})
        assert first.status_code == 200
        assert len(sessions.prefix_cache) == 1 and sessions.memory.used() == sessions.prefix_cache.nbytes() > 0
        # A request that needs nearly the whole budget gets it: the cached state is given back.
        big = [{"role": "user", "content": "w" * 250}]
        assert client.simulate_post("/v1/chat/completions", json={"messages": big, "max_tokens": 4}).status_code == 200
        assert sessions.memory.used() == sessions.prefix_cache.nbytes() <= 8 * 300
    finally:
        sessions.engine.stop()


@pytest.mark.parametrize("body", [
    {"messages": [{"role": "user", "content": "\ud800"}]},
    {"messages": [{"role": "system", "content": "ok"}, {"role": "user", "content": [{"type": "text", "text": "a\udfff"}]}]},
    {"messages": USER, "stop": ["\ud800"]},
    {"messages": USER, "\ud800": 1},
    {"messages": USER, "chat_template_kwargs": {"\udc00": 1}},
    {"messages": USER, "chat_template_kwargs": {"self": 1}},
])
def test_bodies_that_once_raised_500_are_400(client, body):
    raw = json.dumps(body).encode()  # ensure_ascii: the surrogates travel as \\u escapes, as an attacker sends them
    result = client.simulate_post("/v1/chat/completions", body=raw, headers={"Content-Type": "application/json"})
    assert result.status_code == 400, result.text
    assert set(result.json["error"]) == {"message", "type", "param", "code"}


def test_a_full_disk_is_507_on_save_and_patch_and_changes_nothing(model, tmp_path, monkeypatch):
    root = tmp_path / "snapshots"
    services = disk_services(model, root)
    sessions = services.sessions
    client = app_client(services)
    try:
        assert client.simulate_post("/v1/sessions", json={"session_id": "disk"}).status_code == 201
        assert client.simulate_post("/v1/chat/completions",
                                    json={"messages": USER, "session_id": "disk"}).status_code == 200
        old = client.simulate_post("/v1/sessions/disk/save", json={"title": "first"}).json["snapshot_id"]
        before = client.simulate_get("/v1/sessions/disk").json, client.simulate_get("/v1/sessions/disk/history").json

        class FullFile:
            """A new file on a full disk: it opens, and every write fails."""

            def __init__(self, path, mode):
                self._file = open(path, mode)  # noqa: SIM115 - closed by __exit__

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self._file.close()

            def write(self, data):
                raise OSError(errno.ENOSPC, "No space left on device")

            def __getattr__(self, name):
                return getattr(self._file, name)

        with monkeypatch.context() as patched:
            for module in (state_file, filesystem):
                patched.setattr(module, "open", FullFile, raising=False)
            saved = client.simulate_post("/v1/sessions/disk/save", json={"title": "second"})
            renamed = client.simulate_patch(f"/v1/snapshots/{old}", json={"title": "renamed"})
        for result in (saved, renamed):
            assert result.status_code == 507, result.text
            error = result.json["error"]
            assert error["code"] == "insufficient_storage" and str(root) in error["message"]
            assert "bytes" in error["message"]
        listed = client.simulate_get("/v1/snapshots").json["data"]
        assert [(s["snapshot_id"], s["title"]) for s in listed] == [(old, "first")]
        assert [p.name for p in root.iterdir()] == [old], "a temp dir was left behind"
        after = client.simulate_get("/v1/sessions/disk").json, client.simulate_get("/v1/sessions/disk/history").json
        assert after == before and not after[0]["busy"]
        assert client.simulate_post(f"/v1/snapshots/{old}/load", json={"session_id": "back"}).status_code == 200
    finally:
        sessions.engine.stop()


def test_snapshot_metadata_has_size_limits(served):
    client, _ = served
    assert client.simulate_post("/v1/sessions", json={"session_id": "meta"}).status_code == 201
    too_big = [{"title": "t" * (TEXT_LIMITS["title"] + 1)}, {"description": "d" * (TEXT_LIMITS["description"] + 1)},
               {"tags": ["x"] * (MAX_TAGS + 1)}, {"tags": ["x" * (MAX_TAG + 1)]}]
    for body in too_big:
        result = client.simulate_post("/v1/sessions/meta/save", json=body)
        assert result.status_code == 400 and result.json["error"]["param"] == next(iter(body)), body
    fits = {"title": "t" * TEXT_LIMITS["title"], "description": "d" * TEXT_LIMITS["description"], "tags": ["x" * MAX_TAG] * MAX_TAGS}
    saved = client.simulate_post("/v1/sessions/meta/save", json=fits)
    assert saved.status_code == 200
    for body in too_big:
        result = client.simulate_patch(f"/v1/snapshots/{saved.json['snapshot_id']}", json=body)
        assert result.status_code == 400, body


def test_head_health_and_a_lower_case_bearer_scheme(model):
    services = fake_services(model)
    client = app_client(services, api_key="sekret")
    try:
        head = client.simulate_head("/health")
        assert head.status_code == 200 and head.content == b""
        for value in ("Bearer sekret", "bearer sekret", "BEARER  sekret"):
            assert client.simulate_get("/v1/sessions", headers={"Authorization": value}).status_code == 200, value
        for value in ("Bearer wrong", "Basic sekret", "sekret", "Bearer", ""):
            assert client.simulate_get("/v1/sessions", headers={"Authorization": value}).status_code == 401, value
    finally:
        services.sessions.engine.stop()


def test_the_openapi_document_agrees_with_validation(client):
    doc = openapi_document()
    root = {"components": doc["components"]}

    def valid(name, body):
        schema = {**root, "$ref": f"#/components/schemas/{name}"}
        return jsonschema.Draft202012Validator(schema).is_valid(body)

    cases = [({"messages": USER, "stream_options": {"include_usage": True}}, False),
             ({"messages": USER, "stream": False, "stream_options": {"include_usage": True}}, False),
             ({"messages": USER, "stream": True, "stream_options": {"include_usage": True}}, True),
             ({"messages": USER, "stream_options": None}, True)]
    for body, ok in cases:
        assert valid("ChatCompletionRequest", body) is ok, body
        status = client.simulate_post("/v1/chat/completions", json={**body, "max_tokens": 2}).status_code
        assert (status == 200) is ok, (body, status)
    assert client.simulate_post("/v1/sessions", json={"session_id": "km"}).status_code == 201
    for keep, ok in ((-1, False), (0, True), (1, False)):
        assert client.simulate_post("/v1/sessions/km/rollback", json={"keep_messages": keep}).status_code == (
            200 if ok else 400)
    keep_doc = doc["components"]["schemas"]["SessionRollback"]["properties"]["keep_messages"]
    assert keep_doc["minimum"] == 0 and "message_count" in keep_doc["description"]


def test_a_manifest_whose_ledger_was_edited_does_not_load(model, tmp_path):
    root = tmp_path / "snapshots"
    services = disk_services(model, root)
    sessions = services.sessions
    client = app_client(services)
    converter = make_manifest_converter()

    def edit(snapshot_id, ledger):
        path = root / snapshot_id / MANIFEST_NAME
        record = decode_record(converter, path.read_bytes())
        record = attrs.evolve(record, snapshot=attrs.evolve(record.snapshot, ledger=tuple(ledger)))
        path.write_bytes(encode_record(converter, record))

    try:
        assert client.simulate_post("/v1/sessions", json={"session_id": "led"}).status_code == 201
        assert client.simulate_post("/v1/chat/completions",
                                    json={"messages": USER, "session_id": "led"}).status_code == 200
        ledger = list(sessions.session("led").ledger)
        vocab = model.info.vocab_size
        for n, bad in enumerate(([], ledger[:-1], [*ledger[:-1], vocab], [*ledger[:-1], -1])):
            snap = client.simulate_post("/v1/sessions/led/save", json={}).json["snapshot_id"]
            edit(snap, bad)
            result = client.simulate_post(f"/v1/snapshots/{snap}/load", json={"session_id": f"bad{n}"})
            assert result.status_code == 422, (bad[-3:], result.text)
            assert result.json["error"]["code"] == "invalid_snapshot"
            assert client.simulate_get(f"/v1/sessions/bad{n}").status_code == 404
        good = client.simulate_post("/v1/sessions/led/save", json={}).json["snapshot_id"]
        assert client.simulate_post(f"/v1/snapshots/{good}/load", json={"session_id": "good"}).status_code == 200
        assert sessions.memory.used() == 2 * model.nbytes(sessions.session("led").state)
    finally:
        sessions.engine.stop()


def test_max_tokens_is_checked_even_beside_max_completion_tokens(client):
    """Found by schemathesis' negative-data check: a max_tokens of 0 passed when max_completion_tokens was set."""
    result = chat(client, max_tokens=0, max_completion_tokens=3)
    assert result.status_code == 400 and result.json["error"]["param"] == "max_tokens"
    assert chat(client, max_tokens=1, max_completion_tokens=3).status_code == 200
