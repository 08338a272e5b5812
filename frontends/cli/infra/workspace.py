"""Document workspaces: one JSON file per workspace under $XDG_CONFIG_HOME/spl/workspaces/<name>.json.

A workspace records the server session holding its documents, the sources ingested (path, size, sha256),
the base snapshot saved after ingest, the retrieval settings, and a random nonce that the framing of
documents and passages uses (see framing.py). Every change is a locked read-modify-write of the file.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from .config import workspaces_dir
from .jsonstore import read_json, update_json

__all__ = ["Source", "RagSettings", "Workspace", "valid_name", "workspace_path", "load_workspace",
           "open_workspace", "update_workspace", "list_workspaces"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@attrs.frozen
class Source:
    """A document ingested into the workspace's session."""

    path: str
    bytes: int
    sha256: str
    added_at: float = 0.0


@attrs.frozen
class RagSettings:
    """Whether and how to retrieve passages before each question."""

    enabled: bool = True
    k: int = 4
    retriever: str = "bm25"


@attrs.define(eq=False)
class Workspace:
    """The client-side record of one document workspace."""

    name: str
    nonce: str
    session_id: str | None = None
    sources: list[Source] = attrs.Factory(list)
    base_snapshot_id: str | None = None
    last_snapshot_id: str | None = None
    rag: RagSettings = RagSettings()
    created_at: float = 0.0

    def source_bytes(self) -> int:
        return sum(s.bytes for s in self.sources)

    def has_digest(self, sha256: str) -> bool:
        return any(s.sha256 == sha256 for s in self.sources)


def valid_name(name: str) -> bool:
    """Workspace names are file names and parts of session ids: letters, digits, '.', '_', '-'."""
    return bool(_NAME.match(name))


def workspace_path(name: str) -> Path:
    if not valid_name(name):
        raise ValueError(f"bad workspace name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    return workspaces_dir() / f"{name}.json"


def _to_json(ws: Workspace) -> dict:
    return attrs.asdict(ws, recurse=True)


def _from_json(data: dict) -> Workspace:
    known = {f.name for f in attrs.fields(Workspace)}
    fields = {k: v for k, v in data.items() if k in known}
    fields["sources"] = [Source(**s) for s in fields.get("sources", [])]
    fields["rag"] = RagSettings(**fields.get("rag", {}))
    return Workspace(**fields)


def load_workspace(name: str) -> Workspace | None:
    """Return the workspace, or None when it does not exist."""
    data = read_json(workspace_path(name))
    return _from_json(data) if data else None


def open_workspace(name: str, nonce: Callable[[], str] = lambda: secrets.token_hex(8),
                   now: Callable[[], float] = time.time) -> Workspace:
    """Return the workspace, creating it (with a fresh random nonce) when it does not exist."""

    def change(data: dict) -> dict:
        return data or _to_json(Workspace(name=name, nonce=nonce(), created_at=now()))

    return _from_json(update_json(workspace_path(name), change))


def update_workspace(name: str, change: Callable[[Workspace], None]) -> Workspace:
    """Apply `change` to the stored workspace under its file lock and return the result."""

    def apply(data: dict) -> dict:
        if not data:
            raise KeyError(f"no workspace named {name!r}")
        ws = _from_json(data)
        change(ws)
        return _to_json(ws)

    return _from_json(update_json(workspace_path(name), apply))


def list_workspaces() -> list[Workspace]:
    """Return every stored workspace, by name."""
    folder = workspaces_dir()
    if not folder.is_dir():
        return []
    found = (load_workspace(p.stem) for p in sorted(folder.glob("*.json")) if valid_name(p.stem))
    return [ws for ws in found if ws is not None]
