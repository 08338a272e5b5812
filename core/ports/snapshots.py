"""The snapshot store port: durable session state on disk (or in memory for tests)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from ..values import Message, SnapshotInfo

__all__ = ["SnapshotStore", "SnapshotManifest"]


@attrs.frozen
class SnapshotManifest:
    """Everything about a snapshot except its arrays."""

    snapshot_id: str
    created_at: float
    model: Mapping[str, str]
    ledger: tuple[int, ...]
    transcript: tuple[Message, ...]
    max_seq_len: int
    title: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    extra: Mapping[str, Any] = attrs.field(factory=dict)


@runtime_checkable
class SnapshotStore(Protocol):
    """Save, load, list, patch and delete snapshots."""

    def save(self, manifest: SnapshotManifest, arrays: Iterable[tuple[str, Any]]) -> SnapshotInfo:
        """Write a snapshot atomically, streaming the arrays one at a time."""

    def load(self, snapshot_id: str) -> tuple[SnapshotManifest, Mapping[str, Any]]:
        """Verify and read a snapshot; raise NotFound or SnapshotError."""

    def manifest(self, snapshot_id: str) -> SnapshotManifest:
        """Read only a snapshot's manifest (cheap: no arrays are read or checksummed); raise NotFound or
        SnapshotError. `load` still verifies everything."""

    def get(self, snapshot_id: str) -> SnapshotInfo:
        """Describe one snapshot; raise NotFound."""

    def list(self) -> list[SnapshotInfo]:
        """Describe every snapshot, newest first."""

    def patch(self, snapshot_id: str, **fields: Any) -> SnapshotInfo:
        """Change title, description or tags."""

    def delete(self, snapshot_id: str) -> None:
        """Remove a snapshot; raise NotFound."""
