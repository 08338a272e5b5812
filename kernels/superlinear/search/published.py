"""The span search entry points of the published ``superlinear`` 0.1.0, with its exact signatures.

Every name of the published ``superlinear.kernels.superlinear.search`` module. They run docs/attention.md
steps 1-5 through ``route`` (the reference search, on the tensors' device): ``qend`` is the selected
anchor, ``qstart = max(anchor - ceil(backward_factor * t ** span_power), start)``, ``values`` the
unscaled search score (fp32), best first; missing slots have ``qstart = qend = -1`` and ``values = -inf``.
The Triton names compute the same values (the search is the same function on every path); their block
sizes are validated tuning knobs.
"""

import torch

from ...common.powers import ceil_scaled_power
from ...common.validation import require
from ..arguments import params_from, require_knobs
from .reference import all_stripe_offsets, candidate_anchors, route, sequence_starts, window_start


def _search(args: dict, num_spans: int):
    """Return (qstart, qend, values) [B, HQ, LQ, k] for Q [B, HQ, LQ, D], K [B, HKV, LKV, D].

    The one body of the published search names; ``args`` is the caller's ``locals()``.
    """
    params = params_from(args, num_spans)
    Q, K, cache_position = args["Q"], args["K"], args["cache_position"]
    require(Q.dim() == 4 and K.dim() == 4, f"Q, K must be [B, H, L, D], got {Q.dim()}-d and {K.dim()}-d")
    require(
        K.shape[1] > 0 and Q.shape[1] % K.shape[1] == 0,
        f"K: query heads must be a multiple of KV heads, got HQ={Q.shape[1]}, HKV={K.shape[1]}",
    )
    positions = cache_position.to(device=Q.device, dtype=torch.int64).flatten()
    require(positions.numel() == Q.shape[2], "cache_position: one position per query")
    if positions.numel() == 0:
        empty = torch.empty(*Q.shape[:3], params.num_spans, dtype=torch.int64, device=Q.device)
        return empty, empty.clone(), empty.float()
    require(int(positions.max()) < K.shape[2], f"cache_position: positions must be < LKV={K.shape[2]}")
    starts = sequence_starts(args["attention_mask"], K.shape[0], K.shape[2], Q.device)
    offsets = all_stripe_offsets(params, int(positions.max()))
    routing = route(Q, K, positions, starts, args["attention_mask"], params, offsets)
    qend = torch.where(routing.valid, routing.anchors, -1)
    qstart = torch.where(routing.valid, routing.span_lo, -1)
    values = routing.scores.float().masked_fill(~routing.valid, float("-inf"))
    return qstart, qend, values


