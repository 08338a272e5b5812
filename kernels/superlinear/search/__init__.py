"""Span search: stripe anchors, search scores, top-k selection and span bounds."""

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
    "route",
    "search_scores",
    "select_top_k",
    "sequence_starts",
    "span_bounds",
    "window_start",
]
