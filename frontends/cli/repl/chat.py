"""`spl chat`: a REPL on one server session, resumed across runs unless --new."""

from __future__ import annotations

import argparse
import os
import sys

import attrs

from ..infra.client import CREATE_TIMEOUT, ApiError, Client
from ..infra.config import load_client_config, update_client_config
from ..infra.connection import add_connection_args, client_from_args
from ..infra.locks import SessionLock, SessionLocked
from .base import Repl, new_session_id, plugins_registered, repl_commands, write_stdout
from .turn import printable

__all__ = ["ChatRepl", "add_chat_parser", "cmd_chat", "one_shot", "open_session", "choose_chat_session"]


@attrs.define(eq=False)
class ChatRepl(Repl):
    """The chat REPL: questions go to the model as they are; the session is remembered for next time."""

    def on_attach(self, session_id: str) -> None:
        update_client_config(lambda state: {**state, "last_chat_session": session_id})


def add_chat_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="chat with the model in a REPL, or ask one question (-m, or on stdin)")
    p.add_argument("-m", "--message", default=None,
                   help="ask this one question, print just the answer and exit (a question piped on stdin "
                   "does the same); no session unless --session names one")
    p.add_argument("--session", default=None, help="use this session id (created if missing)")
    p.add_argument("--new", action="store_true", help="start a fresh session")
    p.add_argument("--max-tokens", type=int, default=512, help="answer length limit per turn (default: 512)")
    p.add_argument("--no-thinking", action="store_true", help="ask the model not to think first")
    add_connection_args(p)
    p.set_defaults(func=cmd_chat)


def open_session(client: Client, session_id: str | None, prefix: str = "chat") -> str:
    """Return `session_id` if the server has it, else create it (or a fresh id when None)."""
    if session_id:
        try:
            return client.get("v1", "sessions", session_id)["session_id"]
        except ApiError as exc:
            if exc.status != 404:
                raise
    body = {"session_id": session_id or new_session_id(prefix)}
    return client.post("v1", "sessions", body=body, timeout=CREATE_TIMEOUT)["session_id"]


def choose_chat_session(client: Client, a: argparse.Namespace, say=print) -> tuple[str, SessionLock]:
    """Pick and lock the session: --session, else (without --new) the last one if it still exists, else new.

    An explicitly named session that another REPL holds is an error; a remembered one is skipped.
    """
    if a.session:
        lock = SessionLock(a.session).acquire()
        try:
            return open_session(client, a.session), lock
        except BaseException:
            lock.release()
            raise
    last = None if a.new else load_client_config().get("last_chat_session")
    if last and client.session_exists(last):
        try:
            return last, SessionLock(last).acquire()
        except SessionLocked as exc:
            say(f"the last chat session {last} is open in another REPL (pid {exc.pid}); starting a new one")
    sid = new_session_id("chat")
    lock = SessionLock(sid).acquire()
    try:
        return open_session(client, sid), lock
    except BaseException:
        lock.release()
        raise


def _piped_question() -> str | None:
    """Return the question piped on stdin, or None when stdin is a terminal or holds nothing."""
    try:
        if sys.stdin is None or sys.stdin.isatty():
            return None
        return sys.stdin.read().strip() or None
    except (OSError, ValueError):
        return None


def one_shot(client: Client, a: argparse.Namespace, question: str) -> int:
    """Ask one question and print just the answer (no thinking, no prompt, no stats) as it streams."""
    body: dict = {"messages": [{"role": "user", "content": question}], "max_tokens": a.max_tokens}
    if not question.strip():
        print("error: the question is empty", file=sys.stderr)
        return 2
    if a.no_thinking:
        body["chat_template_kwargs"] = {"enable_thinking": False}
    lock = None
    if a.session:
        lock = SessionLock(a.session).acquire()
        body["session_id"] = open_session(client, a.session)
    try:
        ended_with_newline = True
        for chunk in client.stream_chat(body):
            for choice in chunk.get("choices", []):
                text = printable((choice.get("delta") or {}).get("content") or "")
                if text:
                    write_stdout(text)
                    ended_with_newline = text.endswith("\n")
        if not ended_with_newline:
            write_stdout("\n")
    finally:
        if lock is not None:
            lock.release()
    return 0


def cmd_chat(a: argparse.Namespace, **prompt_kwargs) -> int:
    """Run the chat REPL; `prompt_kwargs` (input, output) let tests drive it through a pipe."""
    from .prompt_ui import history_file, make_prompt_session  # here: prompt_toolkit only for the REPL

    client = client_from_args(a)
    question = a.message if a.message is not None else (None if prompt_kwargs else _piped_question())
    if question is not None:
        return one_shot(client, a, question)
    try:
        sid, lock = choose_chat_session(client, a)
    except SessionLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    tty = sys.stdout.isatty()
    repl = ChatRepl(client, sid, commands=repl_commands(plugins_registered(a, "superlinear_repl_commands"), "chat"),
                    color=tty and "NO_COLOR" not in os.environ, live=tty, max_tokens=a.max_tokens,
                    thinking=not a.no_thinking)
    repl.lock = lock
    repl.on_attach(sid)
    session = make_prompt_session(repl.commands, history_file("chat"), **prompt_kwargs)
    print(f"session {sid} - /help for commands, /exit to leave")
    return repl.run(session)
