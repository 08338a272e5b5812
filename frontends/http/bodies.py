"""The request bodies of the session and snapshot routes, declared once (validation and /openapi.json)."""

from __future__ import annotations

from typing import Any

from superlinear.storage.metadata import MAX_TAG, MAX_TAGS, TEXT_LIMITS, checked_field

from .contract import UNSET, Obj, Rule, body, field, given
from .fields import Bool, Custom, Id, Int, Str, require

__all__ = ["SessionCreate", "SessionResize", "SessionResizeNextPow2", "SessionRollback", "SessionFork",
           "SnapshotMetadata", "SnapshotPatch", "SnapshotLoad", "SnapshotImport", "BODIES"]

_STRATEGIES = ("auto", "gpu", "disk")


def _strategy(value: Any, where: str) -> str:
    require(isinstance(value, str) and value.strip().lower() in _STRATEGIES,
            'strategy must be one of "auto", "gpu", "disk"', where)
    return value.strip().lower()


# The published server's resize `strategy`: the memory manager places every session's KV cache itself
# (ARCHITECTURE.md), so each is accepted and the resize runs the same way.
_STRATEGY = Custom(_strategy, lambda refs: {"enum": list(_STRATEGIES)})
_STRATEGY_DOC = "accepted for the published client; placement is the server's"


def _metadata_field(name: str) -> Custom:
    """A metadata field, checked by the stores' own rule (storage/metadata.py)."""
    if name == "tags":
        schema = {"type": "array", "maxItems": MAX_TAGS, "items": {"type": "string", "maxLength": MAX_TAG}}
    else:
        schema = {"type": "string", "maxLength": TEXT_LIMITS[name]}
    return Custom(lambda value, where: checked_field(name, value), lambda refs: schema)


@body()
class SessionCreate:
    session_id: str | None = field(Id())
    max_seq_len: int | None = field(Int(1))


@body()
class SessionResize:
    max_seq_len: int = field(Int(1), required=True)
    strategy: str = field(_STRATEGY, "auto", doc=_STRATEGY_DOC)


@body()
class SessionResizeNextPow2:
    strategy: str = field(_STRATEGY, "auto", doc=_STRATEGY_DOC)


@body()
class SessionRollback:
    keep_messages: int = field(Int(0), required=True, doc="from 0 to the session's message_count; a larger "
                               "count is a 400 naming keep_messages")


@body()
class SessionFork:
    session_id: str | None = field(Id())


@body()
class SnapshotMetadata:
    """Title, description and tags; null clears one, an absent one is left as it is."""

    title: str | None = field(_metadata_field("title"), UNSET, keep_null=True)
    description: str | None = field(_metadata_field("description"), UNSET, keep_null=True)
    tags: tuple[str, ...] = field(_metadata_field("tags"), UNSET, keep_null=True)

    def changes(self) -> dict[str, Any]:
        """The fields the body gave, normalised (tags as a tuple; null tags are none)."""
        return {k: v for k, v in (("title", self.title), ("description", self.description),
                                  ("tags", self.tags)) if given(v)}


def _metadata_alone(patch: SnapshotPatch, raw: dict) -> None:
    require(patch.metadata is None or set(raw) == {"metadata"},
            "metadata must be an object of title, description and tags, given alone", "metadata")


_METADATA_ALONE = Rule(_metadata_alone, {"if": {"required": ["metadata"]}, "then": {"maxProperties": 1}})


@body(rules=(_METADATA_ALONE,))
class SnapshotPatch(SnapshotMetadata):
    """Flat title, description and tags, or the published client's `{"metadata": {...}}` alone."""

    metadata: SnapshotMetadata | None = field(Obj(SnapshotMetadata, inline=True), nullable=False)

    def changes(self) -> dict[str, Any]:
        return self.metadata.changes() if self.metadata is not None else super().changes()


@body()
class SnapshotLoad:
    session_id: str | None = field(Id())
    force: bool = field(Bool(), False, nullable=False)


@body()
class SnapshotImport:
    path: str = field(Str(1, what="the snapshot directory's absolute path on the server"), required=True,
                      doc="absolute path of a published server's snapshot directory (manifest.json, "
                          "transcript.json, cache.pt), read by the server")


BODIES = (SessionCreate, SessionResize, SessionResizeNextPow2, SessionRollback, SessionFork, SnapshotMetadata,
          SnapshotPatch, SnapshotLoad, SnapshotImport)

