"""The retriever port: find the passages that answer a question."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["Passage", "Retriever"]


@attrs.frozen
class Passage:
    """A piece of a source document."""

    source: str
    text: str
    score: float = 0.0


@runtime_checkable
class Retriever(Protocol):
    """Index passages and return the best ones for a query."""

    def index(self, passages: Sequence[Passage]) -> None:
        """Add passages to the index."""

    def retrieve(self, query: str, k: int) -> list[Passage]:
        """Return at most `k` passages, best first."""
