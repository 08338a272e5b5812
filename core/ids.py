"""Session and snapshot ids."""

from __future__ import annotations

import re

from .errors import InvalidRequest

__all__ = ["validate_id", "ID_PATTERN"]

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_id(value: object, param: str) -> str:
    """Return `value` if it is a valid session or snapshot id; raise InvalidRequest naming `param`."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise InvalidRequest(
            f"{param} must match {ID_PATTERN.pattern} (letters, digits, '.', '_', '-'; at most 128)", param=param
        )
    return value
