"""Request limits the HTTP layer enforces itself; prompt and session-length caps live in the core."""

from __future__ import annotations

import attrs

from .body import DEFAULT_MAX_BODY_BYTES

__all__ = ["Limits"]


@attrs.frozen
class Limits:
    """Caps from the command line that only HTTP sees."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
