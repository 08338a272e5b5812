"""The REPL shared by `spl chat` and `spl docs`: read a line, run a slash command or ask a turn.

Slash commands come from the `superlinear_repl_commands` hook (built-ins included). A handler is called
as `handler(repl, arg)` with the text after the command name; returning False ends the REPL. A handler
with a `repl_kinds` attribute (see `for_repls`) only appears in REPLs of those kinds.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs

from superlinear.plugins import collect

from ..infra.client import CREATE_TIMEOUT, ApiError, Client
from ..infra.locks import SessionLock, SessionLocked
from ..infra.terminal import no_echo
from .turn import TurnResult, TurnStats, TurnView, dim, run_turn

__all__ = ["Repl", "for_repls", "repl_commands", "plugins_registered", "new_session_id", "write_stdout"]


def for_repls(*kinds: str) -> Callable[[Callable], Callable]:
    """Mark a slash-command handler as belonging only to REPLs of these kinds ("chat", "docs")."""

    def mark(handler: Callable) -> Callable:
        handler.repl_kinds = kinds
        return handler

    return mark


def repl_commands(registered: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """Return the registered commands that apply to a REPL of `kind`, keyed by "/name"."""
    out = {}
    for name, command in sorted(registered.items()):
        kinds = getattr(command.handler, "repl_kinds", None)
        if kinds is None or kind in kinds:
            out["/" + name.lstrip("/")] = command
    return out


def plugins_registered(args: argparse.Namespace, hook: str) -> dict[str, Any]:
    """Return what plugins registered through `hook`, from the plugin manager `main` built and attached to
    the parsed arguments (the one manager of a run: it is never built twice)."""
    return collect(args.plugin_manager, hook)


def write_stdout(text: str) -> None:
    """Write to whatever sys.stdout is now, and flush: answers stream a few characters at a time."""
    sys.stdout.write(text)
    sys.stdout.flush()


def new_session_id(prefix: str, now: Callable[[], float] = time.time) -> str:
    """Return a fresh session id such as chat_20260206_101500_a1b2."""
    return f"{prefix}_{time.strftime('%Y%m%d_%H%M%S', time.localtime(now()))}_{secrets.token_hex(2)}"


@attrs.define(eq=False)
class Repl:
    """A REPL attached to one server session; subclasses say how a question becomes a message."""

    client: Client
    session_id: str
    # "/name" -> registered command; the command builds them from the plugin manager (repl_commands).
    commands: Mapping[str, Any] = attrs.Factory(dict)
    write: Callable[[str], object] = write_stdout
    color: bool = False
    live: bool = False
    max_tokens: int = 512
    thinking: bool = True
    expand_thinking: bool = False
    history: Any = None
    stats: TurnStats | None = None
    last: TurnResult | None = None
    lock: SessionLock | None = None
    prompt_session: Any = None

    kind: ClassVar[str] = "chat"

    def label(self) -> str:
        return f"{self.kind}:{self.session_id}"

    def prompt(self) -> str:
        return f"spl({self.label()})> "

    def run(self, prompt_session) -> int:
        """Read and run lines until /exit or end of input; Ctrl-C at the prompt clears the line."""
        self.history = prompt_session.history
        self.prompt_session = prompt_session
        try:
            while True:
                try:
                    line = prompt_session.prompt(self.prompt())
                except KeyboardInterrupt:
                    continue
                except EOFError:
                    return 0
                if not self.handle(line):
                    return 0
        finally:
            self.close()

    def handle(self, line: str) -> bool:
        """Run one input line; return False when the REPL should end."""
        text = line.strip()
        if not text:
            return True
        try:
            with no_echo() if self.live else contextlib.nullcontext():
                if text.startswith("/") and not text.startswith("//"):
                    return self.command(text)
                # A leading "//" sends a message that starts with "/" (one slash is dropped).
                self.ask(text[1:] if text.startswith("//") else text)
        except (ApiError, SessionLocked) as exc:
            self.write(f"error: {exc}\n")
        except KeyboardInterrupt:
            self.write("\n(interrupted)\n")
        return True

    def command(self, text: str) -> bool:
        name, _, rest = text.partition(" ")
        cmd = self.commands.get(name)
        if cmd is None:
            self.write(f"unknown command {name}; /help lists them\n")
            return True
        try:
            return cmd.handler(self, rest.strip()) is not False
        except (ApiError, SessionLocked, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - a failing (perhaps third-party) command must not end the REPL
            self.write(f"error: {name} failed: {type(exc).__name__}: {exc}\n")
            return True

    def ask(self, text: str) -> None:
        """Send `text` as a turn of the session and stream the answer."""
        body = {"session_id": self.session_id, "max_tokens": self.max_tokens,
                "messages": [{"role": "user", "content": self.user_content(text)}]}
        if not self.thinking:
            body["chat_template_kwargs"] = {"enable_thinking": False}
        view = TurnView(self.write, color=self.color, live=self.live, expand_thinking=self.expand_thinking)
        try:
            self.last = run_turn(self.client, body, view)
        except KeyboardInterrupt:
            return
        self.stats = self.last.stats

    def user_content(self, text: str) -> str:
        """Return the message sent for a question (docs adds retrieved passages)."""
        return text

    def attach(self, session_id: str) -> None:
        """Switch to `session_id`: lock it for this REPL, release the old lock, and record the switch."""
        if self.lock is None or self.lock.session_id != session_id:
            lock = SessionLock(session_id).acquire()
            if self.lock is not None:
                self.lock.release()
            self.lock = lock
        self.session_id = session_id
        self.on_attach(session_id)

    def on_attach(self, session_id: str) -> None:
        """Remember the session the REPL is now attached to (client state); subclasses decide where."""

    def on_saved(self, snapshot_id: str) -> None:
        """Remember a snapshot saved by /save (docs records it in the workspace)."""

    def on_loaded(self, snapshot_id: str) -> None:
        """Remember a snapshot loaded by /load (docs records it in the workspace)."""

    def start_over(self) -> None:
        """Continue in a new empty session after the current one was deleted."""
        sid = self.fresh_session()
        self.write(f"new session {sid}\n")

    def confirm(self, question: str) -> bool:
        """Ask a yes/no question at the REPL's prompt; anything but y/yes is no."""
        if self.prompt_session is None:
            return False
        from prompt_toolkit import PromptSession

        # A throwaway session on the same terminal, so the answer stays out of the input history.
        asker = PromptSession(input=self.prompt_session.input, output=self.prompt_session.output)
        try:
            answer = asker.prompt(f"{question} [y/N] ")
        except (EOFError, KeyboardInterrupt):
            return False
        return answer.strip().lower() in ("y", "yes")

    def dim(self, text: str) -> str:
        return dim(text, self.color)

    def session_prefix(self) -> str:
        """The start of new session ids this REPL makes."""
        return self.kind

    def fresh_session(self) -> str:
        """Create an empty session, attach to it, and return its id."""
        sid = new_session_id(self.session_prefix())
        self.client.post("v1", "sessions", body={"session_id": sid}, timeout=CREATE_TIMEOUT)
        self.attach(sid)
        return sid

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
