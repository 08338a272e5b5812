"""Streamed writing and verified reading of `state.safetensors`.

The format is safetensors: an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and [begin, end) data offsets plus `__metadata__`, then the raw tensor bytes. We write it
ourselves so each tensor goes to disk on its own, with no second full copy of the state in host RAM.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from superlinear.core.errors import SnapshotError

from .manifest import StateIndex, TensorEntry
from .space import check_full

__all__ = ["DTYPE_NAMES", "tensor_bytes", "write_state_file", "verify_state_file", "read_state_file"]

DTYPE_NAMES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
}

_HASH_CHUNK = 1 << 22


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """Return the raw little-endian bytes of one tensor, copying only when it is not contiguous on CPU."""
    # Viewing as uint8 works for every dtype (numpy has no bfloat16) and costs no copy.
    flat = tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8)
    return memoryview(flat.numpy())


def write_state_file(
    path: Path, arrays: Iterable[tuple[str, Any]], metadata: Mapping[str, str]
) -> StateIndex:
    """Write `arrays` to a new safetensors file at `path`, one tensor at a time, and fsync it."""
    tensors = _collect(arrays)
    entries, data_bytes = _layout(tensors)
    header = _header(entries, metadata)
    digest = hashlib.sha256()
    data_start = 8 + len(header)
    try:
        with open(path, "xb") as handle:
            _write(handle, digest, struct.pack("<Q", len(header)) + header)
            for _, tensor in tensors:
                _write(handle, digest, tensor_bytes(tensor))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        check_full(exc, path, data_start + data_bytes)
        raise
    return StateIndex(digest.hexdigest(), data_start + data_bytes, data_start, entries)


def _collect(arrays: Iterable[tuple[str, Any]]) -> list[tuple[str, torch.Tensor]]:
    """Materialise the (name, tensor) references (never the data) and reject unusable names or dtypes."""
    tensors: list[tuple[str, torch.Tensor]] = []
    seen: set[str] = set()
    for name, array in arrays:
        tensor = array if isinstance(array, torch.Tensor) else torch.as_tensor(array)
        if not isinstance(name, str) or not name or name == "__metadata__" or name in seen:
            raise ValueError(f"tensor name {name!r} is empty, reserved or repeated")
        if tensor.dtype not in DTYPE_NAMES:
            raise ValueError(f"tensor {name!r} has dtype {tensor.dtype}, which snapshots cannot store")
        seen.add(name)
        tensors.append((name, tensor))
    return tensors


def _layout(tensors: list[tuple[str, torch.Tensor]]) -> tuple[tuple[TensorEntry, ...], int]:
    """Place the tensors back to back in write order; return their entries and the total data size."""
    entries = []
    offset = 0
    for name, tensor in tensors:
        size = tensor.numel() * tensor.element_size()
        entries.append(
            TensorEntry(name, DTYPE_NAMES[tensor.dtype], tuple(tensor.shape), (offset, offset + size))
        )
        offset += size
    return tuple(entries), offset


def _header(entries: tuple[TensorEntry, ...], metadata: Mapping[str, str]) -> bytes:
    """Encode the JSON header, padded with spaces so the data section starts 8-byte aligned."""
    doc: dict[str, Any] = {"__metadata__": dict(metadata)}
    for entry in entries:
        doc[entry.name] = {
            "dtype": entry.dtype,
            "shape": list(entry.shape),
            "data_offsets": list(entry.offsets),
        }
    header = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return header + b" " * (-(8 + len(header)) % 8)


def _write(handle: BinaryIO, digest: Any, data: bytes | memoryview) -> None:
    handle.write(data)
    digest.update(data)


def verify_state_file(path: Path, index: StateIndex) -> None:
    """Check the size and sha256 of the state file against its index; raise SnapshotError on mismatch."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SnapshotError("state.safetensors is missing") from None
    if size != index.file_bytes:
        raise SnapshotError(
            f"state.safetensors has {size} bytes, the manifest expects {index.file_bytes} "
            "(the file is truncated or altered)"
        )
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != index.sha256:
        raise SnapshotError("state.safetensors fails its sha256 check (the file is corrupted)")


def read_state_file(path: Path, index: StateIndex) -> dict[str, torch.Tensor]:
    """Verify the state file, load it, and check the tensors match the index."""
    verify_state_file(path, index)
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise SnapshotError(f"state.safetensors cannot be read: {exc}") from exc
    expected = {entry.name: (entry.dtype, entry.shape) for entry in index.tensors}
    found = {name: (DTYPE_NAMES.get(t.dtype, str(t.dtype)), tuple(t.shape)) for name, t in tensors.items()}
    if found != expected:
        raise SnapshotError("state.safetensors does not hold the tensors its manifest lists")
    return tensors