def span_search(
    Q: torch.Tensor,
    K: torch.Tensor,
    cache_position: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    sw_index: int = 0,
    k: int = 3,
    block_size: int = 128,
    backward_factor: float = 2.0,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
    use_triton: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-``k`` stripe anchors of each query and their backward spans: (qstart, qend, values).

    Q: [B, HQ, LQ, D]; K: [B, HKV, LKV, D] (HQ a multiple of HKV); cache_position [LQ]; attention_mask
    None or [B, LKV]. ``use_triton`` picked an implementation in the published package; here every path
    computes the same search, so True is accepted on CUDA tensors only (ValueError elsewhere).
    """
    require(use_triton in (None, True, False), f"use_triton must be None or a bool, got {use_triton!r}")
    require(not use_triton or Q.is_cuda, "use_triton=True needs CUDA tensors")
    require_knobs(block_size=block_size)
    return _search(locals(), k)


def span_search_with_values(
    Q: torch.Tensor,
    K: torch.Tensor,
    cache_position: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    sw_index: int = 0,
    k: int = 3,
    block_size: int = 128,
    backward_factor: float = 2.0,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``span_search`` with the published Triton entry point's signature (``block_size`` keyword)."""
    require_knobs(block_size=block_size)
    return _search(locals(), k)


def span_search_triton_with_values(
    Q: torch.Tensor,
    K: torch.Tensor,
    cache_position: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    sw_index: int = 0,
    k: int = 3,
    BLOCK_SIZE: int = 128,
    backward_factor: float = 2.0,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``span_search`` with the published low-level Triton signature (``BLOCK_SIZE`` keyword)."""
    require_knobs(BLOCK_SIZE=BLOCK_SIZE)
    return _search(locals(), k)


def get_spans(
    Q: torch.Tensor,
    K: torch.Tensor,
    cache_position: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    sw_index: int = 0,
    topk: int = 2,
    *,
    backward_factor: float = 2.0,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``span_search`` in the published reference's signature (``topk`` defaults to 2 there)."""
    return _search(locals(), topk)


def get_search_scores(Q: torch.Tensor, K: torch.Tensor, qend: torch.Tensor) -> torch.Tensor:
    """Unscaled dot products ``Q[q] . K[qend]`` [B, H, LQ, k] (fp32) for anchors qend [B, H, LQ, k].

    K may have fewer heads than Q (grouped); a negative ``qend`` (missing slot) scores ``-inf``.
    """
    require(Q.dim() == 4 and K.dim() == 4 and qend.dim() == 4, "Q, K, qend must be 4-d")
    group = Q.shape[1] // K.shape[1]
    keys = K.repeat_interleave(group, dim=1)
    index = qend.clamp_min(0).to(torch.int64)
    gathered = torch.gather(keys, 2, index.reshape(*index.shape[:2], -1, 1).expand(-1, -1, -1, K.shape[3]))
    gathered = gathered.reshape(*index.shape, K.shape[3])
    scores = torch.einsum("bhqd,bhqkd->bhqk", Q.double(), gathered.double()).float()
    return scores.masked_fill(qend < 0, float("-inf"))


def get_search_mask(
    cache_position: torch.Tensor,
    device: torch.device,
    batch_size: int = 1,
    attention_mask: torch.Tensor | None = None,
    sw_index: int = 0,
    *,
    kv_length: int | None = None,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
) -> torch.Tensor:
    """Dense [B, 1, LQ, LKV] bool mask of the candidate stripe anchors of each query (a debugging aid).

    ``kv_length`` defaults to the last position + 1; ``attention_mask`` None or [B, >= LKV].
    """
    positions = cache_position.to(device=device, dtype=torch.int64).flatten()
    length = kv_length if kv_length is not None else int(positions[-1]) + 1
    mask = torch.zeros(batch_size, 1, positions.numel(), length, dtype=torch.bool, device=device)
    if positions.numel() == 0:
        return mask
    params = params_from(locals())
    keys_mask = None if attention_mask is None else attention_mask[:, :length].to(device)
    starts = sequence_starts(keys_mask, batch_size, length, device)
    offsets = all_stripe_offsets(params, int(positions.max()))
    anchors, valid = candidate_anchors(positions, starts, keys_mask, offsets, 1)
    valid = valid & (anchors < length)[None]
    b, q, a = valid.nonzero(as_tuple=True)
    mask[b, 0, q, anchors[q, a]] = True
    return mask


def compute_qend_from_qanchor(
    qanchor: torch.Tensor,
    *,
    cache_position: torch.Tensor,
    key_length: int,
    sw_index: int = 0,
    attention_mask: torch.Tensor | None = None,
    forward_factor: float = 0.0,
    span_power: float = 0.5,
    search_power: float | None = None,
    inv_search_power_int: int | None = 2,
) -> torch.Tensor:
    """Span ends from anchors: ``min(a + ceil(forward_factor * t ** span_power), q, ws - 1)``.

    qanchor: [B, H, LQ, k] (negative: missing, stays -1); cache_position [LQ]; the window of
    ``sw_index`` gives ``ws``. Returns a tensor shaped and typed like qanchor.
    """
    params = params_from(locals())
    require(key_length > 0, f"key_length must be > 0, got {key_length}")
    require(qanchor.dim() == 4 and cache_position.dim() == 1, "qanchor must be 4-d, cache_position 1-d")
    require(cache_position.numel() == qanchor.shape[2], "cache_position: one position per query")
    positions = cache_position.to(device=qanchor.device, dtype=torch.int64).clamp(0, key_length - 1)
    mask = None if attention_mask is None else attention_mask[:, :key_length].to(qanchor.device)
    starts = sequence_starts(mask, qanchor.shape[0], key_length, qanchor.device)
    t = (positions[None, :] + 1 - starts[:, None]).clamp_min(0)
    forward = ceil_scaled_power(t, params.forward, params.span_exponent)[:, None, :, None]
    ws = window_start(positions, starts, params.window)[:, None, :, None]
    anchors = qanchor.to(torch.int64)
    qend = torch.minimum(torch.minimum(anchors + forward, positions[None, None, :, None]), ws - 1)
    return torch.where(anchors < 0, -1, qend).to(qanchor.dtype)


# The published package's alias names (it forwards *args, **kwargs; these take the target's signature).
search_spans = span_search
span_search_with_values_gqa = span_search_with_values
span_search_triton = span_search_with_values
span_search_triton_gqa = span_search_with_values
search_spans_triton = span_search_with_values
search_spans_triton_gqa = span_search_with_values
span_search_triton_with_values_gqa = span_search_triton_with_values
