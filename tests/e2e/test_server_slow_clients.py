"""Idle, half-open and slow clients against a real gunicorn spl-server, over raw sockets (issue #16).

Each of these once took the whole server down: gthread gave every connection that had sent a byte a
request thread until its request was complete, so 8 half-sent requests took all 8 threads.
"""

import contextlib
import socket
from urllib.parse import urlsplit

import requests


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return sock


@contextlib.contextmanager
def held(url: str, count: int, payload: bytes):
    """Open `count` connections that each send `payload` and then nothing more; close them after."""
    socks = []
    try:
        for _ in range(count):
            sock = connect(url)
            if payload:
                sock.sendall(payload)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def still_serving(url: str) -> None:
    # A hang here is the bug: the timeouts only keep a broken server from stalling the suite.
    health = requests.get(f"{url}/health", timeout=20)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    chat = requests.post(f"{url}/v1/chat/completions", json=body, timeout=60)
    assert chat.status_code == 200, chat.text


def test_eight_half_sent_requests_do_not_stop_health_or_chat(server):
    with held(server, 8, b"GET /health HTTP/1.1\r\n"):
        still_serving(server)


def test_slow_bodies_and_a_thousand_idle_connections_do_not_stop_the_server(server):
    head = b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    chunked = (b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n")
    with held(server, 16, head), held(server, 16, chunked), held(server, 1000, b""):
        still_serving(server)


def test_a_request_completed_slowly_is_served(server):
    sock = connect(server)
    try:
        for piece in (b"GET /hea", b"lth HTTP/1.1\r\nHost: x\r\n", b"Connection: close\r\n", b"\r\n"):
            sock.sendall(piece)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 200")


def test_the_worker_knows_when_a_request_is_whole():
    from superlinear.frontends.http.worker import request_complete

    head = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n"
    assert not request_complete(b"GET / HTTP/1.1\r\n", 100)
    assert request_complete(b"GET / HTTP/1.1\r\n\r\n", 100)
    assert not request_complete(head + b"ab", 100) and request_complete(head + b"abc", 100)
    # Too large or malformed: the app or the parser answers at once, without waiting for the body.
    assert request_complete(b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 100)
    assert request_complete(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 100)
    chunked = b"POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n"
    assert not request_complete(chunked + b"3\r\nabc\r\n", 100)
    assert request_complete(chunked + b"3\r\nabc\r\n0\r\n\r\n", 100)
    assert not request_complete(chunked + b"3\r\nabc\r\n0\r\nX-T: 1\r\n", 100)
    assert request_complete(chunked + b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", 100)
    assert request_complete(chunked + b"zz\r\nabc\r\n", 100)
    assert request_complete(chunked + b"3\r\nabcXY", 100)


def test_the_worker_answers_pipelined_requests_and_times_out_a_stalled_one(tmp_path):
    """The worker alone under gunicorn, with a two-second read timeout: two pipelined requests are both
    answered, then the half-sent third gets 408 and the connection closes; an idle one is closed too."""
    import subprocess
    import sys
    import time

    from .conftest import free_port

    port = free_port()
    script = tmp_path / "serve.py"
    script.write_text(f"""
from gunicorn.app.base import BaseApplication
from superlinear.frontends.http.worker import worker_class

def app(environ, start_response):
    body = environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]

class Serve(BaseApplication):
    def load_config(self):
        for key, value in {{"bind": "127.0.0.1:{port}", "workers": 1, "threads": 2,
                            "worker_class": worker_class(1024, read_timeout=2.0, max_buffered=1500)}}.items():
            self.cfg.set(key, value)
    def load(self):
        return app

Serve().run()
""")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = connect(url)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        idle = connect(url)
        sock.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /thr")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        assert reply.count(b"HTTP/1.1 200") == 2 and b"/one" in reply and b"/two" in reply
        assert reply.endswith(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        assert idle.recv(10) == b""  # closed without a word: it never asked for anything
        # Unfinished requests may hold 1,500 bytes in all: the second of two 900-byte halves is refused.
        first, second = connect(url), connect(url)
        head = b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
        first.sendall(head + b"a" * 850)
        time.sleep(0.2)
        second.sendall(head + b"b" * 850)
        assert second.recv(200).startswith(b"HTTP/1.1 503")
        first.sendall(b"a" * 150)
        assert first.recv(200).startswith(b"HTTP/1.1 200")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
