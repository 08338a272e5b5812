"""Validation of a whole Superlinear attention call, shared by the prefill and decode entry points."""

from collections.abc import Mapping
from functools import lru_cache

from ..common.env import asserts_enabled
from ..common.validation import (
    AttentionShapes,
    graph_capturing,
    require,
    require_int,
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


# What a published call that takes no such argument means by a field: no backward or forward extent,
# the square-root span length. Every other field is read from the call's arguments.
_NEUTRAL = {"backward_factor": 0, "forward_factor": 0, "span_power": 0.5}


def params_from(args: Mapping, num_spans: int = 1) -> SuperlinearParams:
    """The validated parameters of a published call from its arguments (its ``locals()``), ``num_spans`` spans.

    ``sw_index``, ``search_power`` and ``inv_search_power_int`` are read from ``args``; the factors and
    the span power too where the call takes them, else they are neutral (``_NEUTRAL``). A bad value
    raises ValueError naming it.
    """
    values = {**_NEUTRAL, **args, "num_spans": num_spans}
    return SuperlinearParams.create(**{field: values[field] for field in SuperlinearParams.fields()})


def published_name(function, name: str, doc: str):
    """Name a published function made by a factory (one ``def`` per published signature shape): its
    ``__name__``, ``__qualname__`` (what TypeError messages and ``help`` show) and docstring."""
    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    return function


def require_multihead(Q2, K, function: str, grouped: str | None = None) -> None:
    """Require as many KV heads as query heads (the published multi-head names); ValueError naming K.

    ``grouped`` names what to call instead for grouped KV heads, for the message.
    """
    hint = "" if grouped is None else f"; use {grouped} for grouped KV heads"
    require(
        Q2.dim() == 4 and K.dim() == 4 and Q2.shape[1] == K.shape[1],
        f"K: {function} is multi-head (HQ == HKV), got Q2 {tuple(Q2.shape)}, K {tuple(K.shape)}{hint}",
    )


def require_knobs(**knobs) -> None:
    """Validate tuning knobs of the published kernels (block sizes, warps, stages): positive ints.

    They choose how the published Triton kernels tile the work, never what is computed; ours pick their
    own tiling, so a valid knob changes nothing and an invalid one raises ValueError naming it.
    """
    for name, value in knobs.items():
        require_int(name, value, 1)


def require_flag(name: str, value: object) -> None:
    """Require a bool (published boolean knobs such as ``use_bf16_pv``)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")


def resolve_cache_position(function: str, cache_pos, cache_position):
    """Return the query positions given as ``cache_pos`` (positional) or ``cache_position`` (keyword)."""
    if cache_pos is not None and cache_position is not None:
        raise TypeError(f"{function}() got both 'cache_pos' and 'cache_position'; give one")
    positions = cache_position if cache_position is not None else cache_pos
    if positions is None:
        raise TypeError(f"{function}() missing required argument: 'cache_pos' or 'cache_position'")
    return positions


def resolve_topk(num_spans, topk):
    """Return the number of spans: ``topk`` (the published keyword) overrides ``num_spans`` when given."""
    return num_spans if topk is None else topk
