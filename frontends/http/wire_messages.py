"""The `messages` and `tools` of chat requests as body classes: shapes the chat template can render safely."""

from __future__ import annotations

from typing import Any

from superlinear.core import Message

from .contract import Obj, body, field
from .fields import Anything, Const, Custom, ListOf, OneOf, Refs, Str, require

__all__ = ["ChatMessage", "ToolCall", "FunctionCall", "Tool", "FunctionDef", "MESSAGES", "TOOLS", "to_message",
           "parse_messages", "parse_tools"]

_ROLES = ("system", "user", "assistant", "tool", "developer")
MAX_TOOLS = 128


def _content(value: Any, where: str) -> str:
    """A string, or a list of text parts (joined)."""
    if isinstance(value, str):
        return value
    require(isinstance(value, list), f"{where} must be a string or a list of text parts", where)
    parts = []
    for part in value:
        ok = isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        require(ok, "only text content parts are supported", where)
        parts.append(part["text"])
    return "".join(parts)


def _content_schema(refs: Refs) -> dict:
    part = {"type": "object", "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
            "required": ["type", "text"]}
    return {"anyOf": [{"type": "string"}, {"type": "array", "items": part}]}


# Nested objects are open: the server reads the fields it knows and ignores the rest, as OpenAI does.
@body(open=True)
class FunctionCall:
    name: str = field(Str(), required=True)
    arguments: str = field(Str(), "")


@body(open=True)
class ToolCall:
    id: str | None = field(Str())
    type: str = field(Const("function", '{where} must be "function"'), "function")
    function: FunctionCall = field(Obj(FunctionCall), required=True)

    def as_dict(self) -> dict:
        """The call normalised to {id, type, function: {name, arguments: str}}."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.function.name, "arguments": self.function.arguments}}


@body(unknown="{where} has an unknown field {name!r}")
class ChatMessage:
    role: str = field(OneOf(_ROLES), required=True)
    content: str = field(Custom(_content, _content_schema), "")
    name: str | None = field(Str())
    tool_calls: tuple[ToolCall, ...] = field(ListOf(Obj(ToolCall)), ())
    tool_call_id: str | None = field(Str())
    reasoning_content: str | None = field(Str())
    refusal: str | None = field(Str())


def to_message(m: ChatMessage) -> Message:
    """The core's message (a developer message is a system message to the template)."""
    return Message(role="system" if m.role == "developer" else m.role, content=m.content,
                   reasoning_content=m.reasoning_content, name=m.name,
                   tool_calls=tuple(c.as_dict() for c in m.tool_calls), tool_call_id=m.tool_call_id)


@body(open=True)
class FunctionDef:
    name: str = field(Str(1), required=True)
    description: str | None = field(Str())
    parameters: dict | None = field(Anything(dict), doc="a JSON Schema object")


@body(open=True)
class Tool:
    type: str = field(Const("function", "{where} must be a function tool"), required=True)
    function: FunctionDef = field(Obj(FunctionDef), required=True)


def _tool_dict(raw: dict, tool: Tool) -> dict:
    """The tool as the chat template gets it: the client's function object without null fields."""
    return {"type": "function", "function": {k: v for k, v in raw["function"].items() if v is not None}}


MESSAGES = ListOf(Obj(ChatMessage), min_items=1)
TOOLS = ListOf(Obj(Tool, build=_tool_dict), max_items=MAX_TOOLS)


def parse_messages(raw: Any) -> tuple[Message, ...]:
    """Check a `messages` list and return the core's messages."""
    return tuple(to_message(m) for m in MESSAGES.check(raw, "messages"))


def parse_tools(raw: Any) -> list[dict] | None:
    """Check `tools` (null: none) and return them as the chat template gets them (None when empty)."""
    return None if raw is None else list(TOOLS.check(raw, "tools")) or None
