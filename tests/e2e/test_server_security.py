"""A real spl-server with an API key: every route but /health needs it, and nothing leaks without it.

The module's last test stops the server with SIGTERM while a turn streams: the turn is cancelled cleanly.
"""

import json
import signal
import time

import pytest
import requests
from openai import AuthenticationError, OpenAI

from superlinear.frontends.http.openapi import openapi_document

KEY = "s3cret-key-for-tests"
AUTH = {"Authorization": f"Bearer {KEY}"}
SECRET_TEXT = "my-private-words"


@pytest.fixture(scope="module")
def keyed(server_env, tmp_path_factory, launch_server):
    env = {**server_env, "SPL_API_KEY": KEY}
    log = tmp_path_factory.mktemp("log-keyed") / "server.log"
    with launch_server(env, log, "--no-plugins", "--threads", "4") as (url, proc):
        yield url, proc


@pytest.fixture(scope="module")
def url(keyed):
    return keyed[0]


@pytest.fixture(scope="module")
def private_data(url):
    """A session with a secret in its transcript, and a snapshot of it."""
    requests.post(f"{url}/v1/sessions", json={"session_id": "private"}, headers=AUTH, timeout=10)
    requests.post(f"{url}/v1/chat/completions", headers=AUTH, timeout=60, json={
        "messages": [{"role": "user", "content": SECRET_TEXT}], "session_id": "private", "max_tokens": 2})
    saved = requests.post(f"{url}/v1/sessions/private/save", json={"title": SECRET_TEXT}, headers=AUTH, timeout=30)
    assert saved.status_code == 200, saved.text
    return saved.json()["snapshot_id"]


def every_operation(snapshot_id):
    """(method, path) of every documented route, with ids of existing things filled in."""
    for path, item in openapi_document(secured=True)["paths"].items():
        concrete = path.replace("{session_id}", "private").replace("{snapshot_id}", snapshot_id)
        concrete = concrete.replace("{model_id}", "any")
        for method in item:
            if method != "parameters":
                yield method.upper(), concrete


def test_health_is_open_and_everything_else_needs_the_key(url, private_data):
    assert requests.get(f"{url}/health", timeout=10).status_code == 200
    for method, path in every_operation(private_data):
        if path == "/health":
            continue
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            resp = requests.request(method, f"{url}{path}", json={}, headers=headers, timeout=10)
            assert resp.status_code == 401, (method, path, resp.status_code)
            assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
            assert resp.json()["error"]["code"] == "invalid_api_key"
            assert resp.headers.get("www-authenticate", "").startswith("Bearer")
            assert SECRET_TEXT not in resp.text and "private" not in resp.text
    assert requests.get(f"{url}/no/such/route", timeout=10).status_code == 401


def test_the_key_opens_sessions_and_snapshots(url, private_data):
    history = requests.get(f"{url}/v1/sessions/private/history", headers=AUTH, timeout=10).json()
    assert history["messages"][0]["content"] == SECRET_TEXT
    snap = requests.get(f"{url}/v1/snapshots/{private_data}", headers=AUTH, timeout=10).json()
    assert snap["title"] == SECRET_TEXT


def test_the_sdk_needs_the_right_key(url):
    good = OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
    assert [m.id for m in good.models.list().data]
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()


def test_sigterm_cancels_a_running_turn_cleanly_and_exits(keyed):
    url, proc = keyed
    resp = requests.post(f"{url}/v1/chat/completions", headers=AUTH, stream=True, timeout=60, json={
        "messages": [{"role": "user", "content": "Count to one thousand."}], "max_tokens": 1500,
        "temperature": 0, "stream": True})
    lines = resp.iter_lines()
    assert next(lines).startswith(b"data: ")
    proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    events = [line[len(b"data: "):] for line in lines if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    last = json.loads(events[-2])
    if "error" not in last:
        pytest.skip("the generation ended by itself before the signal arrived")
    assert last["error"]["code"] == "cancelled" and "shutting down" in last["error"]["message"]
    assert proc.wait(timeout=20) == 0
    print(f"stream ended and server exited {time.monotonic() - start:.2f}s after SIGTERM")
