"""Differentiable Superlinear attention prefill: Triton forward that keeps its statistics, Triton backward.

``triton_trainable`` serves ``attention.trainable.superlinear_attention_trainable`` (the training entry
point beside ``superlinear_attention``): the same arguments and result, and gradients for Q1, Q2, K and V
(docs/attention-backward.md). The forward runs
the span search (``search.prefill.search_spans``, which records each slot's anchor), then attends the
window and the k spans as k + 1 interval rows per query in one ``span.prefill.span_attention`` pass, and
merges and gates them here. It keeps each interval's normalized output and log2-sum-exp (O(LQ * HQ *
(k + 1) * D) floats, no [LQ, LKV] tensor). The backward folds the merge and the gate into one
log-normalizer and one ``delta`` per interval row and runs ``span.backward.interval_backward``
(FlashAttention-2 style: probabilities recomputed, never stored); the gate's gradient in the selected
scores goes to Q1 and K through ``search.backward.score_backward``.

Triton runs on CUDA for fp16/bf16 (fp32 statistics and accumulation) and, under ``TRITON_INTERPRET=1``,
on CPU for fp16/bf16/fp32 (tests). Everything else runs the PyTorch reference, which autograd
differentiates directly. The discrete top-k choice gets no gradient in either path.
"""

import math

import torch

from ..params import SuperlinearParams
from ..search.backward import score_backward
from ..search.prefill import TRITON_DTYPES, SpanRoutes, interpreting, search_spans, supports
from ..search.tables import prefill_capacity, routing_tables
from ..span.backward import interval_backward
from ..span.prefill import span_attention
from .reference import superlinear_attention_reference

LN2 = math.log(2.0)


def trainable_on_triton(Q2: torch.Tensor, K: torch.Tensor) -> bool:
    """Whether the Triton forward/backward take these tensors (else the differentiable reference runs)."""
    if interpreting() and Q2.dtype == torch.float32 and K.dtype == torch.float32:
        return Q2.shape[-1] <= 128
    return supports(Q2, K) and Q2.dtype in TRITON_DTYPES


def triton_trainable(
    Q1, Q2, K, V, cache_position, attention_mask, params: SuperlinearParams, block_m: int = 64
):
    """Superlinear attention with gradients through the Triton kernels; the reference where unsupported.

    Arguments as ``superlinear_attention_reference`` (assumed validated); returns [B, HQ, LQ, D].
    """
    if not trainable_on_triton(Q2, K) or Q2.shape[2] == 0:
        return superlinear_attention_reference(Q1, Q2, K, V, cache_position, attention_mask, params)
    positions = cache_position.to(device=Q2.device, dtype=torch.int64)
    return _TrainableAttention.apply(Q1, Q2, K, V, positions, attention_mask, params, block_m)


class _TrainableAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, Q1, Q2, K, V, positions, attention_mask, params, block_m):
        tables = routing_tables(params, prefill_capacity(K.shape[2]), Q2.device)
        routes = search_spans(Q1, K, positions, attention_mask, tables, params.num_spans)
        lo, hi = _intervals(routes, positions, tables.window, K.shape[2])
        interval_out, interval_lse = span_attention(
            Q2, K, V, SpanRoutes(lo, hi, routes.scores, routes.starts), block_m=block_m
        )
        gate = _gate(routes, interval_lse)
        out = torch.einsum("bhqs,bhqsd->bhqd", gate.coefficients, interval_out)
        ctx.save_for_backward(Q1, Q2, K, V, lo, hi, routes.anchors, interval_out, interval_lse, gate.g)
        ctx.longest, ctx.block_m = tables.longest, block_m
        return out.to(Q2.dtype)

    @staticmethod
    def backward(ctx, d_out):
        Q1, Q2, K, V, lo, hi, anchors, interval_out, interval_lse, g = ctx.saved_tensors
        d_out = d_out.contiguous()
        rows = _row_statistics(d_out, interval_out, interval_lse, g)
        dq2, dk, dv = interval_backward(
            Q2, K, V, d_out, lo, hi, rows.lse2, rows.delta, ctx.longest, block_m=ctx.block_m
        )
        dq1, dk = score_backward(Q1, K, anchors, rows.d_scores, dk=dk)
        return dq1.to(Q1.dtype), dq2.to(Q2.dtype), dk.to(K.dtype), dv.to(V.dtype), None, None, None, None


