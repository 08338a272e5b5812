"""`spl chat`: a prompt_toolkit REPL on a server session, with streamed answers."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import attrs
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import WordCompleter

from .client import ApiError, Client
from .config import server_url

__all__ = ["ChatRepl", "add_chat_parser"]

DIM, RESET = "\x1b[2m", "\x1b[0m"


@attrs.define
class TurnStats:
    """Metrics of the last turn, shown by /stats and after each answer."""

    ttft: float = 0.0
    seconds: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0

    def line(self) -> str:
        rate = self.completion_tokens / self.seconds if self.seconds > 0 else 0.0
        return (f"ttft={self.ttft * 1000:.0f}ms tok/s={rate:.1f} prompt={self.prompt_tokens} "
                f"cached={self.cached_tokens} completion={self.completion_tokens}")


@attrs.define(eq=False)
class ChatRepl:
    """Read lines, send each as a turn of one session, stream the answer; slash lines are commands."""

    client: Client
    session_id: str
    write: Callable[[str], object] = sys.stdout.write
    color: bool = False
    stats: TurnStats | None = None
    max_tokens: int = 512
    commands: dict = attrs.Factory(dict)

    def __attrs_post_init__(self):
        self.commands = {"/help": self.cmd_help, "/stats": self.cmd_stats, "/exit": self.cmd_exit,
                         "/quit": self.cmd_exit}

    def run(self, prompt_session: PromptSession) -> int:
        while True:
            try:
                line = prompt_session.prompt(f"spl(chat:{self.session_id})> ")
            except (EOFError, KeyboardInterrupt):
                return 0
            if not self.handle(line.strip()):
                return 0

    def handle(self, line: str) -> bool:
        """Run one input line; return False when the REPL should end."""
        if not line:
            return True
        if line.startswith("/"):
            name, _, rest = line.partition(" ")
            cmd = self.commands.get(name)
            if cmd is None:
                self.write(f"unknown command {name}; /help lists them\n")
                return True
            return cmd(rest.strip()) is not False
        try:
            self.turn(line)
        except ApiError as exc:
            self.write(f"\nerror: {exc}\n")
        except KeyboardInterrupt:
            self.write("\n(cancelled; the session is unchanged)\n")
        return True

    def turn(self, text: str) -> None:
        body = {"messages": [{"role": "user", "content": text}], "session_id": self.session_id,
                "max_tokens": self.max_tokens, "stream_options": {"include_usage": True}}
        start = time.monotonic()
        stats = TurnStats()
        mode = None
        for chunk in self.client.stream_chat(body):
            if chunk.get("usage"):
                u = chunk["usage"]
                stats.prompt_tokens = u["prompt_tokens"]
                stats.completion_tokens = u["completion_tokens"]
                stats.cached_tokens = u["prompt_tokens_details"]["cached_tokens"]
            for choice in chunk.get("choices", []):
                mode = self._show(choice.get("delta", {}), mode, stats, start)
        stats.seconds = time.monotonic() - start
        self.write(("" if mode is None else "\n") + self._dim(stats.line()) + "\n")
        self.stats = stats

    def _show(self, delta: dict, mode: str | None, stats: TurnStats, start: float) -> str | None:
        for key, label in (("reasoning_content", "thinking: "), ("content", "assistant: ")):
            text = delta.get(key)
            if not text:
                continue
            if not stats.ttft:
                stats.ttft = time.monotonic() - start
            if mode != key:
                self.write(("\n" if mode else "") + label)
                mode = key
            self.write(self._dim(text) if key == "reasoning_content" else text)
        return mode

    def _dim(self, text: str) -> str:
        return f"{DIM}{text}{RESET}" if self.color else text

    def cmd_help(self, arg: str) -> None:
        self.write("commands:\n  /help   this list\n  /stats  metrics of the last turn\n"
                   "  /exit   leave (the session stays on the server)\n")

    def cmd_stats(self, arg: str) -> None:
        self.write((self.stats.line() if self.stats else "no turn yet") + "\n")

    def cmd_exit(self, arg: str) -> bool:
        return False


def add_chat_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="chat with the model in a REPL")
    p.add_argument("--session", default=None, help="reuse this session id")
    p.add_argument("--new", action="store_true", help="always start a fresh session")
    p.add_argument("--url", default=None, help="server URL (default: the saved one)")
    p.add_argument("--max-tokens", type=int, default=512)
    p.set_defaults(func=cmd_chat)


def open_session(client: Client, session_id: str | None) -> str:
    """Create the session, or reuse it if it exists."""
    if session_id:
        try:
            return client.get("v1", "sessions", session_id)["session_id"]
        except ApiError as exc:
            if exc.status != 404:
                raise
    body = {"session_id": session_id or time.strftime("chat_%Y%m%d_%H%M%S")}
    return client.post("v1", "sessions", body=body)["session_id"]


def cmd_chat(a: argparse.Namespace, prompt_session: PromptSession | None = None) -> int:
    client = Client(server_url(a.url))
    try:
        sid = open_session(client, a.session)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    repl = ChatRepl(client, sid, color=sys.stdout.isatty(), max_tokens=a.max_tokens)
    session = prompt_session or PromptSession(completer=WordCompleter(list(repl.commands), sentence=True))
    print(f"session {sid} - /help for commands, /exit to leave")
    return repl.run(session)
