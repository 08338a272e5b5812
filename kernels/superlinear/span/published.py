"""The decode and span-attention entry points of the published ``superlinear`` 0.1.0, same signatures.

Every function name of the published ``superlinear.kernels.superlinear.span`` module, with its arguments
in the same order and its defaults (decode: ``sw_index=0, topk=3, backward_factor=2.0,
forward_factor=0.0``), computing the exact math of docs/attention.md: decode through ``superlinear_decode``
(Triton on CUDA, the reference elsewhere), per-span attention through the reference's interval attention.
Tuning knobs (``block_k``, ``span_len_factor``, ``force_mode``) are validated and change nothing.
"""

import torch

from ...common.validation import require, require_real
from ..arguments import params_from, require_knobs, require_multihead
from ..params import SuperlinearParams
from ..search.reference import Routing, sequence_starts, window_start
from .api import superlinear_decode
from .reference import _window_and_spans, merge_by_lse, tile_keys_values

FORCE_MODES = (None, "sdpa", "span")


def decode_span_attention_staged(
    Q1: torch.Tensor,
    Q2: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    cache_position: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    sw_index: int = 0,
    topk: int = 3,
    backward_factor: float = 2.0,
    forward_factor: float = 0.0,
    *,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
) -> torch.Tensor:
    """Superlinear attention decode, multi-head (HQ == HKV): Q1, Q2 [B, H, 1, D], K, V [B, H, LKV, D].

    cache_position: [1], the query's position. Returns [B, H, 1, D] in Q2's dtype.
    """
    return _decode(locals(), enable_gqa=False)


def decode_span_attention_staged_gqa(
    Q1: torch.Tensor,
    Q2: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    cache_position: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    sw_index: int = 0,
    topk: int = 3,
    enable_gqa: bool = True,
    block_k: int = 64,
    backward_factor: float = 2.0,
    forward_factor: float = 0.0,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
    force_mode: str | None = None,
) -> torch.Tensor:
    """Superlinear attention decode, grouped KV heads (the seed README's decode call).

    Q1, Q2: [B, HQ, 1, D]; K, V: [B, HKV, LKV, D] (keys after the query are ignored); cache_position:
    [1]. ``enable_gqa=False`` requires HQ == HKV. ``force_mode`` ("sdpa", "span" or None) picks the
    published kernel's internal path; both compute this same function, so it is validated only.
    Returns [B, HQ, 1, D] in Q2's dtype.
    """
    require(force_mode in FORCE_MODES, f"force_mode must be one of {FORCE_MODES}, got {force_mode!r}")
    require(isinstance(enable_gqa, bool), f"enable_gqa must be a bool, got {enable_gqa!r}")
    require_knobs(block_k=block_k)
    return _decode(locals(), enable_gqa=enable_gqa)


def _decode(args: dict, *, enable_gqa: bool) -> torch.Tensor:
    """The one body of the published decode names; ``args`` is the caller's ``locals()``."""
    params = params_from(args, args["topk"])
    Q1, Q2, K, V = args["Q1"], args["Q2"], args["K"], args["V"]
    return superlinear_decode(
        Q1, Q2, K, V, args["cache_position"], args["attention_mask"], params=params, enable_gqa=enable_gqa
    )


def fused_span_attention(
    Q2: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    qstart: torch.Tensor,
    qend: torch.Tensor,
    cache_position: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    sw_index: int = 0,
    block_k: int = 64,
    span_len_factor: float = 2.0,
    *,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
) -> torch.Tensor:
    """Attention of each query over each given span together with its window, multi-head (HQ == HKV).

    See ``fused_span_attention_gqa``; here K, V have as many heads as Q2.
    """
    require_multihead(Q2, K, "fused_span_attention")
    return fused_span_attention_gqa(**locals())


