"""`spl docs <name> [-l SNAP]`: document Q&A in a workspace, with passages retrieved before each question."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time

import attrs

from ..infra.client import CREATE_TIMEOUT, ApiError, Client
from ..infra.connection import add_connection_args, client_from_args
from ..infra.locks import SessionLock, SessionLocked
from ..infra.workspace import Source, Workspace, open_workspace, update_workspace, valid_name
from ..repl.base import Repl, new_session_id, plugins_registered, repl_commands
from .framing import frame_question, framed_documents
from .retrieval import UnknownRetriever, WorkspaceIndex
from .slash import reset_workspace

__all__ = ["DocsRepl", "add_docs_parser", "cmd_docs", "sources_from_session"]


@attrs.define(eq=False)
class DocsRepl(Repl):
    """The docs REPL: each question goes out with the passages the retriever finds for it."""

    workspace: Workspace | None = None
    index: WorkspaceIndex | None = None
    kind = "docs"

    def label(self) -> str:
        return f"docs:{self.workspace.name}"

    def session_prefix(self) -> str:
        return f"docs_{self.workspace.name}"

    def change_workspace(self, change) -> Workspace:
        """Apply `change` to the stored workspace (locked) and keep the result."""
        self.workspace = update_workspace(self.workspace.name, change)
        return self.workspace

    def on_attach(self, session_id: str) -> None:
        self.change_workspace(lambda ws: setattr(ws, "session_id", session_id))
        self.index.invalidate()

    def on_saved(self, snapshot_id: str) -> None:
        self.change_workspace(lambda ws: setattr(ws, "last_snapshot_id", snapshot_id))

    def on_loaded(self, snapshot_id: str) -> None:
        sources = sources_from_session(self.client, self.session_id, self.workspace.sources)
        self.change_workspace(lambda ws: setattr(ws, "sources", sources))

    def start_over(self) -> None:
        reset_workspace(self, delete_old=False)

    def user_content(self, text: str) -> str:
        rag = self.workspace.rag
        if not rag.enabled:
            return text
        try:
            found = self.index.search(self.client, self.session_id, rag.retriever, text, rag.k)
        except UnknownRetriever as exc:
            self.write(f"warning: {exc}; asking without passages (/rag retriever NAME picks another)\n")
            return text
        if found:
            names = ", ".join(p.source for p in found)
            self.write(self.dim(f"retrieved {len(found)} passages: {names}") + "\n")
        return frame_question(self.workspace.nonce, found, text)


def sources_from_session(client: Client, session_id: str, known: list[Source]) -> list[Source]:
    """Return the sources of the documents framed in the session, keeping known records of the same path."""
    by_path = {s.path: s for s in known}
    out = []
    messages = client.get("v1", "sessions", session_id, "history")["messages"]
    for path, text in framed_documents(messages):
        data = text.encode("utf-8")
        out.append(by_path.get(path) or Source(path, len(data), hashlib.sha256(data).hexdigest(), time.time()))
    return out


def add_docs_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("docs", help="ask questions about documents in a workspace")
    p.add_argument("name", help="workspace name (letters, digits, '.', '_', '-')")
    p.add_argument("-l", "--load", metavar="SNAP", default=None, help="start from this snapshot")
    p.add_argument("--max-tokens", type=int, default=512, help="answer length limit per turn")
    p.add_argument("--no-thinking", action="store_true", help="ask the model not to think first")
    add_connection_args(p)
    p.set_defaults(func=cmd_docs)


def _load_into_new(client: Client, name: str, snapshot_id: str) -> tuple[str, SessionLock]:
    sid = new_session_id(f"docs_{name}")
    lock = SessionLock(sid).acquire()
    try:
        client.post("v1", "snapshots", snapshot_id, "load", body={"session_id": sid}, timeout=3600)
    except BaseException:
        lock.release()
        raise
    return sid, lock


def _fresh(client: Client, name: str) -> tuple[str, SessionLock]:
    sid = new_session_id(f"docs_{name}")
    lock = SessionLock(sid).acquire()
    try:
        client.post("v1", "sessions", body={"session_id": sid}, timeout=CREATE_TIMEOUT)
    except BaseException:
        lock.release()
        raise
    return sid, lock


def _latest_snapshot(client: Client, ws: Workspace) -> str | None:
    """The newest of the workspace's last saved and base snapshots that the server still has."""
    found = []
    for snap in dict.fromkeys(x for x in (ws.last_snapshot_id, ws.base_snapshot_id) if x):
        try:
            found.append((client.get("v1", "snapshots", snap).get("created_at") or 0, snap))
        except ApiError as exc:
            if exc.status not in (400, 404):
                raise
    return max(found)[1] if found else None


def choose_docs_session(client: Client, ws: Workspace, snapshot: str | None,
                        say=print) -> tuple[str, SessionLock, str | None]:
    """Pick and lock the workspace's session.

    Returns (session id, lock, origin): origin is the snapshot the session was loaded from, "" for a fresh
    empty session, or None when the workspace's existing session is resumed.
    """
    if snapshot:
        return (*_load_into_new(client, ws.name, snapshot), snapshot)
    if client.session_exists(ws.session_id):
        return ws.session_id, SessionLock(ws.session_id).acquire(), None
    latest = _latest_snapshot(client, ws)
    if latest:
        which = "base" if latest == ws.base_snapshot_id else "last saved"
        say(f"session {ws.session_id} is gone; loading the {which} snapshot {latest}")
        return (*_load_into_new(client, ws.name, latest), latest)
    if ws.sources:
        say(f"session {ws.session_id} is gone and there is no base snapshot; its {len(ws.sources)} sources "
            "are forgotten (/add them again)")
    return (*_fresh(client, ws.name), "")


def _record_origin(repl: DocsRepl, origin: str | None, explicit: str | None) -> None:
    """Bring the workspace's sources in line with the session just attached."""
    if origin:
        repl.on_loaded(origin)
        if explicit:
            repl.change_workspace(lambda w: setattr(w, "base_snapshot_id", explicit))
    elif origin == "":
        repl.change_workspace(lambda w: setattr(w, "sources", []))


def cmd_docs(a: argparse.Namespace, **prompt_kwargs) -> int:
    """Run the docs REPL; `prompt_kwargs` (input, output) let tests drive it through a pipe."""
    from ..repl.prompt_ui import history_file, make_prompt_session  # here: prompt_toolkit only for the REPL

    if not valid_name(a.name):
        print(f"error: bad workspace name {a.name!r}: use letters, digits, '.', '_' or '-'", file=sys.stderr)
        return 2
    client = client_from_args(a)
    ws = open_workspace(a.name)
    try:
        sid, lock, origin = choose_docs_session(client, ws, a.load)
    except SessionLocked as exc:
        print(f"error: workspace {a.name}: {exc}", file=sys.stderr)
        return 1
    tty = sys.stdout.isatty()
    repl = DocsRepl(client, sid, commands=repl_commands(plugins_registered(a, "superlinear_repl_commands"), "docs"),
                    color=tty and "NO_COLOR" not in os.environ, live=tty, max_tokens=a.max_tokens,
                    thinking=not a.no_thinking, workspace=ws, index=WorkspaceIndex(plugins_registered(a, "superlinear_retrievers")))
    repl.lock = lock
    repl.on_attach(sid)
    _record_origin(repl, origin, a.load)
    session = make_prompt_session(repl.commands, history_file("docs"), **prompt_kwargs)
    print(f"workspace {a.name}: session {sid}, {len(repl.workspace.sources)} sources - /help for commands")
    return repl.run(session)
