"""Render Hugging Face chat templates in a Jinja sandbox, with the extras HF templates expect.

The environment mirrors `transformers`' own (immutable sandbox, trim_blocks, lstrip_blocks, loop controls,
`raise_exception`, `tojson`, `strftime_now`, the `{% generation %}` marker) so that published templates
render here exactly as they do there.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from superlinear.core.errors import InvalidRequest

__all__ = ["ChatTemplate", "TemplateError", "compile_template", "plain"]


class TemplateError(InvalidRequest, ValueError):
    """A chat template failed to compile or render, or raised on purpose via `raise_exception`."""


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, made strict: an unsafe attribute raises instead of rendering as empty."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        # The stock sandbox returns an Undefined that prints as "", which hides probing templates.
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe.")


class _GenerationMarker(Extension):
    """Accept `{% generation %}...{% endgeneration %}`; HF uses it for training masks, rendering ignores it."""

    tags = {"generation"}

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body).set_lineno(lineno)


def _raise_exception(message: str) -> None:
    """Let a template reject its input (HF's `raise_exception`)."""
    raise TemplateError(str(message))


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """Serialize like HF's `tojson` filter: non-ASCII kept as is, no HTML escaping."""
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """Build the shared sandbox once, on first use."""
    env = _Sandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationMarker, "jinja2.ext.loopcontrols"],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    return env


def plain(value: Any) -> Any:
    """Turn frozen values (mappings, tuples) into the dicts and lists templates and `tojson` expect."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class ChatTemplate:
    """One compiled chat template."""

    def __init__(self, source: str, *, now: Callable[[], datetime] = datetime.now):
        """Compile `source`; `now` is the clock behind `strftime_now` (injectable for tests)."""
        self.source = source
        self._now = now
        try:
            self._template = _environment().from_string(source, globals={"strftime_now": self._strftime_now})
        except jinja2.TemplateError as exc:
            raise TemplateError(f"chat template does not compile: {exc}") from exc

    def _strftime_now(self, fmt: str) -> str:
        """Format the current time (HF's `strftime_now`), e.g. for a dated system prompt."""
        return self._now().strftime(fmt)

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        /,
        *,
        add_generation_prompt: bool = False,
        tools: Sequence[Mapping[str, Any]] | None = None,
        bos_token: str | None = None,
        eos_token: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Render message dicts (role, content, ...); extra kwargs (e.g. `enable_thinking`) reach the template."""
        context = {
            # A missing special token must print as nothing, not "None".
            "bos_token": bos_token or "",
            "eos_token": eos_token or "",
            **kwargs,
            "messages": plain(list(messages)),
            "tools": plain(list(tools)) if tools else None,
            "add_generation_prompt": add_generation_prompt,
        }
        try:
            return self._template.render(context)
        except jinja2.TemplateError as exc:
            raise TemplateError(f"chat template failed: {exc}") from exc


@functools.lru_cache(maxsize=32)
def compile_template(source: str) -> ChatTemplate:
    """Return the compiled template for `source`, compiling each distinct text only once."""
    return ChatTemplate(source)
