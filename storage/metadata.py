"""What both stores share about snapshot metadata: the editable fields and the SnapshotInfo view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import InvalidRequest
from ..core.ports import SnapshotManifest
from ..core.values import SnapshotInfo

__all__ = ["PATCHABLE_FIELDS", "checked_patch", "info_of"]

PATCHABLE_FIELDS = ("title", "description", "tags")


def checked_patch(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a metadata patch and return it normalised (tags as a tuple); raise InvalidRequest."""
    changes: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in PATCHABLE_FIELDS:
            raise InvalidRequest(
                f"cannot change {name!r}; only {', '.join(PATCHABLE_FIELDS)} can be edited", param=name
            )
        if name == "tags":
            changes[name] = _checked_tags(value)
        elif value is None or isinstance(value, str):
            changes[name] = value
        else:
            raise InvalidRequest(f"{name} must be a string or null", param=name)
    return changes


def _checked_tags(value: Any) -> tuple[str, ...]:
    # A bare string is iterable too; refuse it rather than store its characters as tags.
    if value is None:
        return ()
    if isinstance(value, str) or not all(isinstance(tag, str) for tag in value):
        raise InvalidRequest("tags must be a list of strings", param="tags")
    return tuple(value)


def info_of(manifest: SnapshotManifest, size: int) -> SnapshotInfo:
    """Describe a snapshot for list and get; `size` is the bytes its state takes in the store."""
    return SnapshotInfo(
        snapshot_id=manifest.snapshot_id,
        created_at=manifest.created_at,
        title=manifest.title,
        description=manifest.description,
        tags=tuple(manifest.tags),
        tokens=len(manifest.ledger),
        bytes=size,
        model=dict(manifest.model),
        message_count=len(manifest.transcript),
        max_seq_len=manifest.max_seq_len,
    )
