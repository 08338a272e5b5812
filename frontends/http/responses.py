"""The response bodies, declared once as body classes: /openapi.json states them, and every route that builds
an answer from values (chat and text completions and their stream chunks, models, tokenize, and the session
and snapshot routes of session_responses.py, /health, and every error answer of every route, in-band stream
errors included) builds it as one of these and sends `to_json` of it.

Every field is sent unless declared `optional`; `nullable` ones may be null. Each class is closed: it declares
every field sent.
"""

from __future__ import annotations

from .contract import UNSET, Obj, body, optional, sent
from .fields import Anything, Bool, Const, Int, ListOf, MapOf, Num, OneOf, Str

__all__ = ["ErrorResponse", "Health", "RankStatus", "Model", "ModelList", "Usage", "ChatLogprobs", "ChatCompletion", "ChatCompletionChunk",
           "Completion", "CompletionChunk", "TokenizeResponse", "DetokenizeResponse"]


_STR, _INT, _NUM, _BOOL = Str(), Int(), Num(), Bool()


@body(doc="OpenAI's error object")
class ErrorObject:
    message: str = sent(_STR)
    type: str = sent(_STR, doc="invalid_request_error, not_found_error, conflict_error or server_error")
    param: str | None = sent(_STR, nullable=True, doc="the request field or path id at fault")
    code: str | None = sent(_STR, nullable=True, doc="a stable snake_case code (see the README's error table)")


@body(doc="every 4xx and 5xx answer, and an error event in a stream")
class ErrorResponse:
    error: ErrorObject = sent(Obj(ErrorObject, inline=True))


@body(doc="one rank of a model sharded with --tensor-parallel")
class RankStatus:
    rank: int = sent(_INT)
    alive: bool = sent(_BOOL)
    pid: int | None = sent(_INT, nullable=True)
    device: str = sent(_STR)
    weight_bytes: int = optional(_INT, doc="the rank's parameter bytes, once it has loaded them")


@body()
class Health:
    status: str = sent(OneOf(("ok", "loading", "error", "stopping")))
    model: str = optional(_STR)
    sessions: int = optional(_INT)
    torch_threads: int | None = optional(_INT, nullable=True, default=UNSET,
                                         doc="torch's intra-op CPU threads on the engine thread")
    ranks: tuple[RankStatus, ...] = optional(ListOf(Obj(RankStatus)), doc="with --tensor-parallel, every rank")
    error: str | None = optional(_STR, nullable=True, default=UNSET)


@body()
class Model:
    id: str = sent(_STR)
    object: str = sent(Const("model"))
    created: int = sent(_INT)
    owned_by: str = sent(_STR)


@body()
class ModelList:
    object: str = sent(Const("list"))
    data: tuple[Model, ...] = sent(ListOf(Obj(Model)))


@body()
class PromptDetails:
    cached_tokens: int = sent(_INT)


@body()
class CompletionDetails:
    reasoning_tokens: int = sent(_INT)


@body()
class Usage:
    prompt_tokens: int = sent(_INT)
    completion_tokens: int = sent(_INT)
    total_tokens: int = sent(_INT)
    prompt_tokens_details: PromptDetails = sent(Obj(PromptDetails, inline=True))
    completion_tokens_details: CompletionDetails = sent(Obj(CompletionDetails, inline=True))


@body()
class TokenLogprob:
    token: str = sent(_STR)
    logprob: float = sent(_NUM)
    bytes: list | None = sent(ListOf(_INT), nullable=True)


@body()
class TokenLogprobs(TokenLogprob):
    top_logprobs: list = sent(ListOf(Obj(TokenLogprob, inline=True)))


@body()
class ChatLogprobs:
    content: list | None = sent(ListOf(Obj(TokenLogprobs, inline=True)), nullable=True)
    refusal: list | None = sent(ListOf(Anything(dict)), nullable=True)


_CHAT_FINISH = OneOf(("stop", "length", "tool_calls", "repetition"))
_TEXT_FINISH = OneOf(("stop", "length", "repetition"))
_USAGE_DOC = ("with stream_options.include_usage: null on every chunk but the last, which has no choices and the "
              "usage; without it, the usage is on the finish chunk")


@body()
class CalledFunction:
    name: str = sent(_STR)
    arguments: str = sent(_STR)


