"""The model operations every rank runs alike, on its shard (rank 0 from the port, workers from their loop)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..hybrid.batch import mamba_rows
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
    for state in states:
        state.reserve(state.cursor + 1)
    positions = [state.cursor for state in states]
    hidden = lm.embeddings(torch.tensor(list(ids), dtype=torch.long, device=lm.device)[:, None])  # [B, 1, H]
    for i, block in enumerate(lm.layers):
        caches = [state.layers[i] for state in states]
        normed = block.norm(hidden)
        if block.kind == "*":
            rows = zip(caches, positions, strict=True)
            mixed = torch.cat(
                [block.mixer(normed[b : b + 1], cache, pos) for b, (cache, pos) in enumerate(rows)]
            )
        elif block.kind == "M":
            rows = getattr(block.mixer, "rows", None)
            mixed = rows(normed, caches) if rows is not None else mamba_rows(block.mixer, normed, caches)
        else:
            mixed = block.mixer(normed)
        hidden = hidden + mixed
    logits = lm.lm_head(lm.norm_f(hidden)).float()[:, 0]  # [B, V]
    for state, pos, row in zip(states, positions, logits, strict=True):
        state.cursor = pos + 1
        state.logits = row.clone()
