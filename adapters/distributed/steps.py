"""The model operations every rank runs alike, on its shard (rank 0 from the port, workers from their loop)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..hybrid.batch import decode_step
from ..hybrid.model import HybridLM
from ..hybrid.state import HybridState


def append_tokens(lm: HybridLM, state: HybridState, ids: Sequence[int], chunk_size: int) -> None:
    """Prefill ``ids`` into ``state`` in chunks of ``chunk_size``."""
    tensor = torch.tensor(list(ids), dtype=torch.long, device=lm.device)[None]
    for start in range(0, tensor.shape[1], chunk_size):
        lm(tensor[:, start : start + chunk_size], state, last_only=True)


def decode_rows(lm: HybridLM, states: Sequence[HybridState], ids: Sequence[int]) -> None:
    """Append one token to each state in one forward of the sharded model: embeddings, Mamba, MLP and MoE
    run on all rows at once, attention (over each row's own sharded cache) row by row."""
    decode_step(lm, states, ids, attend=_attention_row_by_row)


def _attention_row_by_row(mixer, hidden: torch.Tensor, caches, positions: Sequence[int]) -> torch.Tensor:
    rows = zip(caches, positions, strict=True)
    return torch.cat([mixer(hidden[b : b + 1], cache, pos) for b, (cache, pos) in enumerate(rows)])
