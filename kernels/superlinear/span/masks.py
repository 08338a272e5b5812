"""The FlexAttention mask helpers of the published ``superlinear`` 0.1.0 span module, same signatures.

Each ``create_*_mask`` returns a ``mask(b, h, q_idx, kv_idx) -> bool`` function of the kind
FlexAttention's ``create_block_mask`` takes. As in the published helpers, the window of ``sw_index`` is
that of the default stripe power (``inv_search_power_int = 2``): ``W = (sw_index + 1) ** 2 - 1``, and
``q_idx`` is taken as the query's position.
"""

from fractions import Fraction

import torch

from ...common.powers import window_size


def _default_window(sw_index: int) -> int:
    return window_size(int(sw_index), Fraction(2))


def create_span_mask(qstart, qend, attention_mask=None, k: int = 0, sw_index: int = 0):
    """Mask of span ``k`` (``qstart <= kv <= qend``) or, when ``sw_index > 0``, the window."""
    lo, hi = qstart[:, :, :, k].clone(), qend[:, :, :, k].clone()
    keys = None if attention_mask is None else attention_mask.to(torch.bool).clone()
    window = _default_window(sw_index)

    def mask(b, h, q_idx, kv_idx):
        allowed = (kv_idx >= lo[b, h, q_idx]) & (kv_idx <= hi[b, h, q_idx])
        if sw_index > 0:
            distance = q_idx - kv_idx + 1
            allowed = allowed | ((distance > 0) & (distance <= window))
        return allowed if keys is None else allowed & keys[b][kv_idx]

    return mask


def create_sort_indices(qstart: torch.Tensor, qend: torch.Tensor, k: int) -> torch.Tensor:
    """Order [B, H, LQ] of the queries by span ``k`` (start, then end; missing spans first)."""
    lo = qstart[:, :, :, k].clone()
    lo = torch.where(lo < 0, -1, lo)
    hi = qend[:, :, :, k].clone()
    hi = torch.where(hi < 0, -torch.arange(hi.shape[-1], device=hi.device), hi)
    scale = max(int(lo.max()), int(hi.max())) + 1
    return torch.argsort(lo * scale + hi, dim=-1)


def create_sorted_span_mask(qstart, qend, sorted_indices, k: int = 0, attention_mask=None, sw_index: int = 0):
    """Mask of span ``k`` for queries reordered by ``sorted_indices``, outside the window."""
    lo = torch.gather(qstart[:, :, :, k], -1, sorted_indices)
    hi = torch.gather(qend[:, :, :, k], -1, sorted_indices)
    keys = None if attention_mask is None else attention_mask.to(torch.bool).clone()
    window = _default_window(sw_index)

    def mask(b, h, q_idx, kv_idx):
        allowed = (kv_idx >= lo[b, h, q_idx]) & (kv_idx <= hi[b, h, q_idx])
        if sw_index > 0:
            allowed = allowed & (q_idx - kv_idx + 1 > window)
        return allowed if keys is None else allowed & keys[b][kv_idx]

    return mask


def create_sliding_window_mask(sw_index: int = 0, attention_mask=None):
    """Mask of the window: ``0 <= q_idx - kv_idx < W``."""
    keys = None if attention_mask is None else attention_mask.to(torch.bool).clone()
    window = _default_window(sw_index)

    def mask(b, h, q_idx, kv_idx):
        distance = q_idx - kv_idx + 1
        allowed = (distance <= window) & (distance > 0)
        return allowed if keys is None else allowed & keys[b][kv_idx]

    return mask


def invert_sorted_matrix(sorted_matrix: torch.Tensor, sorted_indices: torch.Tensor) -> torch.Tensor:
    """Undo a reordering along dim 2: [B, H, L] or [B, H, L, X] back to the original query order."""
    inverse = torch.argsort(sorted_indices, dim=-1)
    if sorted_matrix.dim() == 4:
        inverse = inverse.unsqueeze(-1).expand(-1, -1, -1, sorted_matrix.shape[-1])
    return torch.gather(sorted_matrix, 2, inverse)