def _intervals(routes: SpanRoutes, positions, window: int, kv_len: int):
    """The k spans and the window ``[ws, q]`` as k + 1 intervals per row: lo, hi [B, HQ, LQ, k + 1] int32.

    An empty window (W = 0, or a query before ``start``) gets ``lo = LKV > hi = -1``, as invalid slots do.
    """
    batch, q_heads, q_len, _ = routes.lo.shape
    ws = torch.maximum(positions[None, :] - window + 1, routes.starts[:, None])  # [B, LQ]
    q = positions[None, :].expand(batch, q_len)
    empty = ws > q
    w_lo = torch.where(empty, kv_len, ws).to(torch.int32)[:, None, :, None].expand(batch, q_heads, q_len, 1)
    w_hi = torch.where(empty, -1, q).to(torch.int32)[:, None, :, None].expand(batch, q_heads, q_len, 1)
    return torch.cat([routes.lo, w_lo], dim=-1).contiguous(), torch.cat(
        [routes.hi, w_hi], dim=-1
    ).contiguous()


class _Gate:
    """The gate of every row: g [B, HQ, LQ, k] and the merge shares of window and spans.

    Slot i's merged output is ``M_i = share_w_i O_w + share_i O_i`` (log-sum-exp weights), and the output
    ``O = sum_i g_i M_i = coefficients . [O_1 .. O_k, O_w]``.
    """

    def __init__(self, g, share_w, share, merged_lse2):
        self.g, self.share_w, self.share, self.merged_lse2 = g, share_w, share, merged_lse2

    @property
    def coefficients(self) -> torch.Tensor:
        window = (self.g * self.share_w).sum(dim=-1, keepdim=True)
        return torch.cat([self.g * self.share, window], dim=-1)


def _gate(routes: SpanRoutes, interval_lse: torch.Tensor) -> _Gate:
    valid = routes.lo <= routes.hi
    logits = routes.scores.masked_fill(~valid, float("-inf"))
    logits = torch.where(valid.any(dim=-1, keepdim=True), logits, torch.zeros_like(logits))
    return _merge(torch.softmax(logits, dim=-1), interval_lse)


def _merge(g, interval_lse) -> _Gate:
    lse_w, lse_s = interval_lse[..., -1:], interval_lse[..., :-1]
    merged = torch.logaddexp2(lse_w.expand_as(lse_s), lse_s)
    finite = torch.isfinite(merged)
    safe = torch.where(finite, merged, 0.0)
    share_w = torch.where(finite, torch.exp2(lse_w - safe), 0.0)
    share = torch.where(finite, torch.exp2(lse_s - safe), 0.0)
    return _Gate(g, share_w, share, merged)


class _Rows:
    """Per interval row: base-2 log-normalizer and delta of the folded softmax; and the scores' gradient."""

    def __init__(self, lse2, delta, d_scores):
        self.lse2, self.delta, self.d_scores = lse2, delta, d_scores


def _row_statistics(d_out, interval_out, interval_lse, g) -> _Rows:
    """Fold merge and gate into each interval row's softmax (docs/attention-backward.md, "Backward").

    Span row i: ``lse2 = L'_i - log2 g_i``, ``delta = Delta_i``. Window row: ``lse2 = -log2 sum_i g_i
    2 ** -L'_i`` and ``delta`` the average of the ``Delta_i`` with weights ``g_i 2 ** -L'_i``. With
    ``Delta_i = dO . M_i``; the scores get ``g_i (Delta_i - sum_j g_j Delta_j)``.
    """
    gate = _merge(g, interval_lse)
    dots = torch.einsum("bhqd,bhqsd->bhqs", d_out.float(), interval_out)  # dO . O_i, last: dO . O_w
    delta_slots = gate.share_w * dots[..., -1:] + gate.share * dots[..., :-1]
    d_scores = g * (delta_slots - (g * delta_slots).sum(dim=-1, keepdim=True))
    log_g = torch.where(g > 0, torch.log2(g), float("-inf"))
    alive = (g > 0) & torch.isfinite(gate.merged_lse2)
    span_lse2 = torch.where(alive, gate.merged_lse2 - log_g, float("inf"))
    window_terms = torch.where(alive, log_g - gate.merged_lse2, float("-inf"))
    window_any = torch.isfinite(window_terms).any(dim=-1, keepdim=True)
    window_lse2 = -torch.logsumexp(window_terms * LN2, dim=-1, keepdim=True) / LN2
    weights = torch.softmax(torch.where(window_any, window_terms, 0.0) * LN2, dim=-1)
    window_delta = (weights * delta_slots).sum(dim=-1, keepdim=True)
    lse2 = torch.cat([span_lse2, torch.where(window_any, window_lse2, float("inf"))], dim=-1)
    delta = torch.cat([delta_slots, window_delta], dim=-1)
    return _Rows(lse2, delta, d_scores)
