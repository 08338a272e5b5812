"""Work out which text a turn must prefill, given what the session already holds.

The chat template renders a whole conversation; the session's state holds a prefix of that rendering
(plus the model's own generations). Rendering is concatenative for the templates we support, so the new
text is the rendering of the longer conversation minus the rendering of the stored one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from .errors import InvalidRequest
from .ports import TokenizerPort
from .values import Message

__all__ = ["PromptPlan", "plan_prompt", "split_new_messages", "closing_text", "render_suffix"]


@attrs.frozen
class PromptPlan:
    """The text of a turn's prompt, split where the generation prompt begins.

    `context` closes the previous turn and renders the new messages; `generation` is the template's
    generation prompt (for example "<|im_start|>assistant\\n<think>\\n").
    """

    context: str
    generation: str


def split_new_messages(transcript: Sequence[Message], messages: Sequence[Message]) -> tuple[Message, ...]:
    """Return the messages that are new to the session.

    A request that begins with the whole stored transcript is a full history (what OpenAI clients send);
    anything else is a delta to append (what the seed's examples send). A session keeps one leading
    system message: a delta that starts with the same one has it dropped (the published `spl` client
    sends it every turn); one that starts with a different one is refused, since the cached text begins
    with the old one (rollback to 0 messages, or a new session, starts over with another).
    """
    n = len(transcript)
    if n and len(messages) >= n and all(a.same_as(b) for a, b in zip(transcript, messages[:n], strict=True)):
        new = tuple(messages[n:])
    else:
        new = _without_leading_system(transcript, tuple(messages))
    if not new:
        raise InvalidRequest("messages repeat the session's history and add nothing new", param="messages")
    return new


def _without_leading_system(transcript: Sequence[Message], messages: tuple[Message, ...]) -> tuple[Message, ...]:
    if not (transcript and messages and transcript[0].role == "system" and messages[0].role == "system"):
        return messages
    if not messages[0].same_as(transcript[0]):
        raise InvalidRequest(
            "the session already starts with a different system message; roll the session back to 0 "
            "messages (POST /v1/sessions/{id}/rollback) or use a new session to change it", param="messages"
        )
    return messages[1:]


def _render(tok: TokenizerPort, messages: Sequence[Message], gen: bool, kwargs: Mapping[str, object]) -> str:
    if not messages:
        return ""
    return tok.render(list(messages), add_generation_prompt=gen, **kwargs)


def _suffix(longer: str, prefix: str, what: str) -> str:
    if not longer.startswith(prefix):
        raise InvalidRequest(f"the chat template does not render {what} as an extension of the history")
    return longer[len(prefix) :]


def plan_prompt(
    tok: TokenizerPort,
    transcript: Sequence[Message],
    new: Sequence[Message],
    trailer: str,
    kwargs: Mapping[str, object],
) -> PromptPlan:
    """Plan the text to prefill for `new` messages after `transcript` (whose closing is `trailer`)."""
    history = _render(tok, transcript, False, kwargs)
    without_gen = _render(tok, [*transcript, *new], False, kwargs)
    with_gen = _render(tok, [*transcript, *new], True, kwargs)
    context = trailer + _suffix(without_gen, history, "the new messages")
    return PromptPlan(context=context, generation=_suffix(with_gen, without_gen, "the generation prompt"))


def closing_text(tok: TokenizerPort, transcript: Sequence[Message], kwargs: Mapping[str, object]) -> str:
    """Return the template text after the last end-of-turn marker of a rendered transcript.

    The model stops at its end-of-turn token without feeding it; this text (the marker and whatever the
    template puts after it) closes the turn at the start of the next one.
    """
    rendered = _render(tok, transcript, False, kwargs)
    best = -1
    marker = ""
    for eos in tok.eos_token_ids:
        text = tok.decode([eos])
        pos = rendered.rfind(text) if text else -1
        if pos > best:
            best, marker = pos, text
    return rendered[best:] if best >= 0 and marker else ""


def canonical_assistant_text(
    tok: TokenizerPort, before: Sequence[Message], assistant: Message, kwargs: Mapping[str, object]
) -> str:
    """Return the template's rendering of one assistant message after `before`, without its closing."""
    full = _render(tok, [*before, assistant], False, kwargs)
    head = _render(tok, before, False, kwargs)
    body = _suffix(full, head, "the assistant message")
    tail = closing_text(tok, [*before, assistant], kwargs)
    return body[: len(body) - len(tail)] if tail and body.endswith(tail) else body


def render_suffix(
    tok: TokenizerPort, before: Sequence[Message], after: Sequence[Message], kwargs: Mapping[str, object]
) -> str:
    """Return the rendering of `after` (which extends `before`) past the rendering of `before`."""
    return _suffix(_render(tok, after, False, kwargs), _render(tok, before, False, kwargs), "the kept messages")
