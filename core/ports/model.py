"""The model port: a language model with explicit per-sequence state."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..values import ModelInfo, RawLogprob, SamplingParams

__all__ = ["ModelPort", "RowRejected"]


class RowRejected(Exception):
    """`append_batch` refused row `row` (its `error`) before running anything: no state changed."""

    def __init__(self, row: int, error: BaseException):
        super().__init__(f"row {row}: {error}")
        self.row = row
        self.error = error


@runtime_checkable
class ModelPort(Protocol):
    """A model whose sequence state (KV cache, recurrent state, next-token logits) the caller owns.

    States and checkpoints are opaque to the core. Token ids are plain ints. The arrays that
    `export_state` yields are opaque too: the core hands them to a snapshot store unread.

    Optional, not part of the protocol (the engine looks for it and runs `append` row by row without it):
    `append_batch(states, runs)` appends `runs[b]` to `states[b]` for every b in as few forwards as the
    model allows, with the result of `append` on each; a row `append` would refuse raises `RowRejected`
    before any state changes, and any other error may leave rows half-fed in a way `restore` undoes.
    """

    @property
    def info(self) -> ModelInfo:
        """Describe the model: name, vocabulary, default max length, fingerprint."""

    def new_state(self, max_seq_len: int) -> Any:
        """Create an empty sequence state that may grow up to `max_seq_len` tokens."""

    def append(self, state: Any, token_ids: Sequence[int]) -> None:
        """Run `token_ids` through the model (chunked), extending the state and its next-token logits."""

    def decode_batch(self, states: Sequence[Any], token_ids: Sequence[int]) -> None:
        """Append one token to each state in one forward (states of any lengths); same result as `append`.

        Either every state advances or, on an error, none is left half-fed in a way `restore` can't undo.
        """

    def sample(self, state: Any, params: SamplingParams, rng: random.Random, allowed: bytes | None = None) -> int:
        """Choose the next token from the state's logits (greedy when temperature is 0).

        `allowed`: a TokenMatcher's bitmask; ids outside it are never chosen."""

    def token_logprobs(self, state: Any, params: SamplingParams, token_id: int, top_n: int) -> RawLogprob:
        """Report `token_id`'s log-probability under the state's logits (with params.logit_bias, before
        temperature, top-k and top-p) and the `top_n` most likely ids; call before appending `token_id`."""

    def length(self, state: Any) -> int:
        """Return the number of tokens the state holds."""

    def max_len(self, state: Any) -> int:
        """Return the state's maximum length."""

    def resize(self, state: Any, max_seq_len: int) -> None:
        """Change the maximum length; never below the tokens held."""

    def nbytes(self, state: Any) -> int:
        """Return the bytes the state occupies now."""

    def bytes_for(self, tokens: int) -> int:
        """Return the bytes a state holding `tokens` tokens occupies (for the KV budget)."""

    def checkpoint(self, state: Any) -> Any:
        """Capture what `restore` needs to undo later appends (cheap: cursor and recurrent state)."""

    def restore(self, state: Any, checkpoint: Any) -> None:
        """Return the state exactly to a checkpoint taken from it."""

    def fork(self, state: Any) -> Any:
        """Return an independent copy of the state."""

    def export_state(self, state: Any) -> Iterator[tuple[str, Any]]:
        """Yield the state as named arrays, one at a time (KV up to the cursor, recurrent state, logits)."""

    def import_state(self, arrays: Mapping[str, Any], max_seq_len: int) -> Any:
        """Build a state from arrays produced by `export_state`."""

    def release(self, state: Any) -> None:
        """Free the state's memory now."""
