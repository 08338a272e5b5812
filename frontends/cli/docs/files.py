"""Which files `/add` ingests: globs and directories expanded, binary and oversized files refused.

Expansion stops as soon as it passes the file limit, so pointing /add at a huge tree is refused at once
instead of after a long walk.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

__all__ = ["Document", "TooManyFiles", "NotText", "expand_paths", "read_document", "MAX_FILE_BYTES"]

# The server refuses request bodies over 16 MiB; a document must fit in one message with room to spare.
MAX_FILE_BYTES = 8 * 1024 * 1024
_SNIFF_BYTES = 8192


class TooManyFiles(Exception):
    """The paths name more files than one /add takes."""


class NotText(Exception):
    """The file is binary, not UTF-8, empty or too large to ingest."""


@attrs.frozen
class Document:
    """A text file read for ingest."""

    path: str
    text: str
    bytes: int
    sha256: str


def _has_magic(pattern: str) -> bool:
    return glob.has_magic(pattern)


def _walk(folder: Path) -> Iterator[Path]:
    """Yield the files under `folder`, sorted, skipping hidden files and folders (.git and the like)."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


def _matches(pattern: str) -> Iterator[Path]:
    path = Path(os.path.expanduser(pattern))
    if _has_magic(pattern):
        for match in sorted(glob.iglob(os.path.expanduser(pattern), recursive=True)):
            p = Path(match)
            yield from (_walk(p) if p.is_dir() else [p])
    elif path.is_dir():
        yield from _walk(path)
    elif path.exists():
        yield path


def expand_paths(patterns: Sequence[str], max_files: int) -> tuple[list[Path], list[str]]:
    """Return the files the patterns name (deduplicated, in order) and a message per pattern naming none.

    Raises TooManyFiles as soon as more than `max_files` files are found.
    """
    files: dict[Path, None] = {}
    problems = []
    for pattern in patterns:
        found = 0
        for path in _matches(pattern):
            found += 1
            files[path.resolve()] = None
            if len(files) > max_files:
                raise TooManyFiles(f"{pattern} names more than {max_files} files; /add takes at most {max_files} "
                                   "at once (pass --max-files N to raise the limit, or add a smaller folder)")
        if not found:
            problems.append(f"no such file or directory: {pattern}" if not _has_magic(pattern)
                            else f"no files match {pattern}")
    return list(files), problems


def read_document(path: Path) -> Document:
    """Read a UTF-8 text file; raise NotText for binary, non-UTF-8, empty or oversized files."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise NotText(f"{path}: {size} bytes is over the {MAX_FILE_BYTES // (1024 * 1024)} MiB limit per file; "
                      "split it into smaller files")
    data = path.read_bytes()
    if b"\0" in data[:_SNIFF_BYTES]:
        raise NotText(f"{path}: binary file (not text); skipped")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotText(f"{path}: not UTF-8 text; skipped") from None
    if not text.strip():
        raise NotText(f"{path}: empty; skipped")
    return Document(str(path), text, len(data), hashlib.sha256(data).hexdigest())
