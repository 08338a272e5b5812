"""What the server holds (sessions and snapshots) as the CLI shows it, and deleting by id.

`spl ls`, `spl rm` and the REPLs' /ls and /rm share this module, so they name and delete things alike.
"""

from __future__ import annotations

import attrs

from ..infra.client import ApiError, Client
from ..infra.config import load_client_config
from ..infra.locks import holder_of
from ..infra.output import session_rows, snapshot_rows
from ..infra.workspace import list_workspaces

__all__ = ["Item", "resolve", "delete_item", "session_notes", "note_for", "listing_text"]


@attrs.frozen
class Item:
    """A thing on the server an id names: kind is "session" or "snapshot"."""

    id: str
    kind: str


def resolve(client: Client, item_id: str, kinds: tuple[str, ...] = ("session", "snapshot")) -> Item | None:
    """Return what `item_id` names among `kinds` (sessions first), or None when it names nothing."""
    for kind in kinds:
        path = f"{kind}s"
        try:
            client.get("v1", path, item_id)
            return Item(item_id, kind)
        except ApiError as exc:
            if exc.status not in (400, 404):
                raise
    return None


def delete_item(client: Client, item: Item) -> None:
    """Delete a session or a snapshot."""
    client.delete("v1", f"{item.kind}s", item.id)


def session_notes() -> dict[str, str]:
    """Map session ids to what the client knows about them: last chat, a workspace's, open in a REPL."""
    notes: dict[str, list[str]] = {}
    last = load_client_config().get("last_chat_session")
    if last:
        notes.setdefault(last, []).append("last chat")
    for ws in list_workspaces():
        if ws.session_id:
            notes.setdefault(ws.session_id, []).append(f"docs:{ws.name}")
    return {sid: ", ".join(parts) for sid, parts in notes.items()}


def note_for(notes: dict[str, str], sid: str) -> str:
    """Return the note column for `sid`: what session_notes knows plus the REPL holding it, if any."""
    pid = holder_of(sid)
    parts = [notes.get(sid, "")] + ([f"open (pid {pid})"] if pid else [])
    return ", ".join(p for p in parts if p)


def listing_text(sessions: list[dict], snapshots: list[dict]) -> str:
    """Render sessions and snapshots the way `spl ls` and /ls print them."""
    notes = session_notes()
    parts = [session_rows(sessions, lambda sid: note_for(notes, sid)) if sessions else "no sessions",
             snapshot_rows(snapshots) if snapshots else "no snapshots"]
    return "\n\n".join(parts)
