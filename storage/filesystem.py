"""Snapshots as directories: `<root>/<snapshot_id>/manifest.msgpack` + `state.safetensors`.

Every write lands in a temp directory (or temp file) that is fsynced and then renamed into place, so a
crash at any point leaves either the old state or the new one, never a partial snapshot. Temp names
start with a dot, which no valid snapshot id can, and are swept when a store is constructed.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from superlinear.core.errors import Conflict, NotFound, SnapshotError
from superlinear.core.ports import SnapshotManifest
from superlinear.core.values import SnapshotInfo

from .ids import SNAPSHOT_ID_PATTERN, TEMP_PREFIX, snapshot_path, validate_snapshot_id
from .manifest import (
    SCHEMA_VERSION,
    ManifestRecord,
    StateIndex,
    decode_record,
    encode_record,
    make_manifest_converter,
)
from .metadata import checked_patch, info_of
from .space import check_full
from .state_file import read_state_file, write_state_file

__all__ = ["FilesystemSnapshotStore", "default_snapshot_root", "MANIFEST_NAME", "STATE_NAME"]

MANIFEST_NAME = "manifest.msgpack"
STATE_NAME = "state.safetensors"

log = logging.getLogger(__name__)

# Stands in for the state index while the manifest is test-encoded before any data is written.
_EMPTY_STATE = StateIndex(sha256="", file_bytes=0, data_start=0, tensors=())


def default_snapshot_root(environ: Mapping[str, str]) -> Path:
    """Return the snapshot root: `$SUPERLINEAR_SNAPSHOT_DIR`, else `$XDG_CACHE_HOME/spl/snapshots`, else
    `~/.cache/spl/snapshots`; `environ` is passed in because storage never reads the process environment.
    """
    explicit = environ.get("SUPERLINEAR_SNAPSHOT_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = environ.get("XDG_CACHE_HOME")
    # The XDG spec says to ignore relative values.
    if cache and Path(cache).is_absolute():
        return Path(cache) / "spl" / "snapshots"
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".cache" / "spl" / "snapshots"


class FilesystemSnapshotStore:
    """A SnapshotStore that keeps each snapshot in its own directory under `root`."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self._converter = make_manifest_converter()
        # Guards the check-then-rename of save and the read-modify-write of patch within one process.
        self._lock = threading.Lock()
        self.sweep_stale_temp_dirs()

    def __repr__(self) -> str:
        return f"FilesystemSnapshotStore({str(self.root)!r})"

    def save(self, manifest: SnapshotManifest, arrays: Iterable[tuple[str, Any]]) -> SnapshotInfo:
        """Write a snapshot atomically, streaming the arrays one by one; raise Conflict on an existing id."""
        target = snapshot_path(self.root, manifest.snapshot_id)
        if target.exists():
            raise Conflict(f"snapshot {manifest.snapshot_id!r} already exists", param="snapshot_id")
        temp = self._temp_path(manifest.snapshot_id)
        temp.mkdir()
        try:
            record = self._write_snapshot(temp, manifest, arrays)
            self._publish(temp, target, manifest.snapshot_id)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return info_of(record.snapshot, record.state.file_bytes)

    def load(self, snapshot_id: str) -> tuple[SnapshotManifest, Mapping[str, Any]]:
        """Verify schema, size and checksum, then read the snapshot; raise NotFound or SnapshotError."""
        directory = self._existing(snapshot_id)
        record = self._read_record(directory)
        try:
            arrays = read_state_file(directory / STATE_NAME, record.state)
        except SnapshotError as exc:
            raise SnapshotError(f"snapshot {snapshot_id!r}: {exc.message}") from exc
        return record.snapshot, arrays

    def manifest(self, snapshot_id: str) -> SnapshotManifest:
        """Read the manifest alone and check that the state file has the size it records (a stat, not a
        read); raise NotFound or SnapshotError. The arrays' checksum is verified by `load`."""
        directory = self._existing(snapshot_id)
        record = self._read_record(directory)
        expected = record.state.file_bytes
        try:
            size = (directory / STATE_NAME).stat().st_size
        except FileNotFoundError:
            if expected:
                raise SnapshotError(f"snapshot {snapshot_id!r}: {STATE_NAME} is missing") from None
            size = 0
        if size != expected:
            raise SnapshotError(f"snapshot {snapshot_id!r}: {STATE_NAME} has {size} bytes, the manifest expects "
                                f"{expected} (truncated or replaced)")
        return record.snapshot

    def get(self, snapshot_id: str) -> SnapshotInfo:
        """Describe one snapshot from its manifest; raise NotFound or SnapshotError."""
        record = self._read_record(self._existing(snapshot_id))
        return info_of(record.snapshot, record.state.file_bytes)

    def list(self) -> list[SnapshotInfo]:
        """Describe every readable snapshot, newest first; unreadable ones are logged and skipped."""
        infos = []
        for entry in sorted(self.root.iterdir()):
            # Temp dirs start with a dot and fail the id pattern; so does anything else not ours.
            if SNAPSHOT_ID_PATTERN.fullmatch(entry.name) is None or not entry.is_dir():
                continue
            try:
                infos.append(self.get(entry.name))
            except (SnapshotError, NotFound) as exc:
                if _published_snapshots(entry):
                    log.warning("skipping %s: it holds snapshots of the published superlinear server; import "
                                "each with `spl snapshot import DIR` (DIR holds manifest.json and cache.pt)", entry)
                else:
                    log.warning("skipping snapshot directory %s: %s", entry, exc)
        return sorted(infos, key=lambda info: (-info.created_at, info.snapshot_id))

    def patch(self, snapshot_id: str, **fields: Any) -> SnapshotInfo:
        """Change title, description or tags, rewriting the manifest atomically."""
        changes = checked_patch(fields)
        directory = self._existing(snapshot_id)
        with self._lock:
            record = self._read_record(directory)
            snapshot = attrs.evolve(record.snapshot, **changes)
            record = attrs.evolve(record, snapshot=snapshot, schema_version=SCHEMA_VERSION)
            self._replace_file(directory, MANIFEST_NAME, encode_record(self._converter, record))
        return info_of(record.snapshot, record.state.file_bytes)

    def delete(self, snapshot_id: str) -> None:
        """Remove a snapshot; raise NotFound."""
        directory = self._existing(snapshot_id)
        # Renaming first makes the delete atomic for readers; a crash mid-rmtree leaves only a temp dir.
        trash = self._temp_path(snapshot_id)
        try:
            os.rename(directory, trash)
        except FileNotFoundError:
            raise NotFound(f"no snapshot {snapshot_id!r}", param="snapshot_id") from None
        _fsync_dir(self.root)
        shutil.rmtree(trash, ignore_errors=True)

    def sweep_stale_temp_dirs(self) -> int:
        """Remove temp directories and files left by interrupted saves, patches and deletes."""
        stale = list(self.root.glob(f"{TEMP_PREFIX}*")) + list(self.root.glob(f"*/{TEMP_PREFIX}*"))
        for path in stale:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            log.info("removed stale temp entry %s", path)
        return len(stale)

    def _write_snapshot(
        self, temp: Path, manifest: SnapshotManifest, arrays: Iterable[tuple[str, Any]]
    ) -> ManifestRecord:
        """Write both files into `temp`; the manifest is encoded first so bad metadata fails fast."""
        placeholder = ManifestRecord(manifest, _EMPTY_STATE)
        encode_record(self._converter, placeholder)
        metadata = {
            "format": "pt",
            "snapshot_id": manifest.snapshot_id,
            "schema_version": str(SCHEMA_VERSION),
        }
        state = write_state_file(temp / STATE_NAME, arrays, metadata)
        record = ManifestRecord(manifest, state)
        _write_synced(temp / MANIFEST_NAME, encode_record(self._converter, record))
        _fsync_dir(temp)
        return record

    def _publish(self, temp: Path, target: Path, snapshot_id: str) -> None:
        """Rename the finished temp dir to its final name; raise Conflict if another save got there first."""
        with self._lock:
            if target.exists():
                raise Conflict(f"snapshot {snapshot_id!r} already exists", param="snapshot_id")
            try:
                os.rename(temp, target)
            except OSError as exc:
                # Linux refuses to rename a directory onto a non-empty one: another process won the race.
                raise Conflict(f"snapshot {snapshot_id!r} already exists", param="snapshot_id") from exc
        _fsync_dir(self.root)

    def _existing(self, snapshot_id: str) -> Path:
        directory = snapshot_path(self.root, snapshot_id)
        if not directory.is_dir():
            raise NotFound(f"no snapshot {snapshot_id!r}", param="snapshot_id")
        return directory

    def _read_record(self, directory: Path) -> ManifestRecord:
        """Read and migrate a manifest; the directory name is the snapshot's id."""
        try:
            data = (directory / MANIFEST_NAME).read_bytes()
        except FileNotFoundError:
            raise SnapshotError(f"snapshot {directory.name!r}: {MANIFEST_NAME} is missing") from None
        try:
            record = decode_record(self._converter, data)
        except SnapshotError as exc:
            raise SnapshotError(f"snapshot {directory.name!r}: {exc.message}") from exc
        if record.snapshot.snapshot_id != directory.name:
            snapshot = attrs.evolve(record.snapshot, snapshot_id=directory.name)
            record = attrs.evolve(record, snapshot=snapshot)
        return record

    def _replace_file(self, directory: Path, name: str, data: bytes) -> None:
        temp = directory / f"{TEMP_PREFIX}{name}-{secrets.token_hex(4)}"
        try:
            _write_synced(temp, data)
            os.replace(temp, directory / name)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(directory)

    def _temp_path(self, snapshot_id: str) -> Path:
        return self.root / f"{TEMP_PREFIX}{validate_snapshot_id(snapshot_id)}-{secrets.token_hex(6)}"


def _published_snapshots(entry: Path) -> bool:
    """Say whether `entry` is, or holds as MODEL/FINGERPRINT/ID, a published server's snapshot directory."""
    if (entry / "cache.pt").is_file():
        return True
    return any(found.is_file() for found in entry.glob("*/*/cache.pt"))


def _write_synced(path: Path, data: bytes) -> None:
    try:
        with open(path, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        check_full(exc, path, len(data))
        raise


def _fsync_dir(path: Path) -> None:
    """Make a rename or new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
