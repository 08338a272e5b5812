"""Snapshot stores: durable session state on disk, and an in-memory twin for tests."""

from .filesystem import MANIFEST_NAME, STATE_NAME, FilesystemSnapshotStore, default_snapshot_root
from .ids import SNAPSHOT_ID_PATTERN, snapshot_path, validate_snapshot_id
from .manifest import (
    MIGRATIONS,
    SCHEMA_VERSION,
    ManifestRecord,
    StateIndex,
    TensorEntry,
    make_manifest_converter,
)
from .memory import MemorySnapshotStore

__all__ = [
    "FilesystemSnapshotStore",
    "MANIFEST_NAME",
    "MIGRATIONS",
    "ManifestRecord",
    "MemorySnapshotStore",
    "SCHEMA_VERSION",
    "SNAPSHOT_ID_PATTERN",
    "STATE_NAME",
    "StateIndex",
    "TensorEntry",
    "default_snapshot_root",
    "make_manifest_converter",
    "snapshot_path",
    "validate_snapshot_id",
]
