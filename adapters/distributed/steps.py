"""The model operations every rank runs alike, on its shard (rank 0 from the port, workers from their loop)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..hybrid.model import HybridLM
from ..hybrid.state import HybridState


def append_tokens(lm: HybridLM, state: HybridState, ids: Sequence[int], chunk_size: int) -> None:
    """Prefill ``ids`` into ``state`` in chunks of ``chunk_size``."""
    tensor = torch.tensor(list(ids), dtype=torch.long, device=lm.device)[None]
    for start in range(0, tensor.shape[1], chunk_size):
        lm(tensor[:, start : start + chunk_size], state, last_only=True)


def decode_rows(lm: HybridLM, states: Sequence[HybridState], ids: Sequence[int]) -> None:
    """Append one token to each state, one state after another (a sharded model batches no rows)."""
    for state, token in zip(states, ids, strict=True):
        lm(torch.tensor([[token]], dtype=torch.long, device=lm.device), state, last_only=True)
