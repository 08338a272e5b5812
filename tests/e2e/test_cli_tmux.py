"""`spl chat` in a real terminal (tmux): typing, completion, streaming, Ctrl-C cancelling a turn, /exit."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid

import pytest
import requests

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    """One detached tmux session on a private server socket."""

    def __init__(self, command: str, env: dict):
        self.socket = f"spl-test-{uuid.uuid4().hex[:8]}"
        self.env = env
        self._tmux("new-session", "-d", "-s", "t", "-x", "120", "-y", "40", command)
        self._tmux("set-option", "-t", "t", "remain-on-exit", "on")

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(["tmux", "-L", self.socket, *args], env=self.env, capture_output=True,
                                text=True, timeout=30)
        return result.stdout

    def send(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t", "-S", "-200")

    def wait_for(self, text: str, timeout: float = 60.0, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if screen.count(text) >= count:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} did not appear; the screen was:\n{self.screen()}")

    def dead(self) -> bool:
        return self._tmux("display-message", "-p", "-t", "t", "#{pane_dead}").strip() == "1"

    def kill(self) -> None:
        self._tmux("kill-server")


def _spl_chat(server, env, max_tokens: int) -> Tmux:
    return Tmux(f"{sys.executable} -m superlinear.frontends.cli chat --url {server} --session tmux-chat "
                f"--max-tokens {max_tokens}", env)


def _exit(term: Tmux) -> None:
    term.send("/exit", "Enter")
    deadline = time.monotonic() + 20
    while not term.dead() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert term.dead(), term.screen()


def _cancel_a_turn(term: Tmux, attempts: int = 3) -> int:
    """Start a long turn and press Ctrl-C while it runs; return how many turns finished first anyway.

    A turn may end by itself before Ctrl-C lands (then the REPL says the session keeps it), so try a few
    times, with less delay each time.
    """
    finished = 0
    late = "(interrupted after the turn had finished; the session keeps it)"
    for attempt in range(attempts):
        screen = term.screen()
        before, late_before = screen.count("ttft="), screen.count(late)
        # The default model works a multiplication in a thinking trace of about 200 tokens.
        term.send("What is 9876 x 5432?", "Enter")
        # Long enough for the request to be under way (prefill or streaming), short enough to beat its end.
        time.sleep(0.7 / (attempt + 1))
        term.send("C-c")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            screen = term.screen()
            if "(cancelled; the session is unchanged)" in screen:
                return finished
            if screen.count("ttft=") > before or screen.count(late) > late_before:
                break
            time.sleep(0.2)
        finished += 1
    raise AssertionError(f"no turn could be cancelled:\n{term.screen()}")


def _session(server) -> dict:
    deadline = time.monotonic() + 30
    while (info := requests.get(f"{server}/v1/sessions/tmux-chat", timeout=10).json())["busy"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return info


def test_spl_chat_in_a_real_terminal(server, server_env, tmp_path):
    env = {**server_env, "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    term = _spl_chat(server, env, max_tokens=16)
    try:
        term.wait_for("spl(chat:tmux-chat)>")
        term.send("/sta")
        term.wait_for("show the last turn's metrics")
        term.send("Tab")
        term.wait_for("spl(chat:tmux-chat)> /stats")
        term.send("Enter")
        term.wait_for("last turn: no turn yet")
        term.send("Hello there", "Enter")
        term.wait_for("ttft=")
        _exit(term)
    finally:
        term.kill()
    assert "Hello there" in (tmp_path / "cfg" / "spl" / "history" / "chat").read_text()

    term = _spl_chat(server, env, max_tokens=1500)
    try:
        term.wait_for("spl(chat:tmux-chat)>")
        finished = _cancel_a_turn(term)
        term.wait_for("spl(chat:tmux-chat)>", count=2 + finished)
        _exit(term)
    finally:
        term.kill()
    assert _session(server)["message_count"] == 2 + 2 * finished
