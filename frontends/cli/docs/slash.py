"""The slash commands only `spl docs` has: /add /sources /info /rag /reset."""

from __future__ import annotations

from ..infra.client import ApiError
from ..infra.output import age, human_bytes, table
from ..infra.workspace import workspace_path
from ..repl.base import for_repls
from ..repl.slash import cmd_load
from .add import add_documents

__all__ = ["DOCS_COMMANDS", "reset_workspace"]


@for_repls("docs")
def cmd_add(repl, arg: str) -> None:
    add_documents(repl, arg)


@for_repls("docs")
def cmd_sources(repl, arg: str) -> None:
    sources = repl.workspace.sources
    if not sources:
        repl.write("no sources yet; /add <paths...> adds some\n")
        return
    rows = [(i, human_bytes(s.bytes), s.sha256[:12], age(s.added_at), s.path) for i, s in enumerate(sources, 1)]
    repl.write(table(("#", "SIZE", "SHA256", "ADDED", "PATH"), rows) + "\n")


@for_repls("docs")
def cmd_info(repl, arg: str) -> None:
    ws = repl.workspace
    info = repl.client.get("v1", "sessions", repl.session_id)
    rag = ws.rag
    repl.write(
        f"workspace     {ws.name} ({workspace_path(ws.name)})\n"
        f"session       {repl.session_id}: {info.get('cached_tokens', 0)} tokens of {info.get('max_seq_len')}, "
        f"{info.get('message_count', 0)} messages\n"
        f"sources       {len(ws.sources)} ({human_bytes(ws.source_bytes())})\n"
        f"base snapshot {ws.base_snapshot_id or '-'}\n"
        f"last snapshot {ws.last_snapshot_id or '-'}\n"
        f"rag           {'on' if rag.enabled else 'off'}, k={rag.k}, retriever={rag.retriever}, "
        f"retrievers installed: {', '.join(sorted(repl.index.factories)) or 'none'}\n"
    )


def _set_rag(repl, **changes) -> None:
    import attrs

    repl.change_workspace(lambda ws: setattr(ws, "rag", attrs.evolve(ws.rag, **changes)))


@for_repls("docs")
def cmd_rag(repl, arg: str) -> None:
    words = arg.split()
    if words in (["on"], ["off"]):
        _set_rag(repl, enabled=words[0] == "on")
    elif len(words) == 2 and words[0] == "k" and words[1].isdigit() and 1 <= int(words[1]) <= 50:
        _set_rag(repl, k=int(words[1]))
    elif len(words) == 2 and words[0] == "retriever":
        if words[1] not in repl.index.factories:
            repl.write(f"no retriever named {words[1]!r}; installed: {', '.join(sorted(repl.index.factories))}\n")
            return
        _set_rag(repl, retriever=words[1])
        repl.index.invalidate()
    elif words not in ([], ["show"]):
        repl.write("usage: /rag [show | on | off | k N (1-50) | retriever NAME]\n")
        return
    rag = repl.workspace.rag
    repl.write(f"rag {'on' if rag.enabled else 'off'}, k={rag.k}, retriever={rag.retriever}\n")


def reset_workspace(repl, delete_old: bool) -> None:
    """Go back to the base snapshot (documents, no questions); without one, to an empty session."""
    old = repl.session_id
    base = repl.workspace.base_snapshot_id
    if base:
        try:
            cmd_load(repl, base)
        except ApiError as exc:
            repl.write(f"cannot load the base snapshot {base} ({exc}); starting empty\n")
            repl.change_workspace(lambda ws: setattr(ws, "base_snapshot_id", None))
            base = None
    if not base:
        sid = repl.fresh_session()
        repl.change_workspace(lambda ws: setattr(ws, "sources", []))
        repl.write(f"new empty session {sid}; sources cleared\n")
    if delete_old and old != repl.session_id:
        repl.client.delete("v1", "sessions", old)
        repl.write(f"deleted session {old}\n")


@for_repls("docs")
def cmd_reset(repl, arg: str) -> None:
    reset_workspace(repl, delete_old=True)


DOCS_COMMANDS = (
    ("add", cmd_add, "<paths...> [-s] [--max-files N]  ingest files, folders or globs; -s saves a base snapshot"),
    ("sources", cmd_sources, "list the documents in this workspace"),
    ("info", cmd_info, "show the workspace: session, sources, snapshots, retrieval"),
    ("rag", cmd_rag, "[show|on|off|k N|retriever NAME]  retrieval before each question"),
    ("reset", cmd_reset, "drop the questions: back to the base snapshot, or to an empty session"),
)
