"""Decode as one CUDA-graph replay: `GraphedDecoder` captures `HybridLM.decode_logits` per set of buffers.

A decode step writes the token id and its position into static device buffers and replays a graph that
runs every layer (grouped MoE kernels, Mamba state update, attention over the whole KV buffer with the
position read on the device) and writes the logits into a static output. Nothing in the step syncs with
the host. A graph holds the addresses of the state's buffers, so graphs are keyed by those buffers (their
addresses and shapes): KV growth (`HybridState.reserve`, before the step, outside the graph) or another
state gives a new key, whose first step runs eagerly (compiling kernels, building the attention tables)
and is then captured; a new state that the allocator places on the same buffers replays the same graph.
"""

from __future__ import annotations

import collections
import logging

import attrs
import torch

from .model import HybridLM
from .state import HybridState

__all__ = ["GraphedDecoder", "graphable"]

log = logging.getLogger(__name__)

BufferKey = tuple[tuple[int, tuple[int, ...]], ...]


@attrs.define(eq=False)
class _Captured:
    graph: torch.cuda.CUDAGraph
    logits: torch.Tensor  # [1, V] fp32, written by each replay


def graphable(lm: HybridLM) -> bool:
    """Whether `lm`'s decode step can be captured: on CUDA, and for Superlinear attention in fp16/bf16
    (the dtypes of its Triton kernels; other dtypes run the reference, which syncs with the host)."""
    if lm.device.type != "cuda":
        return False
    return not lm.config.is_superlinear or lm.dtype in (torch.float16, torch.bfloat16)


def buffer_key(state: HybridState) -> BufferKey:
    """Addresses and shapes of every tensor a captured step touches, in layer order."""
    key = []
    for cache in state.layers:
        if cache is not None:
            key.extend((t.data_ptr(), tuple(t.shape)) for t in cache.buffers())
    return tuple(key)


class GraphedDecoder:
    """One-token decode steps of `lm` (on CUDA) as CUDA-graph replays; at most `max_graphs` kept (LRU)."""

    def __init__(self, lm: HybridLM, max_graphs: int = 4):
        if lm.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a model on CUDA, not {lm.device}")
        self.lm = lm
        self.max_graphs = max_graphs
        self.ids = torch.zeros(1, 1, dtype=torch.long, device=lm.device)
        self.position = torch.zeros(1, dtype=torch.long, device=lm.device)
        self._graphs: collections.OrderedDict[BufferKey, _Captured] = collections.OrderedDict()
        self.captures = 0  # graphs captured so far (for tests and benchmarks)

    def step(self, state: HybridState, token: int) -> torch.Tensor:
        """Append `token` to `state` (cursor and logits advance); return the new logits [V] fp32."""
        pos = state.cursor
        state.reserve(pos + 1)
        self.ids.fill_(token)
        self.position.fill_(pos)
        key = buffer_key(state)
        captured = self._graphs.get(key)
        if captured is None:
            logits = self._eager_then_capture(state, key)
        else:
            self._graphs.move_to_end(key)
            captured.graph.replay()
            logits = captured.logits[-1].clone()
        state.cursor = pos + 1
        state.logits = logits
        return logits

    def _eager_then_capture(self, state: HybridState, key: BufferKey) -> torch.Tensor:
        """Run this step eagerly (the real result; also warms every kernel), then capture it unexecuted."""
        side = torch.cuda.Stream(device=self.lm.device)
        side.wait_stream(torch.cuda.current_stream(self.lm.device))
        with torch.cuda.stream(side):
            logits = self.lm.decode_logits(self.ids, self.position, state)[-1].clone()
        torch.cuda.current_stream(self.lm.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # Capture records the kernels without running them, so the state is not advanced twice.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            out = self.lm.decode_logits(self.ids, self.position, state)
        self._graphs[key] = _Captured(graph, out)
        self.captures += 1
        while len(self._graphs) > self.max_graphs:
            self._graphs.popitem(last=False)
        log.debug("captured a decode graph (%d kept)", len(self._graphs))
        return logits

    def clear(self) -> None:
        """Drop every captured graph (and the memory it holds)."""
        self._graphs.clear()
