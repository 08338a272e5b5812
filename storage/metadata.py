"""What both stores share about snapshot metadata: the editable fields and the SnapshotInfo view."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from superlinear.core.errors import InvalidRequest
from superlinear.core.ports import SnapshotManifest
from superlinear.core.values import SnapshotInfo

__all__ = ["PATCHABLE_FIELDS", "TEXT_LIMITS", "MAX_TAGS", "MAX_TAG", "checked_field", "checked_patch", "info_of"]

PATCHABLE_FIELDS = ("title", "description", "tags")
# Sizes in characters; a snapshot's metadata is listed in full by GET /v1/snapshots.
TEXT_LIMITS = {"title": 256, "description": 4096}
MAX_TAGS = 64
MAX_TAG = 64


def checked_field(name: str, value: Any) -> Any:
    """Validate one metadata field and return it normalised (tags as a tuple); raise InvalidRequest."""
    if name not in PATCHABLE_FIELDS:
        raise InvalidRequest(f"cannot change {name!r}; only {', '.join(PATCHABLE_FIELDS)} can be edited", param=name)
    if name == "tags":
        return _checked_tags(value)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string or null", param=name)
    if value is not None and len(value) > TEXT_LIMITS[name]:
        raise InvalidRequest(f"{name} may be at most {TEXT_LIMITS[name]} characters long", param=name)
    return value


def checked_patch(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a metadata patch and return it normalised (tags as a tuple); raise InvalidRequest."""
    return {name: checked_field(name, value) for name, value in fields.items()}


def _checked_tags(value: Any) -> tuple[str, ...]:
    # A bare string is iterable too; refuse it rather than store its characters as tags.
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(tag, str) for tag in value):
        raise InvalidRequest("tags must be a list of strings", param="tags")
    if len(value) > MAX_TAGS or any(len(tag) > MAX_TAG for tag in value):
        raise InvalidRequest(f"tags may hold at most {MAX_TAGS} tags of at most {MAX_TAG} characters each",
                             param="tags")
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