def fused_span_attention_gqa(
    Q2: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    qstart: torch.Tensor,
    qend: torch.Tensor,
    cache_position: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    sw_index: int = 0,
    block_k: int = 64,
    span_len_factor: float = 2.0,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
) -> torch.Tensor:
    """Step 6 of docs/attention.md for given spans: attention over span ``i`` together with the window.

    Q2: [B, HQ, LQ, D]; K, V: [B, HKV, LKV, D]; qstart, qend: [B, HQ, LQ, NS] inclusive span bounds
    (``qend < 0`` or ``qstart > qend``: no span, window only), e.g. from ``span_search``; cache_position
    [LQ]. Spans must lie in ``[start, ws - 1]``, clear of the window ``[ws, q]`` of ``sw_index``
    (ValueError otherwise). ``span_len_factor`` only sizes the published kernel's buffers.
    Returns [B, HQ, LQ, NS, D] in Q2's dtype (differentiable in Q2, K, V).
    """
    require_knobs(block_k=block_k)
    require_real("span_len_factor", span_len_factor)
    params = params_from(locals())
    require(
        qstart.shape == qend.shape and qstart.dim() == 4 and qstart.shape[:3] == Q2.shape[:3],
        f"qstart, qend must be [B, HQ, LQ, NS] matching Q2 {tuple(Q2.shape)}, "
        f"got {tuple(qstart.shape)} and {tuple(qend.shape)}",
    )
    routing = _given_spans(qstart, qend, cache_position, attention_mask, K, params)
    kv = tile_keys_values(K, V)
    positions = cache_position.to(device=Q2.device, dtype=torch.int64)
    window_out, window_lse, span_out, span_lse = _window_and_spans(Q2, kv, positions, routing)
    out = merge_by_lse(window_out[..., None, :], window_lse[..., None], span_out, span_lse)
    return out.to(Q2.dtype)


def _given_spans(qstart, qend, cache_position, attention_mask, K, params: SuperlinearParams) -> Routing:
    """Wrap caller-given spans as a Routing, after checking they lie in ``[start, ws - 1]``."""
    positions = cache_position.to(device=K.device, dtype=torch.int64)
    starts = sequence_starts(attention_mask, K.shape[0], K.shape[2], K.device)
    ws = window_start(positions, starts, params.window)
    lo, hi = qstart.to(torch.int64), qend.to(torch.int64)
    valid = (hi >= 0) & (lo <= hi)
    inside = (lo >= starts[:, None, None, None]) & (hi < ws[:, None, :, None])
    require(
        bool((inside | ~valid).all()),
        f"qstart/qend: every span must lie in [start, ws - 1], before the window of sw_index="
        f"{params.sw_index} (W={params.window})",
    )
    scores = torch.zeros(lo.shape, dtype=torch.float32, device=K.device)
    return Routing(
        anchors=torch.where(valid, hi, -1),
        valid=valid,
        scores=scores,
        span_lo=torch.where(valid, lo, 0),
        span_hi=torch.where(valid, hi, -1),
        window_start=ws,
    )


def _next_power_of_two(x: int) -> int:
    """Return the smallest power of two >= ``x`` for ``x >= 1`` (the published helper's formula)."""
    return 1 << (int(x) - 1).bit_length()


def _assert_no_span_sw_overlap(
    qend,
    cache_position,
    sw_index,
    L_KV,
    *,
    window_len: int | None = None,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
):
    """Raise ValueError if a valid span end (``qend >= 0``) reaches into its query's sliding window.

    qend: [B, H, LQ, NS]; cache_position: [LQ]; the window of ``sw_index`` (or ``window_len``) ends at the
    query (clamped to ``L_KV - 1``) and starts ``W - 1`` keys before it, at 0 at the earliest.
    """
    if window_len is None:
        window_len = params_from(locals()).window
    if sw_index <= 0 or window_len <= 0:
        return
    window_end = cache_position.clamp(max=L_KV - 1).view(1, 1, -1, 1)
    window_begin = (window_end - (window_len - 1)).clamp(min=0)
    if bool(((qend >= 0) & (qend >= window_begin)).any()):
        raise ValueError("qend: span ends must lie before the sliding window start (qend < ws)")


# The published package's alias names (it forwards *args, **kwargs; these take the target's signature).
span_attention = fused_span_attention
span_attention_gqa = fused_span_attention_gqa
decode_span_attention = decode_span_attention_staged
decode_span_attention_gqa = decode_span_attention_staged_gqa
decode_attention = decode_span_attention_staged
decode_attention_gqa = decode_span_attention_staged_gqa
