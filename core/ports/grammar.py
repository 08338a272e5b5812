"""The grammar port: constrain generation to a JSON schema or a grammar, one token at a time."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..values import Grammar

__all__ = ["GrammarPort", "TokenMatcher"]


@runtime_checkable
class TokenMatcher(Protocol):
    """Follows one generation through a grammar.

    `allowed()` is a bitmask of the ids that may come next: bit `i % 8` of byte `i // 8` is set when id
    `i` is allowed (the model's `sample` accepts it as is). End-of-turn ids are allowed once the text
    is complete, and then only they are.
    """

    def allowed(self) -> bytes:
        """Return the bitmask of the ids allowed next."""

    def advance(self, token_id: int) -> None:
        """Consume a generated id (one that `allowed` allowed)."""


@runtime_checkable
class GrammarPort(Protocol):
    """Compiles grammars against the served vocabulary."""

    def matcher(self, grammar: Grammar) -> TokenMatcher:
        """Return a fresh matcher; raise InvalidRequest saying what is wrong with a grammar it cannot enforce."""
