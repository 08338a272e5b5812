"""Body classes: attrs classes whose fields carry a field type, parsed from JSON and described as JSON Schema.

A request body is declared once, as a body class; `parse` validates a request against it (every mistake a
400 naming the field) and `Components` writes the same declaration into `/openapi.json`:

    @body()
    class SessionRollback:
        keep_messages: int = field(Int(0), required=True)

A field that is absent or null takes its default; `required` fields must be given (and not null). Unknown
fields are refused (an `open` class ignores them, as OpenAI's nested objects do).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs

from superlinear.core import InvalidRequest

from .body import DEFAULT_MAX_BODY_BYTES, read_json
from .fields import FieldType, Refs, nullable, require

__all__ = ["body", "field", "sent", "optional", "Rule", "parse", "read_body", "to_json", "schema_of", "Components",
           "Obj", "UNSET", "given"]

T = TypeVar("T")
_SPEC = "superlinear.http.field"
_RULES = "__body_rules__"


class _Unset:
    """The default of a field whose absence differs from null (see `given`)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
_UNKNOWN = "unrecognized field {name!r} (known: {known})"


@attrs.frozen
class _Spec:
    kind: FieldType
    required: bool
    nullable: bool
    keep_null: bool
    doc: str | None


@attrs.frozen
class Rule:
    """A rule between fields: `check(parsed, raw)` enforces it, `schema` states it (JSON Schema keywords)."""

    check: Callable[[Any, dict], None]
    schema: dict


@attrs.frozen
class _Rules:
    unknown: str
    open: bool
    rules: tuple[Rule, ...]
    doc: str | None


def field(kind: FieldType, default: Any = None, *, required: bool = False, nullable: bool | None = None,
          keep_null: bool = False, doc: str | None = None) -> Any:
    """A body field of type `kind`. Null means "not given" unless `nullable=False` (or `required`);
    `keep_null` checks a given null (it means "clear" rather than "absent"); an absent field keeps
    `default` (UNSET: not given). A response field may be `required` and `nullable` (always sent, maybe null)."""
    spec = _Spec(kind, required, (not required) if nullable is None else nullable, keep_null, doc)
    if required:
        return attrs.field(kw_only=True, metadata={_SPEC: spec})
    return attrs.field(default=default, kw_only=True, metadata={_SPEC: spec})


def sent(kind: FieldType, *, nullable: bool = False, doc: str | None = None) -> Any:
    """A response field that is always sent (null only when `nullable`)."""
    return field(kind, required=True, nullable=nullable, doc=doc)


def optional(kind: FieldType, *, nullable: bool = False, default: Any = None, doc: str | None = None) -> Any:
    """A response field that may be left out: `to_json` leaves it out while it holds `default` (None, or
    UNSET for a field that is sometimes sent as null and sometimes not at all)."""
    return field(kind, default, nullable=nullable, doc=doc)


# Writes body classes, its code generated per class on first use (cattrs): a field that is not `required` is
# left out while it holds its default; nested body classes, in fields and lists, are written the same way.
_WRITER = cattrs.Converter(omit_if_default=True)


def to_json(value: Any) -> dict:
    """A body class instance as JSON: every `sent` field, and each optional one that holds a value."""
    return _WRITER.unstructure(value)


def body(unknown: str = _UNKNOWN, open: bool = False, rules: tuple[Rule, ...] = (),  # noqa: A002
         doc: str | None = None) -> Callable[[type[T]], type[T]]:
    """Make a class a frozen body class. `unknown` words the refusal of an unknown field ({name}, {where},
    {known}); `rules` are the rules between its fields, checked after the fields."""

    def make(cls: type[T]) -> type[T]:
        setattr(cls, _RULES, _Rules(unknown, open, tuple(rules), doc))
        return attrs.frozen(kw_only=True)(cls)

    return make


def given(value: Any) -> bool:
    """Whether a field with default UNSET was in the body."""
    return value is not UNSET


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _refuse_unknown(cls: type, raw: dict, where: str, rules: _Rules) -> None:
    known = [a.name for a in attrs.fields(cls)]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        message = rules.unknown.format(name=unknown[0], where=where, known=", ".join(sorted(known)))
        raise InvalidRequest(message, param=_join(where, unknown[0]))


def _value(a: attrs.Attribute, raw: dict, where: str) -> Any:
    spec: _Spec = a.metadata[_SPEC]
    path = _join(where, a.name)
    value = raw.get(a.name)
    if value is None and (a.name not in raw or (spec.nullable and not spec.keep_null)):
        require(not spec.required, f"{path} is required", path)
        return a.default
    return spec.kind.check(value, path)


def parse(cls: type[T], raw: Any, where: str = "") -> T:
    """Check a JSON value against body class `cls` and build it; raise InvalidRequest naming the field."""
    require(isinstance(raw, dict), f"{where} must be an object" if where else
            "the request body must be a JSON object", where or "body")
    rules: _Rules = getattr(cls, _RULES)
    if not rules.open:
        _refuse_unknown(cls, raw, where, rules)
    parsed = cls(**{a.name: _value(a, raw, where) for a in attrs.fields(cls)})
    for rule in rules.rules:
        rule.check(parsed, raw)
    return parsed


def read_body(req: Any, cls: type[T], limit: int = DEFAULT_MAX_BODY_BYTES, *, required: bool = False) -> T:
    """Read a request's JSON body (an empty one is `{}` unless `required`) as body class `cls`."""
    return parse(cls, read_json(req, limit, required=required))


def schema_of(cls: type, refs: Refs) -> dict:
    """The JSON Schema of body class `cls` (nested classes through `refs`)."""
    rules: _Rules = getattr(cls, _RULES)
    props, required = {}, []
    for a in attrs.fields(cls):
        spec: _Spec = a.metadata[_SPEC]
        schema = spec.kind.schema(refs)
        schema = nullable(schema) if spec.nullable or spec.keep_null else schema
        props[a.name] = {**schema, "description": spec.doc} if spec.doc else schema
        if spec.required:
            required.append(a.name)
    out: dict = {"type": "object", "properties": props, "required": required}
    if not rules.open:
        out["additionalProperties"] = False
    if rules.doc:
        out["description"] = rules.doc
    if len(rules.rules) == 1:
        out.update(rules.rules[0].schema)
    elif rules.rules:
        out["allOf"] = [rule.schema for rule in rules.rules]
    return out


@attrs.define
class Components:
    """Component schemas by name: body classes under their class names, and any schema added by hand."""

    schemas: dict[str, dict] = attrs.Factory(dict)

    def ref(self, cls: type) -> dict:
        """Add `cls` (once) and return a reference to it."""
        name = cls.__name__
        if name not in self.schemas:
            self.schemas[name] = {}
            self.schemas[name] = schema_of(cls, self)
        return {"$ref": f"#/components/schemas/{name}"}


@attrs.frozen
class Obj:
    """A nested object of body class `cls`: a named component, or written in place when `inline`;
    `build(raw, parsed)`, when given, makes the value the request gets."""

    cls: type
    inline: bool = False
    build: Callable[[Any, Any], Any] | None = None

    def check(self, value: Any, where: str) -> Any:
        parsed = parse(self.cls, value, where)
        return parsed if self.build is None else self.build(value, parsed)

    def schema(self, refs: Refs) -> dict:
        return schema_of(self.cls, refs) if self.inline else refs.ref(self.cls)
