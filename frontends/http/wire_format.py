"""`response_format` and `tool_choice` of chat requests as body classes (structured.py makes them grammars)."""

from __future__ import annotations

from typing import Any

from superlinear.core import InvalidRequest

from .contract import Obj, Rule, body, field, parse
from .fields import Anything, Bool, Const, Custom, OneOf, Refs, Str, require

__all__ = ["ResponseFormat", "JsonSchemaFormat", "NamedToolChoice", "RESPONSE_FORMAT", "TOOL_CHOICE"]

_KINDS = ("text", "json_object", "json_schema")
_CHOICES = ("auto", "none", "required")


@body(unknown="{where} must be an object of name, description, schema and strict")
class JsonSchemaFormat:
    name: str = field(Str(pattern="[A-Za-z0-9_-]{1,64}", what="1-64 letters, digits, _ or -"), required=True)
    description: str | None = field(Str())
    schema: dict | None = field(Anything(dict), nullable=False, doc="a JSON Schema; absent: any JSON value")
    strict: bool | None = field(Bool(), doc="schema keywords the server can't enforce are a 400 instead of "
                                            "being ignored")


def _json_schema_with_its_type(fmt: ResponseFormat, raw: dict) -> None:
    require((fmt.type == "json_schema") == (fmt.json_schema is not None),
            "response_format has json_schema exactly when its type is json_schema", "response_format")


_WITH_ITS_TYPE = Rule(_json_schema_with_its_type, {
    "if": {"properties": {"type": {"const": "json_schema"}}},
    "then": {"required": ["json_schema"]}, "else": {"not": {"required": ["json_schema"]}}})


@body(unknown="response_format has no field {name!r}", rules=(_WITH_ITS_TYPE,),
      doc="json_object and json_schema constrain the answer (after any thinking) with a grammar")
class ResponseFormat:
    type: str = field(OneOf(_KINDS), required=True)
    json_schema: JsonSchemaFormat | None = field(Obj(JsonSchemaFormat), nullable=False)


def _response_format(value: Any, where: str) -> ResponseFormat:
    """The format; mistakes in its own fields are reported on `response_format`, as OpenAI does."""
    try:
        fmt = parse(ResponseFormat, value, where)
    except InvalidRequest as exc:
        if (exc.param or "").startswith(f"{where}.json_schema"):
            raise
        if exc.param == where:
            raise
        raise InvalidRequest(f'{where}.type must be "text", "json_object" or "json_schema"', param=where) from None
    return fmt


@body(open=True)
class FunctionName:
    name: str = field(Str(), required=True)


@body()
class NamedToolChoice:
    type: str = field(Const("function"), required=True)
    function: FunctionName = field(Obj(FunctionName, inline=True), required=True)


_CHOICE_MESSAGE = 'tool_choice must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}'


def _tool_choice(value: Any, where: str) -> str | NamedToolChoice:
    if isinstance(value, str) and value in _CHOICES:
        return value
    try:
        return parse(NamedToolChoice, value, where)
    except InvalidRequest:
        raise InvalidRequest(_CHOICE_MESSAGE, param=where) from None


def _tool_choice_schema(refs: Refs) -> dict:
    return {"anyOf": [{"enum": list(_CHOICES)}, refs.ref(NamedToolChoice)],
            "description": "required or a named function: the answer is tool calls whose arguments match the "
                           "declared parameters"}


RESPONSE_FORMAT = Custom(_response_format, lambda refs: refs.ref(ResponseFormat))
TOOL_CHOICE = Custom(_tool_choice, _tool_choice_schema)
