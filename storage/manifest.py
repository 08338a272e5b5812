"""The on-disk manifest: its records, its cattrs converter, msgpack encoding and schema migrations.

A manifest document is a plain dict with `schema_version`, `snapshot` (the SnapshotManifest fields) and
`state` (the tensor index, checksum and sizes of `state.safetensors`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import cattrs
import msgpack
from cattrs.preconf.msgpack import make_converter

from superlinear.core.errors import InvalidRequest, SnapshotError
from superlinear.core.ports import SnapshotManifest

__all__ = [
    "SCHEMA_VERSION",
    "MIGRATIONS",
    "Migration",
    "TensorEntry",
    "StateIndex",
    "ManifestRecord",
    "make_manifest_converter",
    "upgrade",
    "encode_record",
    "decode_record",
]

SCHEMA_VERSION = 1

Migration = Callable[[dict[str, Any]], dict[str, Any]]

# MIGRATIONS[n] turns a version-n document into a version-(n + 1) document. Add one entry each time
# SCHEMA_VERSION goes up, so every older snapshot keeps loading.
MIGRATIONS: dict[int, Migration] = {}


@attrs.frozen
class TensorEntry:
    """One tensor of the state file; `offsets` are [begin, end) bytes from the start of the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    offsets: tuple[int, int]


@attrs.frozen
class StateIndex:
    """What the manifest knows about `state.safetensors`, so a load can verify it before reading it."""

    sha256: str
    file_bytes: int
    data_start: int
    tensors: tuple[TensorEntry, ...]

    @property
    def data_bytes(self) -> int:
        """Return the bytes of tensor data, without the header."""
        return self.file_bytes - self.data_start


@attrs.frozen
class ManifestRecord:
    """A manifest as stored: the snapshot's metadata plus the index of its state file."""

    snapshot: SnapshotManifest
    state: StateIndex
    schema_version: int = SCHEMA_VERSION


def make_manifest_converter() -> cattrs.Converter:
    """Build the converter between ManifestRecord and plain msgpack-able dicts."""
    converter = make_converter()
    # Ledgers run to millions of ids; a bulk check beats cattrs' per-element structuring.
    converter.register_structure_hook_func(lambda cls: cls == tuple[int, ...], _structure_int_tuple)
    return converter


def _structure_int_tuple(value: Any, _type: Any) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(type(item) is int for item in value):
        raise ValueError("expected a list of integers")
    return tuple(value)


def upgrade(doc: Mapping[str, Any], migrations: Mapping[int, Migration] | None = None) -> dict[str, Any]:
    """Return `doc` migrated to SCHEMA_VERSION; raise SnapshotError for unknown or future versions."""
    steps = MIGRATIONS if migrations is None else migrations
    version = doc.get("schema_version")
    if type(version) is not int or version < 0:
        raise SnapshotError(f"manifest has no valid schema version (found {version!r})")
    if version > SCHEMA_VERSION:
        raise SnapshotError(
            f"manifest schema version {version} is newer than this superlinear understands "
            f"({SCHEMA_VERSION}); upgrade superlinear to load it"
        )
    upgraded = dict(doc)
    while version < SCHEMA_VERSION:
        step = steps.get(version)
        if step is None:
            raise SnapshotError(f"no migration from manifest schema version {version}")
        upgraded = dict(step(upgraded))
        version += 1
        upgraded["schema_version"] = version
    return upgraded


def encode_record(converter: cattrs.Converter, record: ManifestRecord) -> bytes:
    """Serialise a record to msgpack bytes; raise InvalidRequest when `extra` holds unencodable values."""
    try:
        return msgpack.packb(converter.unstructure(record), use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidRequest(f"snapshot manifest cannot be encoded: {exc}", param="extra") from exc


def decode_record(
    converter: cattrs.Converter, data: bytes, migrations: Mapping[int, Migration] | None = None
) -> ManifestRecord:
    """Parse msgpack bytes into a record, migrating old schemas; raise SnapshotError when malformed."""
    try:
        doc = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:
        # msgpack raises several unrelated types (ExtraData, FormatError, ValueError...) for bad bytes.
        raise SnapshotError(f"manifest is not valid msgpack: {exc}") from exc
    if not isinstance(doc, dict):
        raise SnapshotError("manifest is not a msgpack map")
    doc = upgrade(doc, migrations)
    try:
        return converter.structure(doc, ManifestRecord)
    except Exception as exc:
        raise SnapshotError(f"manifest does not match schema {SCHEMA_VERSION}: {_describe(exc)}") from exc


def _describe(exc: Exception) -> str:
    """Flatten cattrs' grouped validation errors into one line."""
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc))
    return str(exc)
