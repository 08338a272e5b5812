"""The tokenizer port: ids, incremental decoding and the chat template."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from ..values import Message

__all__ = ["TokenizerPort", "IncrementalDecoder"]


@runtime_checkable
class IncrementalDecoder(Protocol):
    """Turn a stream of ids into text without ever splitting a multi-byte character."""

    def push(self, token_id: int) -> str:
        """Add one id; return the text that is now complete."""

    def flush(self) -> str:
        """Return whatever text is still held back."""


@runtime_checkable
class TokenizerPort(Protocol):
    """Encode, decode and render chat templates."""

    @property
    def eos_token_ids(self) -> frozenset[int]:
        """Ids that end a generation."""

    @property
    def think_open(self) -> str | None:
        """The text that opens a thinking block (e.g. "<think>"), if the template has one."""

    @property
    def think_close(self) -> str | None:
        """The text that closes a thinking block (e.g. "</think>")."""

    @property
    def special_ids(self) -> frozenset[int]:
        """Ids of special tokens (the template's markers, padding, ...): never part of a reply's text."""

    @property
    def fingerprint(self) -> Mapping[str, str]:
        """Hashes that identify the vocabulary and the chat template."""

    def encode(self, text: str) -> list[int]:
        """Encode text; special-token strings in it become their ids."""

    def decode(self, ids: Sequence[int]) -> str:
        """Decode ids to text, special tokens included."""

    def token_id(self, text: str) -> int | None:
        """Return the id of a single special token, or None."""

    def decoder(self) -> IncrementalDecoder:
        """Return a fresh incremental decoder."""

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool, **kwargs: object) -> str:
        """Render messages with the chat template."""
