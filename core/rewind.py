"""Rewinding a session: rollback to a number of messages, and edited histories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import InvalidRequest
from .ports import ModelPort, TokenizerPort
from .prompt import render_suffix
from .session import Session
from .values import Message

__all__ = ["rollback", "edited_prefix"]


def edited_prefix(transcript: Sequence[Message], messages: Sequence[Message]) -> int | None:
    """Return how many stored messages an edited full history keeps, or None if it is not one.

    A request is an edited history when it repeats at least two messages of the transcript, then
    diverges. One repeated message is a delta: a lone repeated user message that says the same thing
    again, or the session's system message that clients such as the published `spl` send before every
    new message (`split_new_messages` keeps it once).
    """
    p = 0
    for stored, sent in zip(transcript, messages, strict=False):
        if not stored.same_as(sent):
            break
        p += 1
    if p == len(transcript) or p == 0:
        return None
    return p if p >= 2 else None


def rollback(model: ModelPort, tok: TokenizerPort, session: Session, keep: object,
             kwargs: Mapping[str, object] | None = None) -> None:
    """Cut `session` back to its first `keep` messages. Run on the engine thread.

    The nearest turn mark at or before the cut restores the state cheaply; messages between it and the
    cut are prefilled again from their template rendering. Without a usable mark the state starts empty.
    """
    if not isinstance(keep, int) or isinstance(keep, bool) or not 0 <= keep <= len(session.transcript):
        raise InvalidRequest(
            f"keep_messages must be an integer from 0 to {len(session.transcript)}", param="keep_messages"
        )
    kept = list(session.transcript[:keep])
    mark = session.mark_at_or_before(keep)
    if mark is None:
        session.reset(model)
    else:
        session.restore(model, mark)
    base = len(session.transcript)
    if keep > base:
        text = session.trailer + render_suffix(tok, kept[:base], kept, dict(kwargs or {}))
        session.append_now(model, tok.encode(text))
        session.close_turn(kept, "")
    session.add_mark(model.checkpoint(session.state))
