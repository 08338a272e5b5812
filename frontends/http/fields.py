"""Field types of the HTTP bodies: each checks a JSON value (a 400 naming the field) and writes its JSON Schema.

A field type is the one place a rule is written: `check` enforces it on a request, `schema` states it in
`/openapi.json`. Nested objects are body classes (contract.py), referenced by name in the document.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from superlinear.core import InvalidRequest
from superlinear.core.ids import ID_PATTERN, validate_id

__all__ = ["require", "is_int", "Refs", "FieldType", "Int", "Num", "Bool", "Str", "Id", "OneOf", "Const",
           "ListOf", "MapOf", "Anything", "Custom", "Refused",
           "nullable"]


def require(cond: bool, message: str, param: str | None) -> None:
    """Raise a 400 naming `param` unless `cond` holds."""
    if not cond:
        raise InvalidRequest(message, param=param)


def is_int(value: Any) -> bool:
    """A JSON integer (a bool is not one, though Python says it is)."""
    return isinstance(value, int) and not isinstance(value, bool)


class Refs(Protocol):
    """Where nested body classes are collected as named component schemas."""

    def ref(self, cls: type) -> dict: ...


class FieldType(Protocol):
    """A JSON value's rule: checked on requests, stated in the document."""

    def check(self, value: Any, where: str) -> Any: ...

    def schema(self, refs: Refs) -> dict: ...


# Keywords that combine or pin values: a schema holding one is wrapped, not given a second type.
_COMBINING = frozenset({"anyOf", "oneOf", "allOf", "not", "if", "enum", "const", "$ref"})


def nullable(schema: dict) -> dict:
    """`schema` or null (null means "not given" in every request body)."""
    kind = schema.get("type")
    if kind == "null":
        return schema
    if "enum" in schema and len(schema) == 1:
        return {"enum": [*schema["enum"], None]}
    if isinstance(kind, str) and not _COMBINING & set(schema):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [{"type": "null"}, schema]}


def _bounds(lo: float | None, hi: float | None) -> dict:
    return {k: v for k, v in (("minimum", lo), ("maximum", hi)) if v is not None}


@attrs.frozen
class Int:
    """An integer in [lo, hi]."""

    lo: int | None = None
    hi: int | None = None

    def check(self, value: Any, where: str) -> int:
        ok = is_int(value) and (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)
        if self.lo is not None and self.hi is not None:
            require(ok, f"{where} must be an integer between {self.lo} and {self.hi}", where)
        require(ok, f"{where} must be an integer" + (f" >= {self.lo}" if self.lo is not None else ""), where)
        return value

    def schema(self, refs: Refs) -> dict:
        return {"type": "integer", **_bounds(self.lo, self.hi)}


@attrs.frozen
class Num:
    """A number in [lo, hi], returned as a float."""

    lo: float | None = None
    hi: float | None = None

    def check(self, value: Any, where: str) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
            (self.lo is None or self.lo <= value) and (self.hi is None or value <= self.hi))
        bounds = f" between {self.lo} and {self.hi}" if self.lo is not None and self.hi is not None else ""
        require(ok, f"{where} must be a number{bounds}", where)
        return float(value)

    def schema(self, refs: Refs) -> dict:
        return {"type": "number", **_bounds(self.lo, self.hi)}


@attrs.frozen
class Bool:
    def check(self, value: Any, where: str) -> bool:
        require(isinstance(value, bool), f"{where} must be a boolean", where)
        return value

    def schema(self, refs: Refs) -> dict:
        return {"type": "boolean"}


@attrs.frozen
class Str:
    """A string of min_len to max_len characters, matching `pattern` (whole) when given."""

    min_len: int = 0
    max_len: int | None = None
    pattern: str | None = None
    what: str = "a string"

    def check(self, value: Any, where: str) -> str:
        require(isinstance(value, str), f"{where} must be {self.what}", where)
        require(len(value) >= self.min_len, f"{where} must be a non-empty string", where)
        require(self.max_len is None or len(value) <= self.max_len,
                f"{where} may be at most {self.max_len} characters long", where)
        require(self.pattern is None or re.fullmatch(self.pattern, value) is not None,
                f"{where} must be {self.what}", where)
        return value

    def schema(self, refs: Refs) -> dict:
        out: dict = {"type": "string"}
        if self.min_len:
            out["minLength"] = self.min_len
        if self.max_len is not None:
            out["maxLength"] = self.max_len
        if self.pattern is not None:
            out["pattern"] = f"^{self.pattern}$"
        return out


