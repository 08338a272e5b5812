"""`spl server start|status|stop` as a user runs them, and `spl chat` driven through a pipe."""

import subprocess
import sys

import requests
from prompt_toolkit import PromptSession
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from superlinear.frontends.cli.infra.client import Client
from superlinear.frontends.cli.registry import make_plugin_manager
from superlinear.frontends.cli.repl.base import repl_commands
from superlinear.frontends.cli.repl.chat import ChatRepl, open_session
from superlinear.plugins import collect


def spl(env, *args, timeout=240):
    return subprocess.run([sys.executable, "-m", "superlinear.frontends.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_server_start_status_stop(server_env, tmp_path, free_port):
    env = {**server_env, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    port = str(free_port())
    started = spl(env, "server", "start", "--port", port)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"http://127.0.0.1:{port}/v1" in started.stdout
        assert (tmp_path / "cfg" / "spl" / "server" / "server.pid").exists()
        assert (tmp_path / "cfg" / "spl" / "server" / "server.log").exists()
        status = spl(env, "server", "status")
        assert status.returncode == 0 and "ok" in status.stdout, status.stdout + status.stderr
        again = spl(env, "server", "start", "--port", port)
        assert again.returncode == 1 and "already running" in again.stdout
    finally:
        stopped = spl(env, "server", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert spl(env, "server", "status").returncode == 1
    assert not (tmp_path / "cfg" / "spl" / "server" / "server.pid").exists()


def test_stop_refuses_a_pid_that_is_not_a_server(server_env, tmp_path):
    env = {**server_env, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    folder = tmp_path / "cfg" / "spl" / "server"
    folder.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (folder / "server.pid").write_text(f"{sleeper.pid}\n")
        result = spl(env, "server", "stop")
        assert result.returncode == 1 and "not a running spl-server" in result.stdout
        assert sleeper.poll() is None
    finally:
        sleeper.kill()


def test_chat_repl_streams_answers_and_reuses_the_session(server):
    client = Client(server)
    sid = open_session(client, "repl-test")
    out = []
    pm = make_plugin_manager(load_entrypoints=False)
    commands = repl_commands(collect(pm, "superlinear_repl_commands"), "chat")
    repl = ChatRepl(client, sid, commands=commands, write=out.append, max_tokens=12)
    with create_pipe_input() as pipe:
        pipe.send_text("/help\nHello there\nAnd again\n/stats\n/exit\n")
        code = repl.run(PromptSession(input=pipe, output=DummyOutput()))
    text = "".join(out)
    assert code == 0
    assert "/stats" in text and "/exit" in text
    assert text.count("ttft=") == 3
    info = requests.get(f"{server}/v1/sessions/{sid}", timeout=10).json()
    assert info["message_count"] == 4
    assert repl.stats.cached_tokens > 0


def test_chat_command_reports_an_unreachable_server(server_env, free_port):
    result = spl(server_env, "chat", "--url", f"http://127.0.0.1:{free_port()}", timeout=60)
    assert result.returncode == 1
    assert "cannot reach the server" in result.stderr
