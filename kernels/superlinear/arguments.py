"""Validation of a whole Superlinear attention call, shared by the prefill and decode entry points."""

from functools import lru_cache

from ..common.env import asserts_enabled
from ..common.validation import (
    AttentionShapes,
    graph_capturing,
    validate_attention_inputs,
    validate_monotonic_positions,
)
from .coverage import check_coverage
from .params import SuperlinearParams


def validate_call(Q1, Q2, K, V, cache_position, attention_mask, params: SuperlinearParams) -> AttentionShapes:
    """Validate parameters and tensors (ValueError naming the argument) before any compute.

    Under SPAN_ATTENTION_ENABLE_ASSERTS=1 also require strictly increasing ``cache_position`` and random
    context access for ``LKV`` keys (not while a CUDA graph is captured: these checks sync with the host);
    the span/window invariants are then checked per block.
    """
    if not isinstance(params, SuperlinearParams):
        raise ValueError(f"params must be SuperlinearParams, got {type(params).__name__}")
    params.validate()
    shapes = validate_attention_inputs(Q1, Q2, K, V, cache_position, attention_mask)
    # The expensive checks sync with the host, so they stay off while a CUDA graph is captured.
    if asserts_enabled() and not graph_capturing(Q2):
        validate_monotonic_positions(cache_position)
        _coverage(params, shapes.kv_len).raise_if_violated()
    return shapes


@lru_cache(maxsize=64)
def _coverage(params: SuperlinearParams, length: int):
    # Pure in its arguments, and a serving loop asks the same question every step.
    return check_coverage(params, length)
