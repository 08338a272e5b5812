"""Span search: stripe anchors, search scores, top-k selection and span bounds, and the published API.

The published package's names (``superlinear.kernels.superlinear.search`` of ``superlinear`` 0.1.0) are
all here with their published signatures; see ``published``.
"""

from .published import (
    compute_qend_from_qanchor,
    get_search_mask,
    get_search_scores,
    get_spans,
    search_spans,
    search_spans_triton,
    search_spans_triton_gqa,
    span_search,
    span_search_triton,
    span_search_triton_gqa,
    span_search_triton_with_values,
    span_search_triton_with_values_gqa,
    span_search_with_values,
    span_search_with_values_gqa,
)
from .reference import (
    Routing,
    candidate_anchors,
    route,
    search_scores,
    select_top_k,
    sequence_starts,
    span_bounds,
    window_start,
)

__all__ = [
    "Routing",
    "candidate_anchors",
    "compute_qend_from_qanchor",
    "get_search_mask",
    "get_search_scores",
    "get_spans",
    "route",
    "search_scores",
    "search_spans",
    "search_spans_triton",
    "search_spans_triton_gqa",
    "select_top_k",
    "sequence_starts",
    "span_bounds",
    "span_search",
    "span_search_triton",
    "span_search_triton_gqa",
    "span_search_triton_with_values",
    "span_search_triton_with_values_gqa",
    "span_search_with_values",
    "span_search_with_values_gqa",
    "window_start",
]
