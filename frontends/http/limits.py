"""Request limits the server enforces on top of the core's (the core itself caps prompt tokens)."""

from __future__ import annotations

import attrs

from ...core import InvalidRequest
from .body import DEFAULT_MAX_BODY_BYTES

__all__ = ["Limits", "check_max_seq_len"]


@attrs.frozen
class Limits:
    """Caps from the command line; None means no cap beyond the core's own."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_prompt_tokens: int | None = None
    max_seq_len: int | None = None


def check_max_seq_len(value: object, limits: Limits) -> None:
    """Refuse a session length over --max-seq-len; the core checks the type and the model's own limit."""
    cap = limits.max_seq_len
    if cap is not None and isinstance(value, int) and not isinstance(value, bool) and value > cap:
        raise InvalidRequest(f"max_seq_len {value} exceeds this server's cap {cap} (--max-seq-len)",
                             param="max_seq_len")
