"""Attacks from issue #16 against a real gunicorn spl-server over raw sockets and HTTP: abandoned requests,
cross-site requests, malformed chunked bodies."""

import os
import time

import pytest
import requests

from .test_server_concurrency import raw_post, session


def history(url, sid):
    return requests.get(f"{url}/v1/sessions/{sid}/history", timeout=10).json()["messages"]


@pytest.mark.parametrize("stream", [True, False])
def test_a_request_abandoned_right_after_sending_leaves_the_session_unchanged(server, stream):
    sid = f"abandon-{'stream' if stream else 'plain'}"
    assert requests.post(f"{server}/v1/sessions", json={"session_id": sid}, timeout=10).status_code == 201
    body = {"messages": [{"role": "user", "content": "Hi."}], "session_id": sid, "max_tokens": 2}
    assert requests.post(f"{server}/v1/chat/completions", json=body, timeout=60).status_code == 200
    before = history(server, sid)
    for attempt in range(6):
        sock = raw_post(server, "/v1/chat/completions",
                        {**body, "messages": [{"role": "user", "content": f"Count to one thousand ({attempt})."}],
                         "max_tokens": 200, "stream": stream})
        sock.close()
        deadline = time.monotonic() + 30
        # Wait until the server has taken the request and finished with it (cancelled or not).
        while time.monotonic() < deadline:
            info = session(server, sid)
            if not info["busy"]:
                time.sleep(0.5)
                if not session(server, sid)["busy"]:
                    break
            time.sleep(0.05)
        assert history(server, sid) == before, f"attempt {attempt}: the abandoned turn was committed"


def test_a_cross_site_simple_request_cannot_change_a_session(server):
    """The issue's reproduction: a text/plain POST with a foreign Origin and Host emptied a history."""
    sid = "csrf-target"
    assert requests.post(f"{server}/v1/sessions", json={"session_id": sid}, timeout=10).status_code == 201
    body = {"messages": [{"role": "user", "content": "Hi."}], "session_id": sid, "max_tokens": 2}
    assert requests.post(f"{server}/v1/chat/completions", json=body, timeout=60).status_code == 200
    before = history(server, sid)
    attacks = [
        {"Content-Type": "text/plain", "Origin": "http://evil.example", "Host": "evil.example"},
        {"Content-Type": "text/plain", "Origin": "http://evil.example"},
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/json", "Host": "evil.example"},
    ]
    for headers in attacks:
        result = requests.post(f"{server}/v1/sessions/{sid}/rollback", data=b'{"keep_messages": 0}',
                               headers=headers, timeout=10)
        assert result.status_code in (403, 415), (headers, result.status_code)
    assert history(server, sid) == before


@pytest.mark.parametrize("chunks", [
    b"zz\r\n{}\r\n0\r\n\r\n",        # a size that is not hex
    b"2\r\n{}XX0\r\n\r\n",            # a chunk without its CRLF
    b"2;a\rb\r\n{}\r\n0\r\n\r\n",     # a bare CR in an extension
    b"-2\r\n{}\r\n0\r\n\r\n",         # a negative size
])
def test_malformed_chunked_bodies_are_400(server, chunks):
    from .test_server_slow_clients import connect

    sock = connect(server)
    try:
        sock.sendall(b"POST /v1/sessions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 400"), reply[:300]


def test_offloaded_sessions_live_in_the_servers_cache_dir_and_are_swept_after_kill_9(
        server_env, tmp_path, launch_server):
    import signal

    from .conftest import wait_healthy

    env = {**server_env, "TMPDIR": str(tmp_path / "tmp"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    (tmp_path / "tmp").mkdir()
    spill_root = tmp_path / "cache" / "spl" / "spill"
    log = tmp_path / "server.log"
    with launch_server(env, log, "--no-plugins") as (url, proc):
        first = list(spill_root.iterdir())
        assert len(first) == 1
        worker = int(first[0].name.split("-")[0])
        os.kill(worker, signal.SIGKILL)  # a crash: nothing of the worker runs after this
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{worker}") and time.monotonic() < deadline:
            time.sleep(0.05)
        # gunicorn starts a new worker, which sweeps the dead one's directory when it loads.
        wait_healthy(url, proc, log)
        while [first[0]] == list(spill_root.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.1)
        now = list(spill_root.iterdir())
        assert first[0] not in now and len(now) == 1, now
        proc.terminate()
        proc.wait(timeout=30)
    assert list(spill_root.iterdir()) == [], "a clean shutdown removes its spill directory"
    assert not [p for p in (tmp_path / "tmp").iterdir() if p.name.startswith("spl-spill-")]
