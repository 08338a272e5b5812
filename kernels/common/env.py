"""Environment switches of the kernels, read at call time so a test or a shell can flip them."""

import os

ENABLE_ASSERTS = "SPAN_ATTENTION_ENABLE_ASSERTS"
FORCE_SPARSE_META = "SPAN_ATTENTION_FORCE_SPARSE_META"
_TRUE = frozenset({"1", "true", "yes", "on"})


def asserts_enabled() -> bool:
    """Return whether the expensive validation (host syncs, coverage check) is on."""
    return _flag(ENABLE_ASSERTS)


def force_sparse_meta() -> bool:
    """Return whether the bucketed prefill must use its sort-based (sparse) metadata path."""
    return _flag(FORCE_SPARSE_META)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE
