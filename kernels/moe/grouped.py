"""Routed experts as grouped matrix products in Triton, with the pair layout built on the device.

The T x k (token, expert) pairs are sorted by expert and each expert's pairs padded to whole blocks of
``BLOCK_M`` rows (``moe_layout``, torch ops only: no host sync, no data-dependent shapes, so it runs
inside a CUDA graph). One kernel then runs every block against its expert's weights, read in place:

1. up: ``act[p] = relu(x[p // k] @ up[e_p].T) ** 2`` for each pair p;
2. down: ``y[p] = w_p * (act[p] @ down[e_p].T)`` in fp32;

and the caller sums ``y`` over each token's k pairs. Only the chosen experts' weights are read (a decode
step reads k experts, not all of them). The grid is sized by a bound (``cdiv(P, BLOCK_M) + min(E, P)``
blocks); programs past the real block count (read on the device) return at once.
"""

from __future__ import annotations

import attrs
import torch
import triton
import triton.language as tl

from ..common.toolkit import interpreting

__all__ = ["MoeLayout", "moe_layout", "grouped_expert_mlp", "grouped_local_expert_mlp", "supported"]


def supported(hidden: torch.Tensor) -> bool:
    """Whether the Triton path takes these activations: CUDA (or the interpreter), fp16/bf16/fp32."""
    on_device = hidden.is_cuda or interpreting()
    return on_device and hidden.dtype in (torch.float16, torch.bfloat16, torch.float32)


@attrs.frozen
class MoeLayout:
    """Pairs sorted by expert and padded to blocks: ``pairs`` [max_blocks * block_m] (pad value P),
    ``block_expert`` [max_blocks], ``n_blocks`` [1] (device), ``n_pairs`` P, ``top_k`` k."""

    pairs: torch.Tensor
    block_expert: torch.Tensor
    n_blocks: torch.Tensor
    n_pairs: int
    top_k: int
    block_m: int


def moe_layout(ids: torch.Tensor, n_experts: int, block_m: int) -> MoeLayout:
    """Sort the pairs of ``ids`` [T, k] by expert, each expert's run padded to a multiple of ``block_m``."""
    tokens, top_k = ids.shape
    flat = ids.reshape(-1)
    n_pairs = flat.numel()
    device = ids.device
    order = torch.argsort(flat, stable=True)
    counts = torch.zeros(n_experts, dtype=torch.int64, device=device)
    counts.scatter_add_(0, flat, torch.ones_like(flat))
    padded = (counts + block_m - 1) // block_m * block_m
    pad_ends = torch.cumsum(padded, 0)
    pad_starts = pad_ends - padded
    count_starts = torch.cumsum(counts, 0) - counts
    sorted_e = flat[order]
    rank = torch.arange(n_pairs, device=device) - count_starts[sorted_e]
    dest = pad_starts[sorted_e] + rank
    max_blocks = triton.cdiv(n_pairs, block_m) + min(n_experts, n_pairs)
    pairs = torch.full((max_blocks * block_m,), n_pairs, dtype=torch.int64, device=device)
    pairs.scatter_(0, dest, order)
    block_ends = pad_ends // block_m
    blocks = torch.arange(max_blocks, device=device)
    block_expert = torch.searchsorted(block_ends, blocks, right=True).clamp_(max=n_experts - 1)
    return MoeLayout(pairs, block_expert, block_ends[-1:], n_pairs, top_k, block_m)


