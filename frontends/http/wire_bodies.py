"""The bodies of the OpenAI-surface routes, declared once: chat and text completions, tokenize, detokenize.

Each field's type is its rule, checked on requests and stated in /openapi.json, and so is each rule between
fields (a `Rule`: its check and its JSON Schema); wire.py, wire_completions.py and tokenize.py add the rules
that need the loaded model or look into values (a named tool_choice must be among the tools).
"""

from __future__ import annotations

from typing import Any

from superlinear.core.choices import MAX_CHOICES
from superlinear.core.logprobs import MAX_TOP_LOGPROBS

from .contract import Obj, Rule, body, field
from .fields import (
    Anything,
    Bool,
    Custom,
    Id,
    Int,
    ListOf,
    MapOf,
    Num,
    OneOf,
    Refs,
    Refused,
    Str,
    is_int,
    require,
)
from .wire_format import RESPONSE_FORMAT, TOOL_CHOICE, NamedToolChoice
from .wire_messages import MESSAGES, TOOLS, ChatMessage

__all__ = ["ChatCompletionRequest", "CompletionRequest", "TokenizeRequest", "DetokenizeRequest",
           "StreamOptions", "RepetitionDetection", "MAX_STOP_STRINGS", "MAX_STOP_CHARS", "MAX_LOGIT_BIAS",
           "MAX_DETOKENIZE_IDS", "TEMPLATE_KWARGS"]

# Stop strings: how many a request may give and how long each may be (characters).
MAX_STOP_STRINGS = 16
MAX_STOP_CHARS = 1024
MAX_LOGIT_BIAS = 1024
MAX_DETOKENIZE_IDS = 1 << 20
_ARGUMENT = "unrecognized request argument {name!r}"


def _stop(value: Any, where: str) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value
    require(isinstance(stops, list) and all(isinstance(s, str) and s for s in stops)
            and len(stops) <= MAX_STOP_STRINGS,
            f"stop must be a non-empty string or a list of at most {MAX_STOP_STRINGS} of them", where)
    require(all(len(s) <= MAX_STOP_CHARS for s in stops),
            f"each stop string may be at most {MAX_STOP_CHARS} characters long", where)
    return tuple(stops)


def _stop_schema(refs: Refs) -> dict:
    one = {"type": "string", "minLength": 1, "maxLength": MAX_STOP_CHARS}
    return {"anyOf": [one, {"type": "array", "maxItems": MAX_STOP_STRINGS, "items": one}]}


# "self" would collide with the renderer's own parameter (a TypeError, not the client's template).
_RESERVED = ("messages", "add_generation_prompt", "tools", "bos_token", "eos_token", "self")


def _template_kwargs(value: Any, where: str) -> dict:
    require(isinstance(value, dict), f"{where} must be an object", where)
    reserved = sorted(set(value) & set(_RESERVED))
    require(not reserved, f"{where} may not set {', '.join(reserved)}", where)
    return dict(value)


TEMPLATE_KWARGS = Custom(_template_kwargs, lambda refs: {
    "type": "object", "not": {"anyOf": [{"required": [k]} for k in _RESERVED]},
    "description": f"extra chat template variables; {', '.join(_RESERVED)} are reserved"})
_BOUNDED = Int(1, 1 << 20)
_NEUTRAL_PENALTY = OneOf((0, 0.0), "{where} is not supported by this server")


@body(unknown="stream_options has no field {name!r}", doc="only with stream: true")
class StreamOptions:
    include_usage: bool = field(Bool(), False)
    # include_obfuscation pads chunks against side channels; plain SSE needs none.
    include_obfuscation: bool = field(Bool(), False)
    # The published server's flush batching; every token is flushed here, so they are checked and ignored.
    flush_every_n_tokens: int | None = field(Int(0))
    flush_every_ms: int | None = field(Int(0))


@body(unknown="repetition_detection has no field {name!r}")
class RepetitionDetection:
    enabled: bool = field(Bool(), True)
    tail_len: int | None = field(_BOUNDED)
    min_repeats: int | None = field(_BOUNDED)
    max_period: int | None = field(_BOUNDED)
    min_unique_tokens: int | None = field(_BOUNDED)
    check_every: int | None = field(_BOUNDED)


def _needs(field_: str, kind: str, flag: str) -> dict:
    """JSON Schema: when `field_` is given (of type `kind`), `flag` must be true."""
    return {"if": {"properties": {field_: {"type": kind}}, "required": [field_]},
            "then": {"properties": {flag: {"const": True}}, "required": [flag]}}


def _stream_options_need_stream(body: SamplingFields, raw: dict) -> None:
    require(body.stream_options is None or body.stream, "stream_options is only allowed when stream is true",
            "stream_options")


