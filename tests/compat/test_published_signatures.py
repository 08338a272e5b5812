"""Every public kernel name of the published ``superlinear`` 0.1.0 exists here with its signature.

The published wheel is read as source (ast): for each name in the ``__all__`` of its attention, search,
span and common modules, the function that really takes the arguments (following re-exports and
``*args, **kwargs`` forwarders) gives the expected parameter names, order, kinds and defaults.
"""

import ast
import importlib
import inspect

import pytest

# Published module -> our modules that must offer its names (the full path and the short path).
MODULES = {
    "superlinear.kernels.superlinear.attention": [
        "superlinear.kernels.superlinear.attention",
        "superlinear.attention",
    ],
    "superlinear.kernels.superlinear.search": [
        "superlinear.kernels.superlinear.search",
        "superlinear.search",
    ],
    "superlinear.kernels.superlinear.span": ["superlinear.kernels.superlinear.span", "superlinear.span"],
    "superlinear.kernels.common": ["superlinear.kernels.common", "superlinear.common"],
}
KINDS = {
    "posonlyargs": inspect.Parameter.POSITIONAL_ONLY,
    "args": inspect.Parameter.POSITIONAL_OR_KEYWORD,
    "kwonlyargs": inspect.Parameter.KEYWORD_ONLY,
}


def published_parameters(source, module: str, node: ast.FunctionDef) -> list[tuple]:
    """(name, kind, default) of each parameter of a published def; default is inspect.Parameter.empty."""
    args = node.args
    positional = args.posonlyargs + args.args
    defaults = [inspect.Parameter.empty] * (len(positional) - len(args.defaults)) + list(args.defaults)
    out = []
    for kind_name in ("posonlyargs", "args"):
        for arg in getattr(args, kind_name):
            out.append((arg.arg, KINDS[kind_name], defaults[positional.index(arg)]))
    if args.vararg:
        out.append((args.vararg.arg, inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.empty))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        out.append(
            (arg.arg, inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.empty if default is None else default)
        )
    if args.kwarg:
        out.append((args.kwarg.arg, inspect.Parameter.VAR_KEYWORD, inspect.Parameter.empty))
    return [(name, kind, value(source, module, default)) for name, kind, default in out]


def value(source, module: str, default):
    if default is inspect.Parameter.empty:
        return default
    if isinstance(default, ast.Name):
        return source.constant(module, default.id)
    return ast.literal_eval(default)


def our_parameters(function) -> list[tuple]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def published_names(source):
    for published_module, ours in MODULES.items():
        for name in source.all_names(published_module):
            yield published_module, name, ours


def test_every_published_kernel_name_has_the_published_signature(published_source):
    checked, mismatches = 0, []
    for published_module, name, ours in published_names(published_source):
        module, node = published_source.definition(published_module, name)
        for our_module in ours:
            mine = getattr(importlib.import_module(our_module), name, None)
            if mine is None:
                mismatches.append(f"{our_module}.{name}: missing")
                continue
            if isinstance(node, ast.ClassDef):
                assert inspect.isclass(mine), f"{our_module}.{name} should be a class"
                continue
            expected = published_parameters(published_source, module, node)
            if our_parameters(mine) != expected:
                mismatches.append(f"{our_module}.{name}: ours {our_parameters(mine)}\n  published {expected}")
            checked += 1
    assert not mismatches, "\n".join(mismatches)
    # The four modules publish 48 function names; each is checked at both import paths.
    assert checked >= 90


def test_the_comparison_can_fail(published_source):
    """A signature that differs in one default is told apart (the check above is not vacuous)."""
    module, node = published_source.definition(
        "superlinear.kernels.superlinear.span", "decode_span_attention_staged_gqa"
    )
    expected = published_parameters(published_source, module, node)
    assert ("topk", inspect.Parameter.POSITIONAL_OR_KEYWORD, 3) in expected
    assert ("backward_factor", inspect.Parameter.POSITIONAL_OR_KEYWORD, 2.0) in expected

    def ours_with_other_default(Q1, Q2, K, V, cache_position, attention_mask=None, sw_index=3):
        pass

    assert our_parameters(ours_with_other_default) != expected


@pytest.mark.parametrize("module", sorted(MODULES))
def test_published_all_names_are_in_our_all(published_source, module):
    for ours in MODULES[module]:
        mine = set(importlib.import_module(ours).__all__)
        assert set(published_source.all_names(module)) <= mine, ours


@pytest.mark.parametrize("module, names", [
    ("superlinear.kernels.common.power", ["derive_stripe_power_params", "window_len_from_sw_index",
                                          "max_stripe_index_for_token_pos", "floor_nth_root"]),
    ("superlinear.kernels.common.adjustment", ["compute_qend_from_qanchor"]),
    ("superlinear.kernels.superlinear.span.masks", ["create_span_mask", "create_sliding_window_mask"]),
    ("superlinear.runtime", ["is_triton_available", "is_cuda_available", "get_cuda_capability",
                             "get_shared_memory_limit", "check_triton_required", "check_cuda_required"]),
])
def test_published_helper_module_paths_import(published_source, module, names):
    for name in names:
        where, node = published_source.definition(module, name)
        mine = getattr(importlib.import_module(module), name)
        assert our_parameters(mine) == published_parameters(published_source, where, node), (module, name)
