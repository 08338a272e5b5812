"""Request limits the server enforces on top of the core's: the prompt-size cap and the session-size cap."""

from __future__ import annotations

import attrs

from ...core import ChatRequest, ContextLengthExceeded, InvalidRequest, Message, SessionService
from ...core.prompt import split_new_messages
from ...core.rewind import edited_prefix
from .body import DEFAULT_MAX_BODY_BYTES

__all__ = ["Limits", "prompt_tokens", "check_prompt", "check_max_seq_len"]


@attrs.frozen
class Limits:
    """Caps from the command line; None means no cap beyond the core's own."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_prompt_tokens: int | None = None
    max_seq_len: int | None = None


def _conversation(transcript: list[Message], messages: tuple[Message, ...]) -> list[Message]:
    """The whole conversation a session turn will condition on, by the core's own reading of `messages`."""
    if edited_prefix(transcript, messages) is not None:
        return list(messages)
    try:
        return [*transcript, *split_new_messages(transcript, messages)]
    except InvalidRequest:
        # Nothing new: the core refuses the turn itself.
        return transcript


def prompt_tokens(sessions: SessionService, request: ChatRequest) -> int:
    """Count the tokens of a turn's prompt (what `usage.prompt_tokens` reports) by rendering it whole.

    Costs one tokenization of the conversation on the request thread, so it only runs under
    --max-prompt-tokens. A busy session counts 0: the turn will be refused as busy anyway.
    """
    messages = list(request.messages)
    if request.session_id is not None:
        session = sessions.session(request.session_id)
        if session.busy:
            return 0
        messages = _conversation(list(session.transcript), request.messages)
    text = sessions.tok.render(messages, add_generation_prompt=True, **request.template_kwargs)
    return len(sessions.tok.encode(text))


def check_prompt(sessions: SessionService, request: ChatRequest, limits: Limits) -> None:
    """Refuse a turn whose prompt exceeds --max-prompt-tokens (400 context_length_exceeded)."""
    cap = limits.max_prompt_tokens
    if cap is None:
        return
    n = prompt_tokens(sessions, request)
    if n > cap:
        raise ContextLengthExceeded(f"the prompt has {n} tokens; this server accepts at most {cap} "
                                    "(--max-prompt-tokens)", param="messages")


def check_max_seq_len(value: object, limits: Limits) -> None:
    """Refuse a session length over --max-seq-len; the core checks the type and the model's own limit."""
    cap = limits.max_seq_len
    if cap is not None and isinstance(value, int) and not isinstance(value, bool) and value > cap:
        raise InvalidRequest(f"max_seq_len {value} exceeds this server's cap {cap} (--max-seq-len)",
                             param="max_seq_len")
