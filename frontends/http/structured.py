"""Parse `response_format` and a forcing `tool_choice` into the grammar the answer must match.

`json_object` is any JSON object; `json_schema` is its `schema` (any JSON value when absent), strict or
not; `tool_choice` "required" or a named function makes the answer tool calls in the form the chat
template writes: `<tool_call>{"name": ..., "arguments": ...}</tool_call>` ("json"), whose arguments match
the declared parameters, or `<tool_call>\n<function=NAME>\n<parameter=ARG>\nvalue\n</parameter>\n...`
("xml", the released model's), with the declared parameters in order (the required ones always), object
and array values as JSON matching their schema, other values as text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from superlinear.core.values import Grammar

from .fields import require
from .toolcalls import CLOSE, OPEN
from .wire_format import NamedToolChoice, ResponseFormat

__all__ = ["response_grammar", "tool_grammar", "forced_tools"]

_COMPACT = {"whitespace_flexible": False}


def response_grammar(fmt: ResponseFormat | None) -> Grammar | None:
    """The grammar of a checked `response_format`, or None for free text."""
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return Grammar("json_schema", json.dumps({"type": "object"}))
    spec = fmt.json_schema
    schema = {} if spec.schema is None else spec.schema
    return Grammar("json_schema", json.dumps(schema), bool(spec.strict), "response_format.json_schema.schema")


def forced_tools(choice: str | NamedToolChoice | None, tools: Sequence[dict] | None) -> list[dict] | None:
    """The tools the answer must call (all for "required", one when named), or None when not forced."""
    if choice in (None, "auto", "none"):
        return None
    if choice == "required":
        return list(tools or ())  # the body class's rule: "required" needs tools
    name = choice.function.name
    named = [t for t in tools or () if t["function"]["name"] == name]
    require(bool(named), f"tool_choice names {name[:64]!r}, which is not among the tools", "tool_choice")
    return named[:1]


def _call_schema(tool: dict) -> dict:
    fn = tool["function"]
    params: Any = fn.get("parameters") or {"type": "object"}
    return {"type": "object", "properties": {"name": {"const": fn["name"]}, "arguments": params},
            "required": ["name", "arguments"], "additionalProperties": False}


def tool_grammar(tools: list[dict], several: bool, fmt: str = "json") -> Grammar:
    """A Lark grammar of tool calls to `tools` (one, or one or more when `several`) in the template's
    tool-call format `fmt` ("json" or "xml")."""
    start = "start: call" + (' ("\\n" call)*' if several else "")
    if fmt == "xml":
        return Grammar("lark", f"{start}\n{_xml_calls(tools)}", False, "tools")
    schema = {"anyOf": [_call_schema(t) for t in tools], "x-guidance": _COMPACT}
    lark = f"{start}\ncall: {json.dumps(OPEN)} body {json.dumps(CLOSE)}\nbody: %json {json.dumps(schema)}\n"
    return Grammar("lark", lark, False, "tools")


# An XML parameter's text value and its closing tag, as one lexeme (the value can't hold a "<").
_XML_TEXT = r"/[^<]*\n<\/parameter>\n/"
_XML_ANY_PARAM = f'"<parameter=" /[A-Za-z0-9_.-]+/ ">\\n" {_XML_TEXT}'


def _xml_value(schema: Any) -> str:
    """The Lark of one parameter's value and closing tag: JSON for objects and arrays, else text."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind in ("object", "array"):
        return f'%json {json.dumps({**schema, "x-guidance": _COMPACT})} "\\n</parameter>\\n"'
    return _XML_TEXT


def _xml_calls(tools: list[dict]) -> str:
    """Lark rules `call` and one per tool: `<function=NAME>` then its declared parameters in order (the
    required ones always; any named text parameters when none are declared)."""
    rules, names = [], []
    for i, tool in enumerate(tools):
        fn = tool["function"]
        params = fn.get("parameters") or {}
        props = params.get("properties") if isinstance(params.get("properties"), dict) else None
        required = set(params.get("required") or ())
        head = json.dumps(f"{OPEN}\n<function={fn['name']}>\n")
        if props:
            body = " ".join(f'({json.dumps(f"<parameter={name}>" + chr(10))} {_xml_value(sub)})'
                            + ("" if name in required else "?") for name, sub in props.items())
        else:
            body = f"({_XML_ANY_PARAM})*"
        rules.append(f'call_{i}: {head} {body} {json.dumps("</function>" + chr(10) + CLOSE)}')
        names.append(f"call_{i}")
    return f"call: {' | '.join(names)}\n" + "\n".join(rules) + "\n"
