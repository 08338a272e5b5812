"""Top-k sigmoid routing of a few tokens in one Triton kernel (the decode step's router).

Per token: ``scores = sigmoid(x @ W.T)`` in fp32, experts chosen by top-k of ``scores + bias``, weights the
chosen raw scores, renormalised if asked, times the scaling factor. Replaces about eight small launches.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

__all__ = ["route_topk"]


@triton.jit
def _route_kernel(
    x_ptr,
    w_ptr,
    bias_ptr,
    ids_ptr,
    weights_ptr,
    E,
    H,
    scaling,
    stride_x,
    TOP_K: tl.constexpr,
    K_PAD: tl.constexpr,
    NORM: tl.constexpr,
    BLOCK_E: tl.constexpr,
    BLOCK_H: tl.constexpr,
):
    t = tl.program_id(0).to(tl.int64)
    o_e = tl.arange(0, BLOCK_E)
    e_ok = o_e < E
    o_h = tl.arange(0, BLOCK_H)
    acc = tl.zeros((BLOCK_E, BLOCK_H), dtype=tl.float32)
    for h0 in range(0, H, BLOCK_H):
        h_ok = (h0 + o_h) < H
        x = tl.load(x_ptr + t * stride_x + h0 + o_h, mask=h_ok, other=0.0).to(tl.float32)
        w = tl.load(
            w_ptr + o_e[:, None] * H + h0 + o_h[None, :], mask=e_ok[:, None] & h_ok[None, :], other=0.0
        )
        acc += w.to(tl.float32) * x[None, :]
    scores = 1.0 / (1.0 + tl.exp(-tl.sum(acc, axis=1)))
    choice = tl.where(
        e_ok, scores + tl.load(bias_ptr + o_e, mask=e_ok, other=0.0).to(tl.float32), float("-inf")
    )
    o_k = tl.arange(0, K_PAD)
    ids = tl.zeros((K_PAD,), dtype=tl.int64)
    picked = tl.zeros((K_PAD,), dtype=tl.float32)
    for j in tl.static_range(TOP_K):
        best = tl.max(choice, axis=0)
        # The lowest index among equal maxima, as torch.topk returns on ties in practice.
        idx = tl.min(tl.where(choice == best, o_e, BLOCK_E), axis=0)
        ids = tl.where(o_k == j, idx.to(tl.int64), ids)
        picked = tl.where(o_k == j, tl.sum(tl.where(o_e == idx, scores, 0.0), axis=0), picked)
        choice = tl.where(o_e == idx, float("-inf"), choice)
    if NORM:
        picked = picked / (tl.sum(picked, axis=0) + 1e-20)
    k_ok = o_k < TOP_K
    tl.store(ids_ptr + t * TOP_K + o_k, ids, mask=k_ok)
    tl.store(weights_ptr + t * TOP_K + o_k, picked * scaling, mask=k_ok)


def route_topk(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, top_k: int, norm: bool, scaling: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Route `hidden` [T, H] (rows contiguous) over `weight` [E, H] (contiguous) with selection `bias` [E];
    return (ids [T, k] int64, weights [T, k] fp32)."""
    tokens, size = hidden.shape
    experts = weight.shape[0]
    ids = torch.empty(tokens, top_k, dtype=torch.int64, device=hidden.device)
    weights = torch.empty(tokens, top_k, dtype=torch.float32, device=hidden.device)
    interpreting = os.environ.get("TRITON_INTERPRET", "0") == "1"
    # fmt: off
    _route_kernel[(tokens,)](
        hidden, weight, bias, ids, weights, experts, size, float(scaling), hidden.stride(0),
        TOP_K=top_k, K_PAD=triton.next_power_of_2(top_k), NORM=norm, BLOCK_E=triton.next_power_of_2(experts), BLOCK_H=16 if interpreting else 64,
        num_warps=4,
    )
    # fmt: on
    return ids, weights