@attrs.frozen
class Id:
    """A session or snapshot id: the one pattern every layer checks (core/ids.py)."""

    def check(self, value: Any, where: str) -> str:
        return validate_id(value, where)

    def schema(self, refs: Refs) -> dict:
        return {"type": "string", "pattern": f"^{ID_PATTERN.pattern}$"}


@attrs.frozen
class OneOf:
    """One of a few JSON values (compared with their type: 0 is not False)."""

    values: tuple
    message: str = ""

    def check(self, value: Any, where: str) -> Any:
        ok = any(value == v and type(value) is type(v) for v in self.values)
        require(ok, self.message.format(where=where) or
                f"{where} must be one of {', '.join(map(str, self.values))}", where)
        return value

    def schema(self, refs: Refs) -> dict:
        # JSON Schema compares numbers by value: 0 and 0.0 are one enum member.
        values = [v for i, v in enumerate(self.values) if not any(_same_number(v, w) for w in self.values[:i])]
        return {"enum": values}


def _same_number(a: Any, b: Any) -> bool:
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    return numbers and a == b


@attrs.frozen
class Refused:
    """A field this server does not support: only null (absent) is accepted."""

    message: str = "{where} is not supported by this server"

    def check(self, value: Any, where: str) -> Any:
        raise InvalidRequest(self.message.format(where=where), param=where)

    def schema(self, refs: Refs) -> dict:
        return {"type": "null"}


def Const(value: Any, message: str = "") -> OneOf:  # noqa: N802 - reads as a type
    """Exactly `value`."""
    return OneOf((value,), message)


@attrs.frozen
class ListOf:
    """A list of `item`s, min_items to max_items long."""

    item: FieldType
    min_items: int = 0
    max_items: int | None = None
    what: str = ""
    indexed: bool = True  # a mistake in an item names it (`where[i]`); else the list

    def check(self, value: Any, where: str) -> tuple:
        ok = isinstance(value, list) and len(value) >= self.min_items and (
            self.max_items is None or len(value) <= self.max_items)
        require(ok, f"{where} must be {self.what or self._what()}", where)
        return tuple(self.item.check(v, f"{where}[{i}]" if self.indexed else where) for i, v in enumerate(value))

    def _what(self) -> str:
        size = "a non-empty list" if self.min_items else "a list"
        return size + (f" of at most {self.max_items} items" if self.max_items is not None else "")

    def schema(self, refs: Refs) -> dict:
        out: dict = {"type": "array", "items": self.item.schema(refs)}
        if self.min_items:
            out["minItems"] = self.min_items
        if self.max_items is not None:
            out["maxItems"] = self.max_items
        return out


@attrs.frozen
class MapOf:
    """An object whose keys match `key` (a regex) and whose values are `value`s; at most max_items keys."""

    value: FieldType
    key: str = ".*"
    max_items: int | None = None
    what: str = "an object"

    def check(self, raw: Any, where: str) -> dict:
        ok = isinstance(raw, dict) and (self.max_items is None or len(raw) <= self.max_items)
        require(ok, f"{where} must be {self.what}", where)
        for key in raw:
            require(re.fullmatch(self.key, key) is not None, f"{where} key {key[:40]!r} is not valid", where)
        return {k: self.value.check(v, where) for k, v in raw.items()}

    def schema(self, refs: Refs) -> dict:
        out: dict = {"type": "object", "additionalProperties": self.value.schema(refs)}
        if self.key != ".*":
            out["propertyNames"] = {"pattern": f"^{self.key}$"}
        if self.max_items is not None:
            out["maxProperties"] = self.max_items
        return out


_JSON_TYPES = {dict: "object", list: "array", str: "string"}


@attrs.frozen
class Anything:
    """Any value of a JSON type (an object by default), not looked into."""

    kind: type = dict

    def check(self, value: Any, where: str) -> Any:
        name = _JSON_TYPES[self.kind]
        require(isinstance(value, self.kind), f"{where} must be {'an' if name[0] in 'ao' else 'a'} {name}", where)
        return value

    def schema(self, refs: Refs) -> dict:
        return {"type": _JSON_TYPES[self.kind]}


@attrs.frozen
class Custom:
    """A rule too particular for the types above: its own check and its own schema."""

    checker: Callable[[Any, str], Any]
    schema_of: Callable[[Refs], dict]

    def check(self, value: Any, where: str) -> Any:
        return self.checker(value, where)

    def schema(self, refs: Refs) -> dict:
        return self.schema_of(refs)