@body()
class MadeToolCall:
    id: str = sent(_STR)
    type: str = sent(Const("function"))
    function: CalledFunction = sent(Obj(CalledFunction, inline=True))


@body()
class AssistantMessage:
    role: str = sent(Const("assistant"))
    content: str | None = sent(_STR, nullable=True)
    reasoning_content: str = optional(_STR)
    tool_calls: list = optional(ListOf(Obj(MadeToolCall, inline=True)))


@body()
class ChatChoice:
    index: int = sent(_INT)
    message: AssistantMessage = sent(Obj(AssistantMessage, inline=True))
    finish_reason: str = sent(_CHAT_FINISH)
    logprobs: ChatLogprobs | None = sent(Obj(ChatLogprobs), nullable=True)


@body()
class ChatCompletion:
    id: str = sent(_STR)
    object: str = sent(Const("chat.completion"))
    created: int = sent(_INT)
    model: str = sent(_STR)
    choices: list = sent(ListOf(Obj(ChatChoice, inline=True)))
    usage: Usage = sent(Obj(Usage))


@body()
class ToolCallDelta:
    index: int = sent(_INT)
    id: str = sent(_STR)
    type: str = sent(Const("function"))
    function: CalledFunction = sent(Obj(CalledFunction, inline=True))


@body()
class Delta:
    role: str = optional(Const("assistant"))
    content: str = optional(_STR)
    reasoning_content: str = optional(_STR)
    thinking: str = optional(_STR, doc="the reasoning_content again, with stream_thinking (published client)")
    tool_calls: list = optional(ListOf(Obj(ToolCallDelta, inline=True)))


@body()
class ChunkChoice:
    index: int = sent(_INT)
    delta: Delta = sent(Obj(Delta, inline=True))
    finish_reason: str | None = sent(_CHAT_FINISH, nullable=True)
    logprobs: ChatLogprobs | None = sent(Obj(ChatLogprobs), nullable=True)


@body(doc="one server-sent event of a streamed chat completion")
class ChatCompletionChunk:
    id: str = sent(_STR)
    object: str = sent(Const("chat.completion.chunk"))
    created: int = sent(_INT)
    model: str = sent(_STR)
    choices: list = sent(ListOf(Obj(ChunkChoice, inline=True)))
    usage: Usage | None = optional(Obj(Usage), nullable=True, default=UNSET, doc=_USAGE_DOC)


@body()
class TextLogprobs:
    tokens: list = sent(ListOf(_STR))
    token_logprobs: list = sent(ListOf(_NUM))
    top_logprobs: list = sent(ListOf(MapOf(_NUM)))
    text_offset: list = sent(ListOf(_INT))


@body()
class TextChoice:
    index: int = sent(_INT)
    text: str = sent(_STR)
    logprobs: TextLogprobs | None = sent(Obj(TextLogprobs, inline=True), nullable=True)
    finish_reason: str = sent(_TEXT_FINISH)


@body()
class Completion:
    id: str = sent(_STR)
    object: str = sent(Const("text_completion"))
    created: int = sent(_INT)
    model: str = sent(_STR)
    choices: list = sent(ListOf(Obj(TextChoice, inline=True)))
    usage: Usage = sent(Obj(Usage))


@body()
class TextChunkChoice:
    index: int = sent(_INT)
    text: str = sent(_STR)
    logprobs: TextLogprobs | None = sent(Obj(TextLogprobs, inline=True), nullable=True)
    finish_reason: str | None = sent(_TEXT_FINISH, nullable=True)


@body(doc="one server-sent event of a streamed text completion")
class CompletionChunk:
    id: str = sent(_STR)
    object: str = sent(Const("text_completion"))
    created: int = sent(_INT)
    model: str = sent(_STR)
    choices: list = sent(ListOf(Obj(TextChunkChoice, inline=True)))
    usage: Usage | None = optional(Obj(Usage), nullable=True, default=UNSET, doc=_USAGE_DOC)


@body()
class TokenizeResponse:
    count: int = sent(_INT)
    max_model_len: int = sent(_INT)
    tokens: list = sent(ListOf(_INT))
    token_strs: list | None = sent(ListOf(_STR), nullable=True)


@body()
class DetokenizeResponse:
    prompt: str = sent(_STR)