def _top_logprobs_need_logprobs(body: ChatCompletionRequest, raw: dict) -> None:
    require(body.top_logprobs is None or body.logprobs, "top_logprobs needs logprobs: true", "top_logprobs")


def _no_echo_with_logprobs(body: CompletionRequest, raw: dict) -> None:
    require(not (body.echo and body.logprobs is not None), "echo with logprobs is not supported: the prompt's "
            "log-probabilities are not computed", "logprobs")


def _required_needs_tools(body: ChatCompletionRequest, raw: dict) -> None:
    require(body.tool_choice != "required" or bool(body.tools), 'tool_choice "required" needs tools', "tool_choice")


def _forced_excludes_json(body: ChatCompletionRequest, raw: dict) -> None:
    forced = body.tool_choice == "required" or isinstance(body.tool_choice, NamedToolChoice)
    json_format = body.response_format is not None and body.response_format.type != "text"
    require(not (forced and json_format), "response_format json and a forced tool_choice exclude each other",
            "response_format")


# A forced tool choice ("required" or a named function) and a JSON response format: the answer can't be both.
_FORCED = {"anyOf": [{"const": "required"}, {"type": "object"}]}
_JSON_FORMAT = {"type": "object", "properties": {"type": {"enum": ["json_object", "json_schema"]}}, "required": ["type"]}
_REQUIRED_RULE = Rule(_required_needs_tools, {
    "if": {"properties": {"tool_choice": {"const": "required"}}, "required": ["tool_choice"]},
    "then": {"properties": {"tools": {"type": "array", "minItems": 1}}, "required": ["tools"]}})
_FORCED_RULE = Rule(_forced_excludes_json, {"not": {"properties": {"tool_choice": _FORCED,
                                                                   "response_format": _JSON_FORMAT},
                                                    "required": ["tool_choice", "response_format"]}})
_STREAM_RULE = Rule(_stream_options_need_stream, _needs("stream_options", "object", "stream"))
_TOP_LOGPROBS_RULE = Rule(_top_logprobs_need_logprobs, _needs("top_logprobs", "integer", "logprobs"))
_ECHO_RULE = Rule(_no_echo_with_logprobs, {"not": {"properties": {"echo": {"const": True},
                                                                  "logprobs": {"type": "integer"}},
                                                   "required": ["echo", "logprobs"]}})


@body(unknown=_ARGUMENT)
class SamplingFields:
    """What chat and text completions share."""

    model: str | None = field(Str())
    max_tokens: int | None = field(Int(1))
    temperature: float | None = field(Num(0.0, 2.0))
    top_p: float | None = field(Num(0.0, 1.0))
    top_k: int = field(Int(0), 0)
    seed: int | None = field(Int(-(1 << 63), (1 << 64) - 1))
    stop: tuple[str, ...] = field(Custom(_stop, _stop_schema), ())
    n: int = field(Int(1, MAX_CHOICES), 1, doc="choices from one prefill; more than 1 only without session_id")
    stream: bool = field(Bool(), False)
    stream_options: StreamOptions | None = field(Obj(StreamOptions, inline=True))
    logit_bias: dict | None = field(MapOf(Num(-100, 100), "[0-9]{1,9}", MAX_LOGIT_BIAS,
                                          f"an object of at most {MAX_LOGIT_BIAS} token ids"),
                                    doc="token id -> bias added to its logit before sampling "
                                        "(ids must be in the vocabulary)")
    presence_penalty: float | None = field(_NEUTRAL_PENALTY)
    frequency_penalty: float | None = field(_NEUTRAL_PENALTY)
    user: str | None = field(Str())
    repetition_detection: RepetitionDetection | None = field(Obj(RepetitionDetection))


@body(unknown=_ARGUMENT, rules=(_STREAM_RULE, _TOP_LOGPROBS_RULE, _REQUIRED_RULE, _FORCED_RULE))
class ChatCompletionRequest(SamplingFields):
    messages: tuple[ChatMessage, ...] = field(MESSAGES, required=True)
    max_completion_tokens: int | None = field(Int(1))
    tools: list | None = field(TOOLS)
    tool_choice: Any = field(TOOL_CHOICE)
    parallel_tool_calls: bool | None = field(Bool())
    response_format: Any = field(RESPONSE_FORMAT)
    logprobs: bool = field(Bool(), False, doc="return each answer token's log-probability")
    top_logprobs: int | None = field(Int(0, MAX_TOP_LOGPROBS), doc="also the most likely alternatives at "
                                     "each position; needs logprobs: true")
    session_id: str | None = field(Id())
    reasoning_budget: int | None = field(Int(1))
    chat_template_kwargs: dict | None = field(TEMPLATE_KWARGS)
    discard_thinking: bool = field(Bool(), True)
    stream_thinking: bool = field(Bool(), False, doc="also send each thinking delta as delta.thinking "
                                  "(published client)")
    # Fields that never change the output: accepted (when of the right type) and ignored.
    metadata: dict | None = field(Anything(dict))
    store: bool | None = field(Bool())
    service_tier: str | None = field(Str())
    prompt_cache_key: str | None = field(Str())
    safety_identifier: str | None = field(Str())
    extra: dict | None = field(Anything(dict), doc="the published server's options; ignored")
    # Fields that would change the result if honoured: accepted only at their neutral value.
    reasoning_effort: Any = field(Refused())
    functions: Any = field(Refused())
    function_call: Any = field(Refused())
    audio: Any = field(Refused())
    modalities: Any = field(OneOf((["text"],), "{where} is not supported by this server"))
    prediction: Any = field(Refused())
    web_search_options: Any = field(Refused())


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and all(is_int(i) for i in value)


