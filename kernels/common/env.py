"""Environment switches of the kernels, read at call time so a test or a shell can flip them."""

import os

ENABLE_ASSERTS = "SPAN_ATTENTION_ENABLE_ASSERTS"
_TRUE = frozenset({"1", "true", "yes", "on"})


def asserts_enabled() -> bool:
    """Return whether the expensive validation (host syncs, coverage check) is on."""
    return _flag(ENABLE_ASSERTS)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE
