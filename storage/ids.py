"""Snapshot ids: what a valid id looks like, and the one place that turns an id into a path."""

from __future__ import annotations

import re
from pathlib import Path

from ..core.errors import InvalidRequest

__all__ = ["SNAPSHOT_ID_PATTERN", "TEMP_PREFIX", "validate_snapshot_id", "snapshot_path"]

SNAPSHOT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

# Temp and trash directories start with a dot, which no valid id can, so they never collide with a snapshot.
TEMP_PREFIX = ".tmp-"


def validate_snapshot_id(snapshot_id: object) -> str:
    """Return `snapshot_id` if it is a valid id; raise InvalidRequest (param "snapshot_id") otherwise."""
    # fullmatch, not match with "$": "$" also matches before a trailing newline.
    if not isinstance(snapshot_id, str) or SNAPSHOT_ID_PATTERN.fullmatch(snapshot_id) is None:
        raise InvalidRequest(
            f"invalid snapshot id {snapshot_id!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            param="snapshot_id",
        )
    return snapshot_id


def snapshot_path(root: Path, snapshot_id: object) -> Path:
    """Return the directory of `snapshot_id` under `root`, after checking it cannot leave `root`."""
    valid = validate_snapshot_id(snapshot_id)
    path = root / valid
    # The pattern already forbids separators and dot-only names; this guards the invariant itself.
    if path.parent != root or path.name != valid:
        raise InvalidRequest(f"invalid snapshot id {valid!r}", param="snapshot_id")
    return path
