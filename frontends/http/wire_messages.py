"""Parse the `messages` and `tools` of a chat request: shapes the chat template can render safely."""

from __future__ import annotations

from typing import Any

from ...core import InvalidRequest, Message

__all__ = ["require", "parse_messages", "parse_tools"]

_ROLES = ("system", "user", "assistant", "tool", "developer")
_MESSAGE_KEYS = {"role", "content", "name", "tool_calls", "tool_call_id", "reasoning_content", "refusal"}


def require(cond: bool, message: str, param: str | None) -> None:
    """Raise a 400 naming `param` unless `cond` holds."""
    if not cond:
        raise InvalidRequest(message, param=param)


def _optional_str(raw: dict, key: str, where: str) -> str | None:
    value = raw.get(key)
    require(value is None or isinstance(value, str), f"{where}.{key} must be a string", f"{where}.{key}")
    return value


def _content(value: Any, where: str) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    require(isinstance(value, list), f"{where}.content must be a string or a list of text parts", f"{where}.content")
    parts = []
    for part in value:
        ok = isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        require(ok, "only text content parts are supported", f"{where}.content")
        parts.append(part["text"])
    return "".join(parts)


def _tool_call(raw: Any, where: str) -> dict:
    """Normalise an assistant tool call to {id, type, function: {name, arguments: str}}."""
    require(isinstance(raw, dict), f"{where} must be an object", where)
    fn = raw.get("function")
    ok = isinstance(fn, dict) and isinstance(fn.get("name"), str) and isinstance(fn.get("arguments", ""), str)
    require(ok, f"{where}.function must have a string name and string arguments", f"{where}.function")
    require(raw.get("type", "function") == "function", f"{where}.type must be \"function\"", f"{where}.type")
    call_id = raw.get("id")
    require(call_id is None or isinstance(call_id, str), f"{where}.id must be a string", f"{where}.id")
    return {"id": call_id, "type": "function", "function": {"name": fn["name"], "arguments": fn.get("arguments", "")}}


def _message(raw: Any, i: int) -> Message:
    where = f"messages[{i}]"
    require(isinstance(raw, dict), f"{where} must be an object", where)
    unknown = sorted(set(raw) - _MESSAGE_KEYS)
    if unknown:
        raise InvalidRequest(f"{where} has an unknown field {unknown[0]!r}", param=f"{where}.{unknown[0]}")
    role = raw.get("role")
    require(role in _ROLES, f"{where}.role must be one of {', '.join(_ROLES)}", f"{where}.role")
    calls = raw.get("tool_calls")
    require(calls is None or isinstance(calls, list), f"{where}.tool_calls must be a list", f"{where}.tool_calls")
    _optional_str(raw, "refusal", where)
    return Message(
        role="system" if role == "developer" else role,
        content=_content(raw.get("content"), where),
        reasoning_content=_optional_str(raw, "reasoning_content", where),
        name=_optional_str(raw, "name", where),
        tool_calls=tuple(_tool_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(calls or ())),
        tool_call_id=_optional_str(raw, "tool_call_id", where),
    )


def parse_messages(raw: Any) -> tuple[Message, ...]:
    """Validate the message list; roles, contents and tool calls must be well-formed."""
    require(isinstance(raw, list) and raw, "messages must be a non-empty list", "messages")
    return tuple(_message(m, i) for i, m in enumerate(raw))


def _tool(raw: Any, i: int) -> dict:
    where = f"tools[{i}]"
    require(isinstance(raw, dict) and raw.get("type") == "function", f"{where} must be a function tool", where)
    fn = raw.get("function")
    require(isinstance(fn, dict) and isinstance(fn.get("name"), str) and fn["name"],
            f"{where}.function must have a name", f"{where}.function")
    require(fn.get("description") is None or isinstance(fn["description"], str),
            f"{where}.function.description must be a string", f"{where}.function.description")
    require(fn.get("parameters") is None or isinstance(fn["parameters"], dict),
            f"{where}.function.parameters must be a JSON schema object", f"{where}.function.parameters")
    return {"type": "function", "function": {k: v for k, v in fn.items() if v is not None}}


def parse_tools(raw: Any) -> list[dict] | None:
    """Validate `tools`; they reach the chat template as its `tools` variable."""
    if raw is None:
        return None
    require(isinstance(raw, list) and len(raw) <= 128, "tools must be a list of at most 128 tools", "tools")
    return [_tool(t, i) for i, t in enumerate(raw)] or None
