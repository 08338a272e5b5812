"""Batched decode as one CUDA-graph replay per batch-size bucket: `BatchedGraphs`.

`decode_rows` is the batched decode step with nothing that syncs with the host: B token ids and B device
positions in static buffers, embeddings, norms, projections and MoE on [B, 1, H] together, and what
touches a row's own buffers through device tables of offsets (tables built on the host, `row_tables`):
on CUDA (or under the Triton interpreter) the KV writes of all rows are one launch (`kernels.kv_rows`),
the Superlinear attention of all rows one batched decode, each row at its own position over its own KV
buffer (`span.decode.triton_decode_rows`), and Mamba-2 layers three launches (`kernels.mamba.decode_rows`);
elsewhere the rows' stacked PyTorch Mamba update (`batch.mamba_rows`) and attention row by row.

`BatchedGraphs.step` pads a batch of n rows to the smallest bucket >= n (1, 2, 4, ... 64) with inert rows:
they run on a small scratch state, zeroed before every step that has them, at position 0; their outputs
are dropped, so they never touch a real state (the tests check that the padded step gives every real row
what the eager unpadded step gives it). When every per-row part is batched (`rows_batched`: CUDA or the
interpreter, fused Mamba decode, Superlinear attention in fp16/bf16), each bucket's offset tables live in
one device tensor refreshed in place before each step (`SharedTables`), counted from the scratch state's
buffers: a graph then reads no row's address, and its key is (bucket, the batched decode's capacity: a
power of two >= every row's KV capacity). Sessions joining or leaving and KV buffers growing replay the
same graph; only a row passing that capacity records a new one (log-many). Otherwise a graph holds the
addresses of the rows' buffers and is keyed by the bucket and every row's buffers (as `GraphedDecoder`
keys by one state's). Up to `max_graphs` are kept (LRU). With `capture=False` (CPU, tests) a "graph" is
the same function replayed eagerly on the same static buffers, so the bookkeeping is the same on any
device.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Mapping, Sequence

import attrs
import torch

from superlinear.kernels import kv_rows, superlinear_attention
from superlinear.kernels import mamba as mamba_decode
from superlinear.kernels.mamba import decode_rows as mamba_rows_kernels
from superlinear.kernels.superlinear.search.prefill import supports
from superlinear.kernels.superlinear.search.tables import prefill_capacity
from superlinear.kernels.superlinear.span.decode import triton_decode_rows

from .attention import DenseAttention, SuperlinearAttention
from .batch import mamba_rows, project_rows
from .graphs import buffer_key
from .mamba import Mamba2Mixer
from .model import HybridLM
from .state import HybridState, KVCache, MambaCache

__all__ = ["BUCKETS", "BatchedGraphs", "bucket_for", "decode_rows", "row_tables", "rows_batched"]

log = logging.getLogger(__name__)

BUCKETS = (1, 2, 4, 8, 16, 32, 64)
SCRATCH_TOKENS = 256  # the scratch state's KV capacity: padded rows write at position 0 only


def bucket_for(rows: int, buckets: Sequence[int] = BUCKETS) -> int:
    """The smallest bucket that holds `rows` rows; ValueError past the largest (callers split first)."""
    if rows < 1:
        raise ValueError(f"a batch needs at least one row, got {rows}")
    for size in sorted(buckets):
        if size >= rows:
            return size
    raise ValueError(f"{rows} rows exceed the largest bucket {max(buckets)}")


Tables = Mapping[int, tuple[torch.Tensor, ...]]
Anchors = Mapping[int, tuple[torch.Tensor, torch.Tensor]]


def rows_batched(lm: HybridLM) -> bool:
    """Whether every per-row part of `lm`'s decode step is one launch for all rows reading device offset
    tables (so a step depends on the rows only through the tables' values): on the kernels' device, every
    Mamba-2 layer on its fused decode, every attention layer Superlinear in a dtype of its Triton kernels."""
    if not _on_kernels(lm.device):
        return False
    for block in lm.layers:
        if block.kind == "M" and not block.mixer.fused_decode:
            return False
        if block.kind == "*":
            probe = torch.empty(1, 1, 1, block.mixer.head_dim, dtype=lm.dtype, device=lm.device)
            if not (isinstance(block.mixer, SuperlinearAttention) and supports(probe, probe)):
                return False
    return True


def _anchors(lm: HybridLM, state: HybridState) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Per attention / Mamba-2 layer, the two buffers of `state` the rows' offsets count from."""
    anchors = {}
    for i, block in enumerate(lm.layers):
        cache = state.layers[i]
        if block.kind == "*":
            anchors[i] = (cache.k, cache.v)
        elif block.kind == "M":
            anchors[i] = (cache.conv[0], cache.ssm[0])
    return anchors


def _row_buffers(kind: str, caches: Sequence) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    if kind == "*":
        return [c.k for c in caches], [c.v for c in caches]
    return [c.conv[0] for c in caches], [c.ssm[0] for c in caches]


class SharedTables:
    """One bucket's offset tables in one device tensor, refreshed in place for the rows of each step.

    Offsets count from the anchors (the scratch state's buffers, which live as long as the graphs), so
    the launches a graph records read only the anchors and this tensor: any rows, any buffer growth,
    same graph. Per attention layer: K and V offsets and KV capacities; per Mamba-2 layer: conv window
    and SSM state offsets. One host-to-device copy per step.
    """

    def __init__(self, lm: HybridLM, anchors: Anchors, size: int):
        self.lm, self.anchors = lm, anchors
        self.device = torch.zeros(sum(3 if lm.layers[i].kind == "*" else 2 for i in anchors), size,
                                  dtype=torch.int64, device=lm.device)
        self.tables: dict[int, tuple[torch.Tensor, ...]] = {}
        row = 0
        for i in anchors:
            n = 3 if lm.layers[i].kind == "*" else 2
            self.tables[i] = tuple(self.device[row + j] for j in range(n))
            row += n

    def refresh(self, rows: Sequence[HybridState]) -> int:
        """Write the offsets of `rows` (host-built, one copy); return their largest KV capacity."""
        host, largest = [], 1
        for i, (a, b) in self.anchors.items():
            first, second = _row_buffers(self.lm.layers[i].kind, [s.layers[i] for s in rows])
            host.append([(t.data_ptr() - a.data_ptr()) // a.element_size() for t in first])
            host.append([(t.data_ptr() - b.data_ptr()) // b.element_size() for t in second])
            if self.lm.layers[i].kind == "*":
                host.append([t.shape[2] for t in first])
                largest = max(largest, *host[-1])
        if host:
            self.device.copy_(torch.tensor(host, dtype=torch.int64), non_blocking=False)
        return largest


def row_tables(lm: HybridLM, states: Sequence[HybridState]) -> dict[int, tuple[torch.Tensor, ...]]:
    """Per layer taking a batched kernel (on CUDA, or under the Triton interpreter): for Mamba-2, the offset
    tables of the rows' conv windows and SSM states (`kernels.mamba.decode_rows`); for attention, of their
    K and V buffers and their capacities (`kernels.kv_rows`). Built on the host, so outside any capture."""
    tables: dict[int, tuple[torch.Tensor, ...]] = {}
    if not _on_kernels(lm.device):
        return tables
    for i, block in enumerate(lm.layers):
        caches = [state.layers[i] for state in states]
        if block.kind == "M" and block.mixer.fused_decode:
            tables[i] = (mamba_rows_kernels.offsets([c.conv[0] for c in caches]),
                         mamba_rows_kernels.offsets([c.ssm[0] for c in caches]))
        elif block.kind == "*":
            caps = torch.tensor([c.capacity for c in caches], dtype=torch.int64, device=lm.device)
            tables[i] = (kv_rows.offsets([c.k for c in caches]), kv_rows.offsets([c.v for c in caches]), caps)
    return tables


def _on_kernels(device: torch.device) -> bool:
    return mamba_decode.supported(torch.empty(0, device=device))


def decode_rows(lm: HybridLM, ids: torch.Tensor, positions: torch.Tensor, states: Sequence[HybridState],
                tables: Tables | None = None, anchors: Anchors | None = None,
                capacity: int | None = None) -> torch.Tensor:
    """One token per row: `ids` [B, 1], device `positions` [B], `states[b]` with KV room for its token.

    Updates every row's caches; returns fp32 logits [B, V]. Leaves cursors and logits alone and never syncs
    with the host given the rows' `tables` (`row_tables`; built here when None), so it can be captured; a
    state may appear more than once (the padded rows share the scratch). With `anchors` (per layer, the
    buffers the tables' offsets count from; default row 0's) the batched kernels take those as their
    base pointers; `capacity` (default the rows' largest KV capacity) bounds every position the batched
    Superlinear decode serves (`triton_decode_rows`).
    """
    if tables is None:
        tables = row_tables(lm, states)
    hidden = lm.embeddings(ids)  # [B, 1, H]
    for i, block in enumerate(lm.layers):
        caches = [state.layers[i] for state in states]
        normed = block.norm(hidden)
        if block.kind == "*":
            mixed = attention_rows_at(block.mixer, normed, caches, positions, tables.get(i),
                                      anchors.get(i) if anchors else None, capacity)
        elif block.kind == "M":
            mixed = mamba_rows_fused(block.mixer, normed, caches, tables.get(i), anchors.get(i) if anchors else None)
        else:
            mixed = block.mixer(normed)
        hidden = hidden + mixed
    return lm.lm_head(lm.norm_f(hidden)).float()[:, 0]


def attention_rows_at(
    att: DenseAttention, hidden: torch.Tensor, caches: Sequence[KVCache], positions: torch.Tensor,
    table: tuple[torch.Tensor, ...] | None = None, anchors: tuple[torch.Tensor, torch.Tensor] | None = None,
    capacity: int | None = None,
) -> torch.Tensor:
    """Projections of all rows together; every row's KV written at its device position (with `table`: one
    launch for all rows, `kernels.kv_rows`), then the attention of every row over its whole buffer: with
    `table` and Superlinear attention in a Triton dtype one batched decode for all rows
    (`triton_decode_rows`), else row by row."""
    batch = hidden.shape[0]
    q1, q2, k, v = project_rows(att, hidden)
    superlinear = q1 is not None
    keys, values = [c.k for c in caches], [c.v for c in caches]
    if table is not None:
        kv_rows.write_kv_rows(k, v, keys, values, table, positions, anchors)
        if superlinear and supports(q2, keys[0]):
            out = triton_decode_rows(q1, q2, keys, values, positions, att.params, tables=table, anchors=anchors,
                                     capacity=capacity)
            return att.o_proj(out.transpose(1, 2).reshape(batch, 1, -1))
    outs = []
    for b, cache in enumerate(caches):
        where = positions[b : b + 1]
        if table is None:
            keys, values = cache.write_at(where, k[b : b + 1], v[b : b + 1])
        else:
            keys, values = cache.k, cache.v
        if superlinear:
            outs.append(superlinear_attention(q1[b : b + 1], q2[b : b + 1], keys, values, where,
                                              params=att.params, block_q=att.block_q))
        else:
            visible = (torch.arange(keys.shape[2], device=keys.device) <= where)[None, :]
            outs.append(torch.nn.functional.scaled_dot_product_attention(
                q2[b : b + 1], keys, values, attn_mask=visible, enable_gqa=True))
    out = torch.cat(outs).to(q2.dtype)  # [B, HQ, 1, D]
    return att.o_proj(out.transpose(1, 2).reshape(batch, 1, -1))


def mamba_rows_fused(m: Mamba2Mixer, hidden: torch.Tensor, caches: Sequence[MambaCache],
                     table: tuple[torch.Tensor, torch.Tensor] | None,
                     anchors: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """One token per row through a Mamba-2 mixer: in_proj/out_proj for all rows together; with `table`
    (CUDA, or the Triton interpreter) the three batched decode kernels on the rows' own states in place,
    else the stacked PyTorch update. The kernels read only the first buffer of each list, the base of
    the table's offsets: `anchors` (conv window, SSM state) when given, else row 0's."""
    if table is None:
        return mamba_rows(m, hidden, caches)
    windows, states = ([anchors[0]], [anchors[1]]) if anchors else _row_buffers("M", caches)
    batch = hidden.shape[0]
    proj = m.in_proj(hidden).reshape(batch, -1)
    z, xbc, dt = proj.split([m.inner, m.conv_dim, m.num_heads], dim=-1)
    kernels = mamba_rows_kernels
    xbc = kernels.conv_rows(xbc, windows, table[0], m.conv1d.weight[:, 0], m.conv1d.bias)
    y = kernels.ssm_rows(xbc, dt, states, table[1], m.A_log, m.D, m.dt_bias, m.n_groups,
                         m.time_step_limit)
    y = kernels.gated_rms_norm_batch(y, z, m.norm.weight, m.n_groups, m.eps, hidden.dtype)
    return m.out_proj(y.view(batch, 1, m.inner))


@attrs.define(eq=False)
class _Recorded:
    replay: Callable[..., object]  # (rows, tables, anchors, capacity); a graph ignores them
    logits: torch.Tensor  # [bucket, V] fp32, written by each replay
    tables: Tables  # the offset tables a graph reads (kept alive with it)


@attrs.define(eq=False)
class _Prepared:
    key: tuple  # the graph key of the step
    tables: Tables | None  # None: built from the rows when the step runs (not for a replay)
    anchors: Anchors | None = None
    capacity: int | None = None


class BatchedGraphs:
    """Batched one-token decode steps of `lm` as graph replays, one static buffer set per bucket."""

    def __init__(self, lm: HybridLM, *, buckets: Sequence[int] = BUCKETS, max_graphs: int = 8,
                 capture: bool | None = None):
        self.lm = lm
        self.buckets = tuple(sorted(buckets))
        self.max_graphs = max_graphs
        self.capture = lm.device.type == "cuda" if capture is None else capture
        if self.capture and lm.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a model on CUDA, not {lm.device}")
        self.scratch = HybridState.empty(lm.config, SCRATCH_TOKENS, device=lm.device, dtype=lm.dtype)
        self.scratch.reserve(SCRATCH_TOKENS)
        self._ids = {n: torch.zeros(n, 1, dtype=torch.long, device=lm.device) for n in self.buckets}
        self._positions = {n: torch.zeros(n, dtype=torch.long, device=lm.device) for n in self.buckets}
        self._shared: dict[int, SharedTables] = {}
        self._graphs: collections.OrderedDict[tuple, _Recorded] = collections.OrderedDict()
        self.captures = 0  # graphs recorded so far (for tests and benchmarks)

    @property
    def largest(self) -> int:
        return self.buckets[-1]

    def step(self, states: Sequence[HybridState], tokens: Sequence[int]) -> torch.Tensor:
        """Append `tokens[b]` to `states[b]` (at most `largest` rows, distinct states, checked by the
        caller); return fp32 logits [n, V], also each state's new logits."""
        n = len(states)
        size = bucket_for(n, self.buckets)
        for state in states:
            state.reserve(state.cursor + 1)
        cursors = [state.cursor for state in states]
        pad = size - n
        host = torch.tensor([list(tokens) + [0] * pad, cursors + [0] * pad], dtype=torch.long)
        self._ids[size].copy_(host[0, :, None])
        self._positions[size].copy_(host[1])
        rows = [*states, *([self.scratch] * pad)]
        if pad:  # padded rows start clean (one multi-tensor launch, before the step or its replay)
            torch._foreach_zero_(buffer_key_tensors(self.scratch))
        prepared = self._prepare(size, rows)
        recorded = self._graphs.get(prepared.key)
        if recorded is None:
            logits = self._eager_then_record(size, rows, prepared)[:n]
        else:
            self._graphs.move_to_end(prepared.key)
            recorded.replay(rows, prepared)
            logits = recorded.logits[:n].clone()
        for state, pos, row in zip(states, cursors, logits, strict=True):
            state.cursor = pos + 1
            state.logits = row.clone()
        return logits

    def _prepare(self, size: int, rows: Sequence[HybridState]) -> _Prepared:
        """The step's tables and graph key. When every per-row part is batched (`rows_batched`), the
        bucket's shared tables are refreshed in place and the key is (bucket, the Superlinear decode's
        capacity, a power of two >= every row's KV capacity): joins, leaves and KV growth within it
        replay the same graph. Otherwise the key names every row's buffers (addresses and shapes)."""
        if rows_batched(self.lm):
            shared = self._shared.get(size)
            if shared is None:
                shared = self._shared[size] = SharedTables(self.lm, _anchors(self.lm, self.scratch), size)
            capacity = prefill_capacity(shared.refresh(rows))
            return _Prepared((size, "shared", capacity), shared.tables, shared.anchors, capacity)
        return _Prepared((size, tuple(buffer_key(s) for s in rows)), None)

    def _run(self, size: int, rows: Sequence[HybridState], prepared: _Prepared) -> torch.Tensor:
        """The step on the static buffers of `size`."""
        tables = prepared.tables if prepared.tables is not None else row_tables(self.lm, rows)
        return decode_rows(self.lm, self._ids[size], self._positions[size], rows, tables, prepared.anchors,
                           prepared.capacity)

    def _eager_then_record(self, size: int, rows: Sequence[HybridState], prepared: _Prepared) -> torch.Tensor:
        """Run the step eagerly (the real result; warms every kernel), then record it for replays."""
        if prepared.tables is None:  # the tables a graph reads are built once, before capture
            prepared = attrs.evolve(prepared, tables=row_tables(self.lm, rows))
        if not self.capture:  # replays run the step on the tables prepared for the rows they get
            logits = self._run(size, rows, prepared).clone()
            out = torch.empty_like(logits)
            self._keep(prepared.key, _Recorded(lambda now, prep: out.copy_(self._run(size, now, prep)), out,
                                               prepared.tables))
            return logits
        device = self.lm.device
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            logits = self._run(size, rows, prepared).clone()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # Capture records the kernels without running them, so no state advances twice.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            out = self._run(size, rows, prepared)
        self._keep(prepared.key, _Recorded(lambda now, prep: graph.replay(), out, prepared.tables))
        return logits

    def _keep(self, key, recorded: _Recorded) -> None:
        self._graphs[key] = recorded
        self.captures += 1
        while len(self._graphs) > self.max_graphs:
            self._graphs.popitem(last=False)
        log.debug("recorded a batched decode graph for %d rows (%d kept)", key[0], len(self._graphs))

    def clear(self) -> None:
        """Drop every recorded graph (and the memory it holds)."""
        self._graphs.clear()


def buffer_key_tensors(state: HybridState) -> list[torch.Tensor]:
    """Every buffer of `state`'s caches, in layer order (the tensors `buffer_key` names)."""
    return [t for cache in state.layers if cache is not None for t in cache.buffers()]