@triton.jit
def _grouped_kernel(
    a_ptr,
    w_ptr,
    out_ptr,
    scale_ptr,
    pairs_ptr,
    block_expert_ptr,
    n_blocks_ptr,
    n_pairs,
    N,
    K,
    stride_am,
    stride_ak,
    stride_we,
    stride_wn,
    stride_wk,
    stride_om,
    stride_on,
    ROW_DIV: tl.constexpr,
    RELU2: tl.constexpr,
    SCALE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    F32: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    if pid_m >= tl.load(n_blocks_ptr):
        return
    expert = tl.load(block_expert_ptr + pid_m).to(tl.int64)
    o_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    pair = tl.load(pairs_ptr + o_m)
    m_ok = pair < n_pairs
    row = tl.where(m_ok, pair // ROW_DIV, 0)
    o_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = o_n < N
    o_k = tl.arange(0, BLOCK_K)
    p_a = a_ptr + row[:, None] * stride_am + o_k[None, :] * stride_ak
    p_w = w_ptr + expert * stride_we + o_n[None, :] * stride_wn + o_k[:, None] * stride_wk
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k_ok = (k0 + o_k) < K
        a = tl.load(p_a + k0 * stride_ak, mask=m_ok[:, None] & k_ok[None, :], other=0.0)
        w = tl.load(p_w + k0 * stride_wk, mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        if F32:
            acc += tl.dot(a.to(tl.float32), w.to(tl.float32), input_precision="ieee")
        else:
            acc += tl.dot(a.to(w.dtype), w)
    if RELU2:
        acc = tl.maximum(acc, 0.0)
        acc = acc * acc
    if SCALE:
        acc = acc * tl.load(scale_ptr + pair, mask=m_ok, other=0.0)[:, None]
    p_o = out_ptr + pair[:, None] * stride_om + o_n[None, :] * stride_on
    tl.store(p_o, acc.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


def _gemv_configs() -> list[triton.Config]:
    """Tile choices for the decode GEMV, tried once per (N, K) on the first (eager) call."""
    if interpreting():
        return [triton.Config({"BLOCK_N": 8, "BLOCK_K": 16}, num_warps=4)]
    shapes = [(16, 256, 4), (32, 128, 4), (32, 256, 4), (64, 128, 4), (8, 512, 4), (16, 512, 8), (32, 256, 8)]
    return [
        triton.Config({"BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=s)
        for n, k, w in shapes
        for s in (2, 4)
    ]


@triton.autotune(configs=_gemv_configs(), key=["N", "K", "RELU2"])
@triton.jit
def _pair_gemv_kernel(
    a_ptr,
    w_ptr,
    out_ptr,
    ids_ptr,
    scale_ptr,
    N,
    K,
    stride_am,
    stride_we,
    stride_wn,
    stride_om,
    ROW_DIV: tl.constexpr,
    RELU2: tl.constexpr,
    SCALE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    # One pair p (a few per decode step) and BLOCK_N output rows: out[p, n] = sum_k a[p // ROW_DIV, k]
    # * w[e_p, n, k]. Weight rows are read along k (contiguous), each once.
    pair = tl.program_id(0).to(tl.int64)
    expert = tl.load(ids_ptr + pair).to(tl.int64)
    o_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = o_n < N
    o_k = tl.arange(0, BLOCK_K)
    p_a = a_ptr + (pair // ROW_DIV) * stride_am + o_k
    p_w = w_ptr + expert * stride_we + o_n[:, None] * stride_wn + o_k[None, :]
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k_ok = (k0 + o_k) < K
        a = tl.load(p_a + k0, mask=k_ok, other=0.0).to(tl.float32)
        w = tl.load(p_w + k0, mask=n_ok[:, None] & k_ok[None, :], other=0.0).to(tl.float32)
        acc += w * a[None, :]
    out = tl.sum(acc, axis=1)
    if RELU2:
        out = tl.maximum(out, 0.0)
        out = out * out
    if SCALE:
        out = out * tl.load(scale_ptr + pair)
    tl.store(out_ptr + pair * stride_om + o_n, out.to(out_ptr.dtype.element_ty), mask=n_ok)


def _pair_gemv(a, w, out, ids, scale, row_div: int, relu2: bool) -> None:
    """`out[p] = act(a[p // row_div] @ w[ids[p]].T)` (times scale[p]) for each pair p; rows contiguous."""
    n_out, k_in = w.shape[1], w.shape[2]

    # The autotuner times its configs on the first call (eager, before any graph capture; the kernel
    # only writes `out`, so repeated runs are harmless) and reuses the choice for the same (N, K).
    def grid(meta):
        return (ids.numel(), triton.cdiv(n_out, meta["BLOCK_N"]))

    # fmt: off
    _pair_gemv_kernel[grid](
        a, w, out, ids, scale if scale is not None else out, n_out, k_in, a.stride(0), w.stride(0),
        w.stride(1), out.stride(0), ROW_DIV=row_div, RELU2=relu2, SCALE=scale is not None,
    )
    # fmt: on


# Up to this many (token, expert) pairs the pair-per-program GEMV runs (decode); above, the grouped GEMM.
GEMV_MAX_PAIRS = 16


def _tiles(n_pairs: int) -> dict:
    """Block sizes: few pairs (decode) -> narrow column tiles for enough programs; many -> big tiles."""
    if interpreting():
        return dict(block_m=16, block_n=16, block_k=16, num_warps=4, num_stages=1)
    if n_pairs <= 64:
        return dict(block_m=16, block_n=32, block_k=128, num_warps=4, num_stages=4)
    return dict(block_m=64, block_n=128, block_k=64, num_warps=4, num_stages=3)


def _launch(a, w, out, scale, layout: MoeLayout, row_div: int, relu2: bool, tiles: dict) -> None:
    n_out, k_in = w.shape[1], w.shape[2]
    grid = (layout.block_expert.numel(), triton.cdiv(n_out, tiles["block_n"]))
    # fmt: off
    _grouped_kernel[grid](
        a, w, out, scale if scale is not None else out, layout.pairs, layout.block_expert, layout.n_blocks,
        layout.n_pairs, n_out, k_in, a.stride(0), a.stride(1), *w.stride(), out.stride(0), out.stride(1),
        ROW_DIV=row_div, RELU2=relu2, SCALE=scale is not None, BLOCK_M=tiles["block_m"],
        BLOCK_N=tiles["block_n"], BLOCK_K=tiles["block_k"], F32=interpreting() or a.dtype == torch.float32,
        num_warps=tiles["num_warps"], num_stages=tiles["num_stages"],
    )
    # fmt: on


def grouped_expert_mlp(
    hidden: torch.Tensor, up: torch.Tensor, down: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Weighted sum of the chosen experts' ``down(relu(up(x)) ** 2)``; fp32 [T, H].

    hidden [T, H]; up [E, I, H]; down [E, H, I]; ids [T, k] long; weights [T, k] fp32.
    """
    tokens, top_k = ids.shape
    n_pairs = tokens * top_k
    scale = weights.reshape(-1).to(torch.float32).contiguous()
    if n_pairs <= GEMV_MAX_PAIRS and up.stride(2) == 1 and down.stride(2) == 1:
        return _decode_mlp(hidden, up, down, ids.reshape(-1).contiguous(), scale, top_k)
    tiles = _tiles(n_pairs)
    layout = moe_layout(ids, up.shape[0], tiles["block_m"])
    act = torch.empty(n_pairs, up.shape[1], dtype=hidden.dtype, device=hidden.device)
    _launch(hidden, up, act, None, layout, top_k, True, tiles)
    out = torch.empty(n_pairs, down.shape[1], dtype=torch.float32, device=hidden.device)
    _launch(act, down, out, scale, layout, 1, False, tiles)
    return out.view(tokens, top_k, -1).sum(1)


def _decode_mlp(hidden, up, down, flat_ids, scale, top_k: int) -> torch.Tensor:
    """Few pairs: one GEMV program row-block per pair and expert, no sorting or padding; fp32 [T, H]."""
    n_pairs = flat_ids.numel()
    hidden = hidden.contiguous()
    act = torch.empty(n_pairs, up.shape[1], dtype=hidden.dtype, device=hidden.device)
    _pair_gemv(hidden, up, act, flat_ids, None, top_k, True)
    out = torch.empty(n_pairs, down.shape[1], dtype=torch.float32, device=hidden.device)
    _pair_gemv(act, down, out, flat_ids, scale, 1, False)
    return out.view(-1, top_k, down.shape[1]).sum(1)


def grouped_local_expert_mlp(
    hidden: torch.Tensor,
    up: torch.Tensor,
    down: torch.Tensor,
    ids: torch.Tensor,
    weights: torch.Tensor,
    first: int,
) -> torch.Tensor:
    """``grouped_expert_mlp`` for a share of the experts: ``up``/``down`` hold experts ``first ..
    first + E_local - 1`` of the routing, and pairs routed to any other expert contribute 0; fp32 [T, H].

    hidden [T, H]; up [E_local, I, H]; down [E_local, H, I]; ids [T, k] long (global expert ids);
    weights [T, k] fp32. The other experts' pairs go to a sentinel expert sorted last, whose blocks lie
    past the real block count and are skipped: only the local experts chosen are read or computed. No
    host sync (expert-parallel decode stays graph-capturable).
    """
    tokens, top_k = ids.shape
    n_local, n_pairs = up.shape[0], tokens * top_k
    local = ids - first
    local = torch.where((local >= 0) & (local < n_local), local, n_local)
    tiles = _tiles(n_pairs)
    block_m = tiles["block_m"]
    layout = moe_layout(local, n_local + 1, block_m)
    counts = torch.zeros(n_local + 1, dtype=torch.int64, device=ids.device)
    counts.scatter_add_(0, local.reshape(-1), torch.ones_like(local.reshape(-1)))
    real_blocks = ((counts[:n_local] + block_m - 1) // block_m).sum().reshape(1)
    layout = attrs.evolve(layout, n_blocks=real_blocks)
    scale = weights.reshape(-1).to(torch.float32).contiguous()
    act = torch.empty(n_pairs, up.shape[1], dtype=hidden.dtype, device=hidden.device)
    _launch(hidden, up, act, None, layout, top_k, True, tiles)
    # Pairs of other experts are never written: they stay 0 in the sum over each token's k pairs.
    out = torch.zeros(n_pairs, down.shape[1], dtype=torch.float32, device=hidden.device)
    _launch(act, down, out, scale, layout, 1, False, tiles)
    return out.view(tokens, top_k, -1).sum(1)
