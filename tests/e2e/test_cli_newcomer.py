"""A newcomer's first hour (issue 22), through the real `spl` script in a subprocess."""

from __future__ import annotations

import contextlib
import http.server
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest
import requests
import torch


def spl(env, *args, timeout=240, stdin=None):
    return subprocess.run([sys.executable, "-m", "superlinear.frontends.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, input=stdin)


@pytest.fixture
def env(server_env, tmp_path):
    return {**server_env, "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "SUPERLINEAR_SNAPSHOT_DIR": str(tmp_path / "snaps")}


@pytest.fixture
def started(env, free_port):
    """`spl server start` on a free port with two torch threads; stopped afterwards."""
    port = free_port()
    result = spl(env, "server", "start", "--port", str(port), "--torch-threads", "2")
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        yield f"http://127.0.0.1:{port}", result
    finally:
        spl(env, "server", "stop")


def test_the_engine_thread_count_is_a_flag_shown_by_health_and_status(env, started):
    url, _ = started
    assert requests.get(f"{url}/health", timeout=5).json()["torch_threads"] == 2
    status = spl(env, "server", "status")
    assert status.returncode == 0 and "torch_threads=2" in status.stdout, status.stdout
    as_json = spl(env, "server", "status", "--json")
    data = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and data["status"] == "ok" and data["torch_threads"] == 2
    assert data["url"] == url and data["reachable"] is True and isinstance(data["pid"], int)


def test_a_url_without_a_scheme_just_works(env, server):
    result = spl(env, "ls", "--url", server.removeprefix("http://"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr


def test_a_reader_that_leaves_early_gets_no_traceback(env, server):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before spl writes anything: every write fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "superlinear.frontends.cli.main", "ls", "--json", "--url",
                               server], env=env, stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 141


@pytest.mark.parametrize("flags, message", [
    (["--dtype", "fp8"], "invalid choice: 'fp8'"),
    (["--device", "gpu0"], "is not a device"),
    (["--device", "cuda"], "CPU-only build"),
])
def test_bad_device_and_dtype_are_refused_before_any_server_starts(env, tmp_path, free_port, flags, message):
    if "cuda" in flags and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = spl(env, "server", "start", "--port", str(free_port()), *flags)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cfg" / "spl" / "server" / "server.pid").exists()


def _client_url(tmp_path):
    path = tmp_path / "cfg" / "spl" / "client.json"
    return json.loads(path.read_text()).get("url") if path.exists() else None


def test_a_port_held_by_another_program_is_named_and_nothing_is_saved(env, tmp_path, free_port):
    port = free_port()
    holder = subprocess.Popen([sys.executable, "-c", "import socket, time; s = socket.socket(); "
                               f"s.bind(('127.0.0.1', {port})); s.listen(); print('up', flush=True); time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "up"
        result = spl(env, "server", "start", "--port", str(port))
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "another program" in result.stderr, result.stderr
    assert f"pid {holder.pid}" in result.stderr
    assert "ready" not in result.stdout and "last log lines" not in result.stdout
    assert not (tmp_path / "cfg" / "spl" / "server" / "server.pid").exists()
    assert _client_url(tmp_path) is None


def test_a_port_held_by_another_spl_server_is_no_false_ready(env, tmp_path, server):
    port = server.rsplit(":", 1)[1]
    result = spl(env, "server", "start", "--port", port)
    assert result.returncode == 1 and "ready" not in result.stdout, result.stdout
    assert "another spl-server" in result.stderr and server in result.stderr and "spl server connect" in result.stderr
    assert not (tmp_path / "cfg" / "spl" / "server" / "server.pid").exists()
    assert _client_url(tmp_path) is None


def test_spl_server_itself_refuses_a_taken_port_at_once(env, server):
    port = server.rsplit(":", 1)[1]
    result = subprocess.run([sys.executable, "-m", "superlinear.frontends.http.server", "--port", port],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "already in use" in result.stderr, result.stderr[-2000:]


class _SlowApi(http.server.BaseHTTPRequestHandler):
    """A server whose /health answers at once (or after 8 s, when `health_hangs`) and whose API takes 5 s."""

    health_hangs = False

    def do_GET(self):  # noqa: N802 - the http.server hook
        if self.path == "/health" and not self.health_hangs:
            body = json.dumps({"status": "ok", "model": "m", "sessions": 3}).encode()
        else:
            time.sleep(8 if self.path == "/health" else 5)
            body = json.dumps({"object": "list", "data": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up: as it should
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(params=[False, True], ids=["busy", "stuck"])
def slow_server(request):
    handler = type("Handler", (_SlowApi,), {"health_hangs": request.param})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", request.param
    httpd.shutdown()


def test_a_busy_server_is_not_reported_as_down(env, slow_server):
    url, health_hangs = slow_server
    result = spl({**env, "SPL_TIMEOUT": "1"}, "ls", "--url", url)
    assert result.returncode == 1
    assert "is it running" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    if health_hangs:
        assert "stopped answering" in result.stderr, result.stderr
    else:
        assert "up but busy" in result.stderr and "3 sessions" in result.stderr, result.stderr


def test_status_json_of_a_server_that_is_down(env, free_port):
    url = f"http://127.0.0.1:{free_port()}"
    result = spl(env, "server", "status", "--json", "--url", url)
    data = json.loads(result.stdout)
    assert result.returncode == 1 and data["reachable"] is False and data["url"] == url and data["pid"] is None


def test_version_names_the_installed_package(env):
    result = spl(env, "--version")
    assert result.returncode == 0 and result.stdout.strip() == f"spl {importlib.metadata.version('superlinear')}"


def _api_answer(server: str, question: str) -> str:
    body = {"messages": [{"role": "user", "content": question}], "max_tokens": 48,
            "chat_template_kwargs": {"enable_thinking": False}}
    reply = requests.post(f"{server}/v1/chat/completions", json=body, timeout=120).json()
    return reply["choices"][0]["message"]["content"]


@pytest.mark.parametrize("how", ["flag", "stdin"])
def test_one_shot_chat_prints_just_the_answer(env, server, how):
    args = ["chat", "--url", server, "--max-tokens", "48", "--no-thinking"]
    before = _session_ids(server)
    if how == "flag":
        result = spl(env, *args, "-m", "Hello!")
    else:
        result = spl(env, *args, stdin="Hello!\n")
    assert result.returncode == 0, result.stderr
    expected = _api_answer(server, "Hello!")  # the default model decodes greedily: the same answer
    assert expected.strip() and result.stdout.strip() == expected.strip()
    assert "session" not in result.stdout and "\x1b" not in result.stdout
    assert _session_ids(server) == before  # no session made and left behind


def _session_ids(server: str) -> set[str]:
    return {s["session_id"] for s in requests.get(f"{server}/v1/sessions", timeout=10).json()["data"]}


def test_snapshot_info_is_humanised_like_ls(env, server):
    sid = "newcomer-info"
    requests.post(f"{server}/v1/sessions", json={"session_id": sid}, timeout=30).raise_for_status()
    saved = requests.post(f"{server}/v1/sessions/{sid}/save", json={"title": "t"}, timeout=60).json()
    try:
        result = spl(env, "snapshot", "info", saved["snapshot_id"], "--url", server)
    finally:
        requests.delete(f"{server}/v1/snapshots/{saved['snapshot_id']}", timeout=30)
        requests.delete(f"{server}/v1/sessions/{sid}", timeout=30)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "None" not in out and not re.search(r"\b\d{10}(\.\d+)?\b", out), out
    assert "ago)" in out and f"{saved['bytes']:,} bytes" in out and "description  -" in out, out


def test_sessions_survive_a_graceful_stop_and_restart(env, free_port):
    env = {**env, "SPL_KEEP_SESSIONS": "1"}
    port = str(free_port())
    url = f"http://127.0.0.1:{port}"
    assert spl(env, "server", "start", "--port", port).returncode == 0
    try:
        told = spl(env, "chat", "--url", url, "--session", "keep-me", "--no-thinking", "--max-tokens", "8",
                   "-m", "My name is Alice.")
        assert told.returncode == 0, told.stderr
        before = requests.get(f"{url}/v1/sessions/keep-me", timeout=10).json()
        history = requests.get(f"{url}/v1/sessions/keep-me/history", timeout=10).json()["messages"]
        assert before["message_count"] == 2 and before["cached_tokens"] > 0
    finally:
        stopped = spl(env, "server", "stop")
    assert stopped.returncode == 0 and "kept 1 session(s)" in stopped.stdout and "keep-me" in stopped.stdout, \
        stopped.stdout
    again = spl(env, "server", "start", "--port", port)
    try:
        assert again.returncode == 0 and "restored 1 session(s)" in again.stdout, again.stdout
        after = requests.get(f"{url}/v1/sessions/keep-me", timeout=10).json()
        assert (after["message_count"], after["cached_tokens"]) == (before["message_count"], before["cached_tokens"])
        assert requests.get(f"{url}/v1/sessions/keep-me/history", timeout=10).json()["messages"] == history
        # Brought back lazily: listed (offloaded) at once, the state still in its autosave until first use.
        assert after["resident"] is False
        listed = spl(env, "ls", "--url", url)
        assert "keep-me" in listed.stdout and "offloaded" in listed.stdout, listed.stdout
        assert [s["title"] for s in requests.get(f"{url}/v1/snapshots", timeout=10).json()["data"]] == \
            ["keep-me (kept at shutdown)"]
        # the restored state is the real one: the next turn reuses every token of it
        body = {"session_id": "keep-me", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}],
                "chat_template_kwargs": {"enable_thinking": False}}
        usage = requests.post(f"{url}/v1/chat/completions", json=body, timeout=120).json()["usage"]
        assert usage["prompt_tokens_details"]["cached_tokens"] == before["cached_tokens"]
        assert requests.get(f"{url}/v1/snapshots", timeout=10).json()["data"] == []  # the autosave was used up
    finally:
        spl(env, "server", "stop")


def test_a_stop_without_keeping_says_so(env, free_port):
    env = {**env, "SPL_KEEP_SESSIONS": "0"}
    port = str(free_port())
    assert spl(env, "server", "start", "--port", port).returncode == 0
    stopped = spl(env, "server", "stop")
    assert stopped.returncode == 0 and "no sessions were kept" in stopped.stdout, stopped.stdout


def _docs_repl(url, capsys, text):
    """Run `spl docs shelf` in this process (as main would), typing `text`; return what it printed."""
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from superlinear.frontends.cli.main import build_parser
    from superlinear.frontends.cli.registry import make_plugin_manager

    pm = make_plugin_manager(load_entrypoints=False)
    args = build_parser(pm).parse_args(["docs", "shelf", "--url", url, "--max-tokens", "4"])
    args.plugin_manager = pm
    with create_pipe_input() as pipe:
        pipe.send_text(text)
        assert args.func(args, input=pipe, output=DummyOutput()) == 0
    return capsys.readouterr().out


def test_a_docs_workspace_reloads_its_last_saved_snapshot_by_itself(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("SPL_API_KEY", raising=False)
    doc = tmp_path / "ferry.md"
    doc.write_text("The ferry Brenna Maud leaves for Skeld at noon from pier nine.\n")

    def docs(text):
        return _docs_repl(server, capsys, text)

    docs(f"/add {doc}\n/save shelf notes\n/exit\n")  # saved by hand: no base snapshot
    ws = json.loads((tmp_path / "cfg" / "spl" / "workspaces" / "shelf.json").read_text())
    assert ws["base_snapshot_id"] is None and ws["last_snapshot_id"]
    requests.delete(f"{server}/v1/sessions/{ws['session_id']}", timeout=10)  # as after a crash
    out = docs("/sources\n/exit\n")
    assert f"is gone; loading the last saved snapshot {ws['last_snapshot_id']}" in out, out
    assert "forgotten" not in out and "1 sources" in out and "ferry.md" in out
    requests.delete(f"{server}/v1/snapshots/{ws['last_snapshot_id']}", timeout=10)


def test_a_docs_workspace_comes_back_whole_after_a_server_restart(env, free_port, tmp_path, monkeypatch, capsys):
    env = {**env, "SPL_KEEP_SESSIONS": "1"}
    monkeypatch.setenv("XDG_CONFIG_HOME", env["XDG_CONFIG_HOME"])
    monkeypatch.delenv("SPL_API_KEY", raising=False)
    port = str(free_port())
    url = f"http://127.0.0.1:{port}"
    doc = tmp_path / "ferry.md"
    doc.write_text("The ferry Brenna Maud leaves for Skeld at noon from pier nine.\n")
    assert spl(env, "server", "start", "--port", port).returncode == 0
    try:
        _docs_repl(url, capsys, f"/add {doc}\n/exit\n")  # no snapshot saved: only the session holds it
        ws = json.loads((tmp_path / "cfg" / "spl" / "workspaces" / "shelf.json").read_text())
        assert ws["last_snapshot_id"] is None and ws["base_snapshot_id"] is None and len(ws["sources"]) == 1
        held = requests.get(f"{url}/v1/sessions/{ws['session_id']}", timeout=10).json()["cached_tokens"]
    finally:
        stopped = spl(env, "server", "stop")
    assert ws["session_id"] in stopped.stdout, stopped.stdout
    assert spl(env, "server", "start", "--port", port).returncode == 0
    try:
        out = _docs_repl(url, capsys, "/sources\n/exit\n")
        assert "forgotten" not in out and "is gone" not in out, out
        assert f"session {ws['session_id']}, 1 sources" in out and "ferry.md" in out, out
        info = requests.get(f"{url}/v1/sessions/{ws['session_id']}", timeout=10).json()
        history = requests.get(f"{url}/v1/sessions/{ws['session_id']}/history", timeout=10).json()["messages"]
        assert info["cached_tokens"] == held and "Brenna Maud" in history[0]["content"]
    finally:
        spl(env, "server", "stop")


def test_a_long_prefill_reports_progress_in_the_session_the_metrics_and_spl_session_info(env, tmp_path,
                                                                                        launch_server):
    with launch_server(env, tmp_path / "server.log", "--no-plugins", "--chunk-size", "128") as (url, _):
        requests.post(f"{url}/v1/sessions", json={"session_id": "long"}, timeout=30).raise_for_status()
        text = " ".join(f"The lighthouse keeper number {i} fed {i % 40} cats at dawn." for i in range(900))
        body = {"session_id": "long", "max_tokens": 1, "messages": [{"role": "user", "content": text}],
                "chat_template_kwargs": {"enable_thinking": False}}
        turn = threading.Thread(target=requests.post, args=(f"{url}/v1/chat/completions",),
                                kwargs={"json": body, "timeout": 600})
        turn.start()
        seen, metrics, info = [], [], None
        while turn.is_alive():
            prefill = requests.get(f"{url}/v1/sessions/long", timeout=30).json()["prefill"]
            if prefill and prefill["done"] > 0:
                seen.append(prefill)
                metrics.append(requests.get(f"{url}/metrics", timeout=30).text)
                if info is None:
                    info = spl(env, "session", "info", "long", "--url", url)
            time.sleep(0.05)
        turn.join()
        after = requests.get(f"{url}/v1/sessions/long", timeout=30).json()
    assert seen, "no progress was seen during the prefill"
    total = seen[0]["total"]
    assert all(p["total"] == total and p["chunks_total"] == -(-total // 128) for p in seen)
    assert all(0 < p["done"] < total and p["done"] == 128 * p["chunks_done"] for p in seen)
    assert all(p["tokens_per_second"] > 0 and p["seconds_left"] is not None for p in seen)
    assert [p["done"] for p in seen] == sorted(p["done"] for p in seen)
    assert any(f"spl_prefill_tokens_total {float(total)}" in m for m in metrics)
    assert after["prefill"] is None and after["cached_tokens"] >= total
    assert info.returncode == 0 and re.search(rf"prefill\s+[\d,]+ / {total:,} tokens \(\d+%\), chunk \d+/",
                                              info.stdout), info.stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_add_shows_prefill_progress_in_tokens_in_a_real_terminal(env, tmp_path, launch_server):
    doc = tmp_path / "long.md"
    doc.write_text("\n\n".join(f"The lighthouse keeper number {i} fed {i % 40} cats at dawn." for i in range(900)))
    sock = f"spl-nc-{os.getpid()}"

    def tmux(*args):
        return subprocess.run(["tmux", "-L", sock, *args], env=env, capture_output=True, text=True,
                              timeout=30).stdout

    with launch_server(env, tmp_path / "server.log", "--no-plugins", "--chunk-size", "128") as (url, _):
        tmux("new-session", "-d", "-s", "t", "-x", "150", "-y", "30",
             f"{sys.executable} -m superlinear.frontends.cli docs shelf --url {url}")
        try:
            deadline = time.monotonic() + 60
            while "/help for commands" not in tmux("capture-pane", "-p", "-t", "t"):
                assert time.monotonic() < deadline, tmux("capture-pane", "-p", "-t", "t")
                time.sleep(0.2)
            tmux("send-keys", "-t", "t", f"/add {doc}", "Enter")
            screens = []
            deadline = time.monotonic() + 120
            while "added files=1" not in (screens[-1] if screens else ""):
                assert time.monotonic() < deadline, screens[-1]
                screens.append(tmux("capture-pane", "-p", "-t", "t"))
                time.sleep(0.1)
        finally:
            tmux("kill-server")
    bars = [s for s in screens if re.search(r"long\.md:\s+\d+%.*tok.*chunk \d+/\d+", s)]
    assert bars, screens[-1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_spl_server_itself_refuses_cuda_on_a_cpu_torch_before_binding(env, free_port):
    result = subprocess.run([sys.executable, "-m", "superlinear.frontends.http.server", "--port", str(free_port()),
                             "--device", "cuda"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no CUDA device" in result.stderr and "Traceback" not in result.stderr
