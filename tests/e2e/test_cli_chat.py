"""`spl chat` against a real server, driven through prompt_toolkit pipe input: every slash command,
resuming, locks, Ctrl-C, multi-line paste, history file, plugin commands."""

from __future__ import annotations

import re
import time

import pytest
import requests
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from superlinear.frontends.cli.infra.client import Client
from superlinear.frontends.cli.infra.locks import SessionLock
from superlinear.frontends.cli.main import build_parser
from superlinear.frontends.cli.registry import make_plugin_manager
from superlinear.frontends.cli.repl.chat import ChatRepl
from superlinear.plugins import hookimpl


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    """A private client config folder for this test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("SPL_API_KEY", raising=False)
    return tmp_path / "cfg" / "spl"


def drive(argv, text, extra_plugins=()):
    """Run `spl <argv>` with `text` typed at its REPL; return the exit status."""
    pm = make_plugin_manager(load_entrypoints=False, extra_plugins=extra_plugins)
    args = build_parser(pm).parse_args(argv)
    args.plugin_manager = pm
    with create_pipe_input() as pipe:
        pipe.send_text(text)
        return args.func(args, input=pipe, output=DummyOutput())


def chat(server, capsys, text, *flags, extra_plugins=()):
    code = drive(["chat", "--url", server, "--max-tokens", "6", *flags], text, extra_plugins)
    out = capsys.readouterr()
    return code, out.out, out.err


def session_of(out: str) -> str:
    return re.search(r"session (\S+) - /help", out).group(1)


def info(server, sid):
    return requests.get(f"{server}/v1/sessions/{sid}", timeout=10).json()


def test_the_shared_slash_commands_work(server, cfg, capsys):
    code, out, _ = chat(server, capsys, "/help\nHello there\n/stats\n/think on\nAgain\n/think show\n/think off\n"
                        "/head 2\n/tail 1\n/history 3\n/save my title\n/ls\n/nonsense\n/exit\n")
    sid = session_of(out)
    assert code == 0
    for name in ("/help", "/ls", "/rm", "/save", "/load", "/head", "/tail", "/history", "/stats", "/new", "/exit"):
        assert f"\n  {name} " in out
    assert out.count("ttft=") >= 3 and "last turn: ttft=" in out
    assert "thinking is now expanded" in out and "thinking is now collapsed" in out
    assert "[1] user: Hello there" in out and "[4] " in out
    assert re.search(r"\s+\d+  /head 2\n\s+\d+  /tail 1\n\s+\d+  /history 3\n", out)
    snap = re.search(r"saved snapshot_id=(\S+)", out).group(1)
    assert snap in out.split("saved snapshot_id=")[1] and sid in out.split("/nonsense")[0]
    assert "unknown command /nonsense" in out
    manifest = requests.get(f"{server}/v1/snapshots/{snap}", timeout=10).json()
    assert manifest["title"] == "my title"
    assert info(server, sid)["message_count"] == 4
    assert (cfg / "history" / "chat").read_text().count("Hello there") == 1


def test_new_load_and_rm_switch_sessions(server, cfg, capsys):
    code, out, _ = chat(server, capsys, "Hi\n/save\n/new\n/exit\n")
    first = session_of(out)
    snap = re.search(r"saved snapshot_id=(\S+)", out).group(1)
    second = re.search(r"new session (\S+)", out).group(1)
    assert second != first and info(server, second)["message_count"] == 0
    code, out, _ = chat(server, capsys, f"/load {snap}\n/stats\n/rm\n/rm {first} no-such-id\ny\n/exit\n")
    loaded = re.search(r"into session (\S+)", out).group(1)
    assert "2 messages" in out
    assert f"deleted session {loaded}" in out
    assert f"deleted session {first}" in out and "no session or snapshot named 'no-such-id'" in out
    assert requests.get(f"{server}/v1/sessions/{first}", timeout=10).status_code == 404


def test_chat_resumes_the_last_session_unless_told_otherwise(server, cfg, capsys):
    _, out, _ = chat(server, capsys, "/exit\n")
    first = session_of(out)
    _, out, _ = chat(server, capsys, "/exit\n")
    assert session_of(out) == first
    _, out, _ = chat(server, capsys, "/exit\n", "--new")
    fresh = session_of(out)
    assert fresh != first
    _, out, _ = chat(server, capsys, "/exit\n", "--session", "named-chat")
    assert session_of(out) == "named-chat"
    requests.delete(f"{server}/v1/sessions/{fresh}", timeout=10)
    _, out, _ = chat(server, capsys, "/exit\n")
    assert session_of(out) == "named-chat"


def test_a_second_repl_on_a_session_gets_a_clear_message(server, cfg, capsys):
    _, out, _ = chat(server, capsys, "/exit\n", "--session", "locked-chat")
    with SessionLock("locked-chat"):
        code, out, err = chat(server, capsys, "/exit\n", "--session", "locked-chat")
        assert code == 1 and "session locked-chat is open in another spl REPL" in err
        code, out, _ = chat(server, capsys, "/exit\n")
        assert code == 0 and "is open in another REPL" in out and session_of(out) != "locked-chat"


def test_ctrl_c_during_a_turn_cancels_it_and_keeps_the_session(server, cfg):
    client = Client(server)
    sid = "cancel-me"
    client.post("v1", "sessions", body={"session_id": sid})
    out = []

    def write(text):
        out.append(text)
        if len(out) == 2:
            raise KeyboardInterrupt

    repl = ChatRepl(client, sid, write=write, max_tokens=400, expand_thinking=True)
    assert repl.handle("Tell me a long story") is True
    assert out[-1] == "(cancelled; the session is unchanged)\n"
    deadline = time.monotonic() + 60
    while info(server, sid)["busy"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert info(server, sid)["message_count"] == 0
    assert info(server, sid)["cached_tokens"] == 0
    repl.write = out.append
    repl.max_tokens = 4
    repl.handle("And now a short one")
    assert info(server, sid)["message_count"] == 2


def test_a_multi_line_paste_is_one_message(server, cfg, capsys):
    paste = "\x1b[200~first line\nsecond line\x1b[201~\r"
    code, out, _ = chat(server, capsys, paste + "typed\x1b\rline\n//etc is a path\n/exit\n", "--session", "pasted")
    messages = requests.get(f"{server}/v1/sessions/pasted/history", timeout=10).json()["messages"]
    assert messages[0] == {"role": "user", "content": "first line\nsecond line"}
    assert messages[2] == {"role": "user", "content": "typed\nline"}
    assert messages[4] == {"role": "user", "content": "/etc is a path"}
    assert out.count("ttft=") == 3


class ShoutPlugin:
    @hookimpl
    def superlinear_repl_commands(self, register):
        register("shout", lambda repl, arg: repl.write(arg.upper() + "!\n"), "shout the argument")


def test_a_plugin_slash_command_runs_in_the_chat_repl(server, cfg, capsys):
    code, out, _ = chat(server, capsys, "/help\n/shout hello\n/exit\n", extra_plugins=[ShoutPlugin()])
    assert "/shout" in out and "HELLO!" in out
