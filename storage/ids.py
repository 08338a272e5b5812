"""Snapshot ids: what a valid id looks like, and the one place that turns an id into a path."""

from __future__ import annotations

from pathlib import Path

from superlinear.core.errors import InvalidRequest
from superlinear.core.ids import ID_PATTERN, validate_id

__all__ = ["SNAPSHOT_ID_PATTERN", "TEMP_PREFIX", "validate_snapshot_id", "snapshot_path"]

SNAPSHOT_ID_PATTERN = ID_PATTERN

# Temp and trash directories start with a dot, which no valid id can, so they never collide with a snapshot.
TEMP_PREFIX = ".tmp-"


def validate_snapshot_id(snapshot_id: object) -> str:
    """Return `snapshot_id` if it is a valid id; raise InvalidRequest (param "snapshot_id") otherwise."""
    return validate_id(snapshot_id, "snapshot_id")


def snapshot_path(root: Path, snapshot_id: object) -> Path:
    """Return the directory of `snapshot_id` under `root`, after checking it cannot leave `root`."""
    valid = validate_snapshot_id(snapshot_id)
    path = root / valid
    # The pattern already forbids separators and dot-only names; this guards the invariant itself.
    if path.parent != root or path.name != valid:
        raise InvalidRequest(f"invalid snapshot id {valid!r}", param="snapshot_id")
    return path
