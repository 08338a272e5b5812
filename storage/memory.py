"""An in-memory SnapshotStore for tests: same contract as the filesystem store, nothing on disk."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from superlinear.core.errors import Conflict, NotFound
from superlinear.core.ports import SnapshotManifest
from superlinear.core.values import SnapshotInfo

from .ids import validate_snapshot_id
from .metadata import checked_patch, info_of

__all__ = ["MemorySnapshotStore"]


def _clone(array: Any) -> Any:
    """Copy an array so neither the caller nor the store can change the other's data."""
    clone = getattr(array, "clone", None)
    if clone is not None:
        return array.detach().clone() if hasattr(array, "detach") else clone()
    return copy.deepcopy(array)


def _nbytes(array: Any) -> int:
    return int(getattr(array, "nbytes", 0))


@attrs.frozen
class _Entry:
    manifest: SnapshotManifest
    arrays: Mapping[str, Any]
    size: int


class MemorySnapshotStore:
    """Keep manifests and cloned arrays in a dict; `bytes` reports the arrays' total size."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def save(self, manifest: SnapshotManifest, arrays: Iterable[tuple[str, Any]]) -> SnapshotInfo:
        """Store a snapshot; raise Conflict if the id exists."""
        snapshot_id = validate_snapshot_id(manifest.snapshot_id)
        self._refuse_existing(snapshot_id)
        cloned: dict[str, Any] = {}
        for name, array in arrays:
            if name in cloned:
                raise ValueError(f"tensor name {name!r} is repeated")
            cloned[name] = _clone(array)
        entry = _Entry(manifest, cloned, sum(_nbytes(a) for a in cloned.values()))
        with self._lock:
            self._refuse_existing(snapshot_id)
            self._entries[snapshot_id] = entry
        return info_of(manifest, entry.size)

    def load(self, snapshot_id: str) -> tuple[SnapshotManifest, Mapping[str, Any]]:
        """Return the manifest and fresh copies of the arrays; raise NotFound."""
        entry = self._entry(snapshot_id)
        return entry.manifest, {name: _clone(array) for name, array in entry.arrays.items()}

    def manifest(self, snapshot_id: str) -> SnapshotManifest:
        """Return the manifest alone; raise NotFound."""
        return self._entry(snapshot_id).manifest

    def get(self, snapshot_id: str) -> SnapshotInfo:
        """Describe one snapshot; raise NotFound."""
        entry = self._entry(snapshot_id)
        return info_of(entry.manifest, entry.size)

    def list(self) -> list[SnapshotInfo]:
        """Describe every snapshot, newest first."""
        with self._lock:
            entries = list(self._entries.values())
        infos = [info_of(entry.manifest, entry.size) for entry in entries]
        return sorted(infos, key=lambda info: (-info.created_at, info.snapshot_id))

    def patch(self, snapshot_id: str, **fields: Any) -> SnapshotInfo:
        """Change title, description or tags."""
        changes = checked_patch(fields)
        with self._lock:
            entry = self._entry_locked(snapshot_id)
            entry = attrs.evolve(entry, manifest=attrs.evolve(entry.manifest, **changes))
            self._entries[snapshot_id] = entry
        return info_of(entry.manifest, entry.size)

    def delete(self, snapshot_id: str) -> None:
        """Remove a snapshot; raise NotFound."""
        with self._lock:
            self._entry_locked(snapshot_id)
            del self._entries[snapshot_id]

    def _refuse_existing(self, snapshot_id: str) -> None:
        if snapshot_id in self._entries:
            raise Conflict(f"snapshot {snapshot_id!r} already exists", param="snapshot_id")

    def _entry(self, snapshot_id: str) -> _Entry:
        with self._lock:
            return self._entry_locked(snapshot_id)

    def _entry_locked(self, snapshot_id: str) -> _Entry:
        entry = self._entries.get(validate_snapshot_id(snapshot_id))
        if entry is None:
            raise NotFound(f"no snapshot {snapshot_id!r}", param="snapshot_id")
        return entry
