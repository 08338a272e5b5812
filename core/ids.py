"""Session and snapshot ids: the one pattern every layer checks them against."""

from __future__ import annotations

import re

from .errors import InvalidRequest

__all__ = ["validate_id", "ID_PATTERN"]

# Checked with fullmatch: "$" would also accept an id followed by a newline.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def validate_id(value: object, param: str) -> str:
    """Return `value` if it is a valid session or snapshot id; raise InvalidRequest naming `param`."""
    if not isinstance(value, str) or ID_PATTERN.fullmatch(value) is None:
        raise InvalidRequest(
            f"invalid {param} {value!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            param=param,
        )
    return value
