"""The tokenizer adapter: a Hugging Face `tokenizer.json` plus its chat template, behind TokenizerPort."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Tokenizer

from superlinear.core.values import Message

from .chat_template import ChatTemplate, TemplateError, compile_template
from .generation import eos_token_ids

__all__ = ["HFTokenizer", "StreamDecoder"]

_REPLACEMENT = "\ufffd"
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
# Put after the first character of a special token's text that a client wrote, so that it reads as text.
_WORD_JOINER = "\u2060"


class StreamDecoder:
    """Incremental decoder that only emits text made of complete characters.

    It decodes a short window of ids: the last cleanly ended run (as left context, so decoders that
    depend on the preceding token stay right) and the ids not yet emitted. A trailing U+FFFD means the
    window ends inside a multi-byte character: the text before it goes out, that tail is held back until
    later ids complete it.
    """

    def __init__(self, tokenizer: Tokenizer):
        self._tok = tokenizer
        self._ids: list[int] = []
        # _ids[:_read] is context already emitted; of the pending decode, _emitted characters went out.
        self._read = 0
        self._emitted = 0

    def _decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=False)

    def push(self, token_id: int) -> str:
        """Add one id; return the text that is now complete."""
        self._ids.append(token_id)
        context = self._decode(self._ids[: self._read])
        full = self._decode(self._ids)
        stable = full.rstrip(_REPLACEMENT)
        start = len(context) + self._emitted
        delta = stable[start:]
        if stable == full:
            # A clean boundary: the pending ids become the next window's context.
            self._ids = self._ids[self._read :]
            self._read, self._emitted = len(self._ids), 0
        else:
            self._emitted += len(delta)
        return delta

    def flush(self) -> str:
        """Return whatever text is still held back (an unfinished character comes out as U+FFFD)."""
        context = self._decode(self._ids[: self._read])
        rest = self._decode(self._ids)[len(context) + self._emitted :]
        self._ids, self._read, self._emitted = [], 0, 0
        return rest


def _token_text(value: Any) -> str | None:
    """Read a special token as tokenizer_config.json writes it: a string or an AddedToken dict."""
    if isinstance(value, Mapping):
        return value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict[str, Any]:
    """Load a JSON object, or an empty one if the file is absent."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _template_source(directory: Path, config: Mapping[str, Any]) -> str | None:
    """Find the chat template: `chat_template.jinja` first, then tokenizer_config.json."""
    jinja_file = directory / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    source = config.get("chat_template")
    if isinstance(source, list):
        # Several named templates: HF uses the one called "default".
        named = {entry.get("name"): entry.get("template") for entry in source}
        source = named.get("default") or (source[0].get("template") if source else None)
    return source


def _register_declared_tokens(tokenizer: Tokenizer, config: Mapping[str, Any]) -> None:
    """Make tokens declared in added_tokens_decoder parse as single ids, as transformers does.

    Only tokens already in the vocabulary at the declared id are registered, so ids never shift.
    """
    known = {tok.content for tok in tokenizer.get_added_tokens_decoder().values()}
    for raw_id, entry in config.get("added_tokens_decoder", {}).items():
        content = entry.get("content")
        if content in known or tokenizer.token_to_id(content) != int(raw_id):
            continue
        special = bool(entry.get("special", True))
        token = AddedToken(content, special=special, normalized=False)
        if special:
            tokenizer.add_special_tokens([token])
        else:
            tokenizer.add_tokens([token])


