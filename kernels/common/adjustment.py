"""The published package's ``superlinear.kernels.common.adjustment`` module path."""

from ..superlinear.search.published import compute_qend_from_qanchor

__all__ = ["compute_qend_from_qanchor"]
