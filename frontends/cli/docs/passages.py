"""Cut a document into passages for retrieval: paragraphs, with headings kept with what follows and very
long paragraphs split at sentence ends."""

from __future__ import annotations

import re

from superlinear.core.ports import Passage

__all__ = ["split_passages"]

_BLANK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+")


def _paragraphs(text: str, min_chars: int) -> list[str]:
    """Blank-line separated paragraphs; one shorter than `min_chars` (a heading) joins the next one."""
    out: list[str] = []
    carry = ""
    for para in (p.strip() for p in _BLANK.split(text.replace("\r\n", "\n"))):
        if not para:
            continue
        para = f"{carry}\n{para}" if carry else para
        carry = ""
        if len(para) < min_chars:
            carry = para
        else:
            out.append(para)
    if carry:
        out.append(carry)
    return out


def _pieces(paragraph: str, max_chars: int) -> list[str]:
    """Split a paragraph longer than `max_chars` at sentence ends (or hard, for one giant sentence)."""
    if len(paragraph) <= max_chars:
        return [paragraph]
    out: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(paragraph):
        while len(sentence) > max_chars:
            out.append(sentence[:max_chars])
            sentence = sentence[max_chars:]
        if current and len(current) + 1 + len(sentence) > max_chars:
            out.append(current)
            current = ""
        current = f"{current} {sentence}" if current else sentence
    if current:
        out.append(current)
    return out


def split_passages(source: str, text: str, min_chars: int = 80, max_chars: int = 1500) -> list[Passage]:
    """Return the passages of `text`, each named `source#pN` (N counting from 1)."""
    pieces = [piece for para in _paragraphs(text, min_chars) for piece in _pieces(para, max_chars)]
    return [Passage(source=f"{source}#p{i}", text=piece) for i, piece in enumerate(pieces, start=1)]