class HFTokenizer:
    """TokenizerPort over a `tokenizers.Tokenizer` and a compiled chat template."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        chat_template: ChatTemplate | None = None,
        eos_token: str | None = None,
        bos_token: str | None = None,
        extra_eos_ids: Sequence[int] = (),
        fingerprint: Mapping[str, str] | None = None,
    ):
        """Wrap a loaded tokenizer; most callers want `from_dir`."""
        self._tok = tokenizer
        self._template = chat_template
        self._bos_token = bos_token
        self._eos_token = eos_token
        added = tokenizer.get_added_tokens_decoder()
        self._added = {tok.content: i for i, tok in added.items()}
        specials = sorted(
            (tok.content for tok in added.values() if tok.special and tok.content), key=len, reverse=True
        )
        self._specials = re.compile("|".join(map(re.escape, specials))) if specials else None
        self._special_ids = frozenset(i for i, tok in added.items() if tok.special)
        eos = {self.token_id(text) for text in ("<|im_end|>", eos_token) if text}
        self._eos_ids = frozenset(i for i in eos | set(extra_eos_ids) if i is not None)
        self._think = tuple(t if self._is_single_token(t) else None for t in (_THINK_OPEN, _THINK_CLOSE))
        self._fingerprint = dict(fingerprint or {})

    @property
    def tool_call_format(self) -> str:
        """How the chat template writes tool calls: "xml" or "json" (see `tool_call_format_of`)."""
        return tool_call_format_of(self._template.source if self._template is not None else "")

    @classmethod
    def from_dir(cls, path: str | Path) -> HFTokenizer:
        """Load `tokenizer.json`, `tokenizer_config.json`, the chat template and generation eos ids."""
        directory = Path(path)
        raw = (directory / "tokenizer.json").read_bytes()
        tokenizer = Tokenizer.from_str(raw.decode("utf-8"))
        config = _read_json(directory / "tokenizer_config.json")
        _register_declared_tokens(tokenizer, config)
        source = _template_source(directory, config)
        return cls(
            tokenizer,
            chat_template=compile_template(source) if source is not None else None,
            eos_token=_token_text(config.get("eos_token")),
            bos_token=_token_text(config.get("bos_token")),
            extra_eos_ids=eos_token_ids(directory),
            fingerprint={
                "tokenizer": hashlib.sha256(raw).hexdigest(),
                "chat_template": hashlib.sha256((source or "").encode("utf-8")).hexdigest(),
            },
        )

    def _is_single_token(self, text: str) -> bool:
        """Say whether `text` encodes to exactly one id that decodes back to it."""
        ids = self.encode(text)
        return len(ids) == 1 and self.decode(ids) == text

    @property
    def eos_token_ids(self) -> frozenset[int]:
        """Ids that end a generation."""
        return self._eos_ids

    @property
    def special_ids(self) -> frozenset[int]:
        """Ids of added tokens marked special (tool-call markers and the like usually are not)."""
        return self._special_ids

    @property
    def think_open(self) -> str | None:
        """Return "<think>" when it is a single token of this vocabulary, else None."""
        return self._think[0]

    @property
    def think_close(self) -> str | None:
        """Return "</think>" when it is a single token of this vocabulary, else None."""
        return self._think[1]

    @property
    def fingerprint(self) -> Mapping[str, str]:
        """sha256 of tokenizer.json's bytes and of the chat template text."""
        return dict(self._fingerprint)

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def backend_json(self) -> str:
        """The whole tokenizer as `tokenizer.json` text, declared added tokens included."""
        return self._tok.to_str()

    def encode(self, text: str) -> list[int]:
        """Encode text; special-token strings in it become their ids; no BOS/EOS is added."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        """Decode ids to text, special tokens included."""
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def token_id(self, text: str) -> int | None:
        """Return the id of a single special (added) token, or None."""
        return self._added.get(text)

    def decoder(self) -> StreamDecoder:
        """Return a fresh incremental decoder."""
        return StreamDecoder(self._tok)

    def _escape_specials(self, text: str) -> str:
        """Make special-token texts in client-written text read as text: a word joiner (U+2060, invisible)
        goes after their first character, so "<|im_start|>" typed in a message cannot open a turn."""
        if self._specials is None:
            return text
        return self._specials.sub(lambda m: m.group(0)[0] + _WORD_JOINER + m.group(0)[1:], text)

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool, **kwargs: object) -> str:
        """Render messages with the chat template; kwargs (tools, enable_thinking, ...) reach the template."""
        if self._template is None:
            raise TemplateError("this tokenizer has no chat template")
        # Caller kwargs may override the special-token texts but never collide with them.
        context: dict[str, Any] = {"bos_token": self._bos_token, "eos_token": self._eos_token, **kwargs}
        mapped = self.tool_call_format == "xml"
        messages_dicts = [_message_dict(m, self._escape_specials, mapped) for m in messages]
        return self._template.render(messages_dicts, add_generation_prompt=add_generation_prompt, **context)


def tool_call_format_of(template_source: str) -> str:
    """Say how a chat template writes tool calls.

    "xml": `<tool_call><function=NAME><parameter=ARG>value</parameter></function></tool_call>` (the
    released superlinear-exp model's Nemotron-H template, which spells `<function=`); "json" otherwise:
    `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (the embedded default model's template).
    """
    return "xml" if "<function=" in template_source else "json"


def _mapped_arguments(calls: tuple) -> tuple:
    """Give each call's JSON-string `arguments` as a mapping: the XML templates iterate them as items."""
    out = []
    for call in calls:
        function = call.get("function") if isinstance(call, Mapping) else None
        arguments = function.get("arguments") if isinstance(function, Mapping) else None
        if isinstance(arguments, str):
            try:
                parsed = json.loads(arguments)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                call = {**call, "function": {**function, "arguments": parsed}}
        out.append(call)
    return tuple(out)


def _message_dict(message: Message, escape: Callable[[str], str], mapped_arguments: bool = False) -> dict[str, Any]:
    """Convert a Message to the dict HF templates read; optional fields only when present.

    What a client wrote (every role but the assistant's) has its special-token texts escaped; the
    assistant's own text is the model's, and the template reads its thought markers. With
    `mapped_arguments` (XML tool-call templates) tool-call arguments are given as mappings.
    """
    content = message.content if message.role == "assistant" else escape(message.content)
    out: dict[str, Any] = {"role": message.role, "content": content}
    if message.reasoning_content is not None:
        out["reasoning_content"] = message.reasoning_content
    if message.tool_calls:
        out["tool_calls"] = _mapped_arguments(message.tool_calls) if mapped_arguments else message.tool_calls
    if message.name is not None:
        out["name"] = message.name
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out