def _prompt(raw: Any, where: str) -> list[int] | str:
    """A string, one token-id list, or a one-element list of either: the text or the ids."""
    if isinstance(raw, list) and len(raw) == 1 and (isinstance(raw[0], str) or _is_ids(raw[0])):
        raw = raw[0]
    require(isinstance(raw, str) or _is_ids(raw),
            "prompt must be a string or a list of token ids (one prompt per request)", where)
    require(isinstance(raw, str) or all(i >= 0 for i in raw), "prompt token ids are never negative", where)
    return raw


def _prompt_schema(refs: Refs) -> dict:
    ids = {"type": "array", "items": {"type": "integer", "minimum": 0}}
    return {"anyOf": [{"type": "string"}, ids,
                      {"type": "array", "minItems": 1, "maxItems": 1, "items": {"anyOf": [{"type": "string"}, ids]}}],
            "description": "a string or a list of token ids (one prompt per request)"}


def _suffix(value: Any, where: str) -> str:
    require(value == "", "suffix is not supported: fill-in-the-middle needs a model trained for it; send the "
            "text before the gap as the prompt", where)
    return value


@body(unknown=_ARGUMENT, rules=(_STREAM_RULE, _ECHO_RULE))
class CompletionRequest(SamplingFields):
    prompt: Any = field(Custom(_prompt, _prompt_schema), required=True)
    echo: bool = field(Bool(), False)
    logprobs: int | None = field(Int(0, MAX_TOP_LOGPROBS))
    suffix: str | None = field(Custom(_suffix, lambda refs: {"enum": [""]}),
                               doc="fill-in-the-middle is not supported")
    best_of: int | None = field(OneOf((1,), "best_of is not supported by this server (only 1)"))
    session_id: Any = field(Refused("session_id is not supported on /v1/completions: a session holds a chat "
                                    "transcript; use /v1/chat/completions with it"),
                            doc="sessions hold chat transcripts: use chat completions")


_PROMPT_ONLY = ("messages", "add_generation_prompt", "chat_template_kwargs", "tools")


def _prompt_or_messages(body: TokenizeRequest, raw: dict) -> None:
    require((body.prompt is None) != (body.messages is None), "give exactly one of prompt and messages", "prompt")
    require(body.prompt is None or not set(_PROMPT_ONLY[1:]) & set(raw),
            "add_generation_prompt, chat_template_kwargs and tools go with messages", "prompt")


_PROMPT_OR_MESSAGES = Rule(_prompt_or_messages, {"oneOf": [
    {"required": ["prompt"], "not": {"anyOf": [{"required": [k]} for k in _PROMPT_ONLY]}},
    {"required": ["messages"], "not": {"required": ["prompt"]}}]})


@body(rules=(_PROMPT_OR_MESSAGES,),
      doc="a prompt as is, or messages rendered by the chat template as a stateless chat turn prefills them "
          "(the generation prompt included unless add_generation_prompt is false); no BOS/EOS is ever added")
class TokenizeRequest:
    model: str | None = field(Str())
    prompt: str | None = field(Str(), nullable=False)
    messages: tuple[ChatMessage, ...] | None = field(MESSAGES, nullable=False)
    add_special_tokens: bool = field(Bool(), True)
    add_generation_prompt: bool = field(Bool(), True)
    return_token_strs: bool = field(Bool(), False)
    chat_template_kwargs: dict | None = field(TEMPLATE_KWARGS)
    tools: list | None = field(TOOLS)


@body()
class DetokenizeRequest:
    model: str | None = field(Str())
    tokens: tuple[int, ...] = field(ListOf(Int(0), max_items=MAX_DETOKENIZE_IDS, what="a list of token ids",
                                                     indexed=False),
                                    required=True)
