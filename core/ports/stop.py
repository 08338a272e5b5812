"""The stop-rule port: per-generation observers that can end a generation."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

from ..values import SamplingParams

__all__ = ["StopRule", "StopRuleFactory", "Verdict", "CONTINUE"]


@attrs.frozen
class Verdict:
    """What a rule says after a token.

    `stop` ends the generation with `reason`. `hold` is how many trailing characters of the text so far
    must not be shown yet (a stop string may be starting). `trim` is how many trailing characters to drop
    for good when stopping (the stop string itself).
    """

    stop: bool = False
    reason: str | None = None
    hold: int = 0
    trim: int = 0


CONTINUE = Verdict()


@runtime_checkable
class StopRule(Protocol):
    """Observe each generated token and the visible text so far."""

    def observe(self, token_id: int, text: str) -> Verdict:
        """Judge the generation after one more token; `text` is the whole answer text so far."""


@runtime_checkable
class StopRuleFactory(Protocol):
    """Make a fresh rule for one generation, or None when the request does not need it."""

    def __call__(self, params: SamplingParams) -> StopRule | None: ...
