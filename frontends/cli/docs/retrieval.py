"""Retrieval for a docs workspace: passages of the documents the session holds, indexed by a retriever
plugin, searched before each question.

The index is built from the session's own transcript (the framed documents in it), so it always matches
what the model has read, also after loading a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from superlinear.core.ports import Passage, Retriever

from ..infra.client import Client
from .framing import framed_documents
from .passages import split_passages

__all__ = ["UnknownRetriever", "WorkspaceIndex"]


class UnknownRetriever(Exception):
    """No retriever plugin has the requested name."""


class WorkspaceIndex:
    """A lazily (re)built retriever over the documents of one session."""

    def __init__(self, factories: Mapping[str, Callable[..., Retriever]]):
        self.factories = factories
        self._retriever: Retriever | None = None
        self._name: str | None = None
        self.passage_count = 0
        self.document_count = 0

    def invalidate(self) -> None:
        """Forget the index; the next search rebuilds it."""
        self._retriever = None

    def _build(self, client: Client, session_id: str, name: str) -> Retriever:
        factory = self.factories.get(name)
        if factory is None:
            known = ", ".join(sorted(self.factories)) or "none"
            raise UnknownRetriever(f"no retriever named {name!r} (installed: {known})")
        messages = client.get("v1", "sessions", session_id, "history")["messages"]
        passages: list[Passage] = []
        docs = list(framed_documents(messages))
        for source, text in docs:
            passages.extend(split_passages(source, text))
        retriever = factory()
        retriever.index(passages)
        self.passage_count, self.document_count = len(passages), len(docs)
        return retriever

    def search(self, client: Client, session_id: str, name: str, query: str, k: int) -> list[Passage]:
        """Return the best `k` passages for `query` from the session's documents."""
        if self._retriever is None or self._name != name:
            self._retriever = self._build(client, session_id, name)
            self._name = name
        if not self.passage_count:
            return []
        return self._retriever.retrieve(query, k)
