"""Read a snapshot directory written by the published superlinear server, without running pickled code.

Its layout: `manifest.json` (`schema_version` 1, `snapshot_id`, `created_at`, `compat`, `session`
{`current_pos`, `max_seq_len`}, `metadata` {`title`, `description`, `tags`}, `files`), `transcript.json`
({"messages": [...]}, OpenAI-style dicts) and `cache.pt`, a torch pickle of plain containers and tensors.
`cache.pt` is read with `torch.load(weights_only=True)`: only tensors, dicts, lists and scalars unpickle,
and anything else (a class, a function, a reduce call) is refused before it can run.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import attrs
import torch

from superlinear.core.errors import InvalidRequest, SnapshotError

__all__ = ["PublishedSnapshot", "read_published_snapshot"]


@attrs.frozen
class PublishedSnapshot:
    """The parts of a published snapshot that an import needs."""

    snapshot_id: str
    created_at: float
    current_pos: int
    max_seq_len: int
    metadata: dict[str, Any]
    messages: list[Any]
    cache: dict[str, Any]


def read_published_snapshot(directory: Path) -> PublishedSnapshot:
    """Read and check `directory`; raise InvalidRequest when it isn't one, SnapshotError when malformed."""
    if not directory.is_absolute():
        raise InvalidRequest(f"path must be absolute, got {str(directory)!r}", param="path")
    if not (directory / "manifest.json").is_file():
        raise InvalidRequest(f"{str(directory)!r} holds no manifest.json: not a published snapshot", param="path")
    manifest = _json(directory / "manifest.json")
    files = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
    session = manifest.get("session") if isinstance(manifest.get("session"), dict) else {}
    pos, max_len = session.get("current_pos"), session.get("max_seq_len")
    if type(pos) is not int or type(max_len) is not int or not 0 <= pos <= max_len:
        raise SnapshotError(f"manifest.json session must hold integers 0 <= current_pos <= max_seq_len, "
                            f"got {session!r}")
    transcript = _json(directory / _file_name(files, "transcript", "transcript.json"))
    messages = transcript.get("messages")
    if not isinstance(messages, list):
        raise SnapshotError("transcript.json holds no list of messages")
    cache = load_cache(directory / _file_name(files, "cache", "cache.pt"))
    if cache.get("current_pos") != pos:
        raise SnapshotError(f"cache.pt holds current_pos {cache.get('current_pos')!r}, the manifest {pos}")
    metadata = manifest.get("metadata") if isinstance(manifest.get("metadata"), dict) else {}
    created = manifest.get("created_at")
    return PublishedSnapshot(
        snapshot_id=str(manifest.get("snapshot_id") or ""),
        created_at=float(created) if isinstance(created, (int, float)) else 0.0,
        current_pos=pos,
        max_seq_len=max_len,
        metadata=metadata,
        messages=messages,
        cache=cache,
    )


def load_cache(path: Path) -> dict[str, Any]:
    """Unpickle `cache.pt` allowing only tensors and plain containers; raise SnapshotError otherwise."""
    if not path.is_file():
        raise SnapshotError(f"{path.name} is missing")
    try:
        # Mapped, not read into memory, when in torch's zip format (the default since torch 1.6).
        mapped = zipfile.is_zipfile(path)
        cache = torch.load(path, map_location="cpu", weights_only=True, mmap=mapped)
    except pickle.UnpicklingError as exc:
        raise SnapshotError(
            f"{path.name} holds something other than tensors and plain containers, so it was not read "
            f"(only weights_only unpickling is allowed){_refused_part(exc)}"
        ) from exc
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise SnapshotError(f"{path.name} cannot be read as a torch file: {_first_line(exc)}") from exc
    if not isinstance(cache, dict):
        raise SnapshotError(f"{path.name} holds a {type(cache).__name__}, expected a dict")
    return cache


def _file_name(files: dict, key: str, default: str) -> str:
    """The manifest's file name for `key`: a plain name inside the snapshot directory."""
    name = files.get(key, default)
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
        raise SnapshotError(f"manifest.json files.{key} must name a file in the snapshot directory, got {name!r}")
    return name


def _json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SnapshotError(f"{path.name} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{path.name} cannot be read as JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise SnapshotError(f"{path.name} holds no JSON object")
    return doc


def _refused_part(exc: BaseException) -> str:
    """The part of torch's refusal that names what was refused (a global, an opcode), not its advice."""
    for marker in ("Unsupported global:", "Unsupported operand"):
        at = str(exc).find(marker)
        if at >= 0:
            return ": " + str(exc)[at:].split(". ")[0].splitlines()[0].strip()
    return ""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
