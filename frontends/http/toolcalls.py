"""Split `<tool_call>...</tool_call>` blocks out of answer text, as it streams or all at once.

Two formats, chosen by the loaded chat template (`tool_call_format`): "json", the default model's
`<tool_call>{"name": NAME, "arguments": {...}}</tool_call>`, and "xml", the released superlinear-exp
model's `<tool_call><function=NAME><parameter=ARG>value</parameter>...</function></tool_call>`. OpenAI
clients expect the calls in `message.tool_calls` (or `delta.tool_calls`) and not in the text.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

__all__ = ["ToolCallSplitter", "OPEN", "CLOSE", "split_tool_calls", "FORMATS"]

OPEN, CLOSE = "<tool_call>", "</tool_call>"


def _openai_call(name: str, args: Any) -> dict:
    if not isinstance(args, str):
        args = json.dumps(args, ensure_ascii=False)
    return {"id": f"call_{secrets.token_hex(12)}", "type": "function",
            "function": {"name": name, "arguments": args}}


def _json_call(block: str) -> dict | None:
    """Turn `{"name": ..., "arguments": ...}` into an OpenAI tool call, or None when it is not one."""
    try:
        data: Any = json.loads(block)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    return _openai_call(data["name"], data.get("arguments", {}))


_FUNCTION = re.compile(r"<function=([^>\n]+)>(.*)</function>", re.DOTALL)
_PARAMETER = re.compile(r"\s*<parameter=([^>\n]+)>(.*?)</parameter>", re.DOTALL)


def _xml_call(block: str) -> dict | None:
    """Turn `<function=NAME><parameter=ARG>value</parameter>...</function>` into an OpenAI tool call.

    The template writes each value between newlines: one leading and one trailing newline are dropped.
    Object and array values are read as JSON (the template writes them with `tojson`); every other value
    stays a string, as the template's `string` filter wrote it. Anything else in the block: not a call.
    """
    whole = _FUNCTION.fullmatch(block)
    if whole is None:
        return None
    name, body, args, at = whole.group(1).strip(), whole.group(2), {}, 0
    while (param := _PARAMETER.match(body, at)) is not None:
        value = param.group(2).removeprefix("\n").removesuffix("\n")
        args[param.group(1).strip()] = _value(value)
        at = param.end()
    return _openai_call(name, args) if name and not body[at:].strip() else None


def _value(text: str) -> Any:
    if text.strip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


FORMATS = {"json": _json_call, "xml": _xml_call}


def _open_prefix_len(text: str) -> int:
    """Length of the longest suffix of `text` that could still grow into OPEN."""
    for size in range(min(len(text), len(OPEN) - 1), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0


class ToolCallSplitter:
    """Feed answer text in pieces; get back ("content", text) and ("tool_call", call) items in order.

    `fmt` ("json" or "xml") is how the blocks' insides are read. Text that may be the start of a block is held until it is known; a block that is not a call in that
    format goes out as plain text. Whitespace around calls is dropped once a call has been made.
    """

    def __init__(self, fmt: str = "json") -> None:
        self._parse = FORMATS[fmt]
        self._pending = ""
        self._in_block = False
        self.calls: list[dict] = []

    def feed(self, text: str) -> list[tuple[str, Any]]:
        """Add text; return the items that are now certain."""
        self._pending += text
        out: list[tuple[str, Any]] = []
        while True:
            if self._in_block:
                end = self._pending.find(CLOSE)
                if end < 0:
                    return out
                self._close_block(end, out)
                continue
            start = self._pending.find(OPEN)
            if start < 0:
                keep = _open_prefix_len(self._pending)
                self._emit(self._pending[: len(self._pending) - keep], out)
                self._pending = self._pending[len(self._pending) - keep :]
                return out
            self._emit(self._pending[:start], out)
            self._pending = self._pending[start + len(OPEN) :]
            self._in_block = True

    def finish(self) -> list[tuple[str, Any]]:
        """Flush what is held; an unclosed block is plain text."""
        out: list[tuple[str, Any]] = []
        rest = (OPEN if self._in_block else "") + self._pending
        self._pending, self._in_block = "", False
        self._emit(rest, out)
        return out

    def _close_block(self, end: int, out: list) -> None:
        inner = self._pending[:end]
        self._pending = self._pending[end + len(CLOSE) :]
        self._in_block = False
        call = self._parse(inner.strip())
        if call is None:
            self._emit(OPEN + inner + CLOSE, out)
            return
        self.calls.append(call)
        out.append(("tool_call", call))

    def _emit(self, text: str, out: list) -> None:
        if text and not (self.calls and not text.strip()):
            out.append(("content", text))


def split_tool_calls(text: str, fmt: str = "json") -> tuple[str, tuple[dict, ...]]:
    """Split a whole answer into its text and its tool calls, as the streamed response did."""
    splitter = ToolCallSplitter(fmt)
    items = splitter.feed(text) + splitter.finish()
    content = "".join(value for kind, value in items if kind == "content")
    return content, tuple(value for kind, value in items if kind == "tool_call")
