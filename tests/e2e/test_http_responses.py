"""Every chat and text completion answer, and every stream chunk, is built as a response body class: each one
sent validates against that class's schema in /openapi.json (the app over the core's fakes), over the shapes
a random request rarely reaches (tool calls, logprobs, n choices, echo, usage on or off, thinking deltas)."""

import json

import jsonschema
import pytest
from superlinear.frontends.http.contract import UNSET, to_json
from superlinear.frontends.http.openapi import openapi_document
from superlinear.frontends.http.responses import ChatCompletionChunk, Delta

from .test_openai_inprocess import client, model, services  # noqa: F401 - fixtures
from .test_server_inprocess import CALL, NO_THINK, TOOL, USER

DOCUMENT = openapi_document()


def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}",
                                            "components": DOCUMENT["components"]})


def _events(text: str) -> list[dict]:
    data = [e[len("data: "):] for e in text.split("\n\n") if e.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


CHAT = [dict(temperature=1, seed=3, max_tokens=8), dict(temperature=1, seed=3, max_tokens=8, stream_thinking=True),
        dict(temperature=1, seed=3, max_tokens=6, logprobs=True, top_logprobs=3, chat_template_kwargs=NO_THINK),
        dict(n=3, temperature=1, seed=2, max_tokens=5, logprobs=True, top_logprobs=2),
        dict(tools=[TOOL], chat_template_kwargs=NO_THINK, script=True)]
TEXT = [dict(temperature=1, seed=3, max_tokens=6), dict(temperature=1, seed=3, max_tokens=6, echo=True, n=2),
        dict(temperature=1, seed=3, max_tokens=6, logprobs=2)]
STREAMS = [{}, {"stream": True}, {"stream": True, "stream_options": {"include_usage": True}}]


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("args", CHAT)
def test_chat_answers_and_chunks_match_their_schemas(client, model, args, stream):  # noqa: F811
    args = dict(args)
    if args.pop("script", False):
        model.script = [f"Let me check. {CALL}"]
    result = client.simulate_post("/v1/chat/completions", json={"messages": USER, **args, **stream})
    assert result.status_code == 200, result.text
    if not stream:
        _validator("ChatCompletion").validate(result.json)
        return
    chunks = _events(result.text)
    for chunk in chunks:
        _validator("ChatCompletionChunk").validate(chunk)
    with_usage = "stream_options" in stream
    # include_usage: usage on every chunk (null but the last); else on the finish chunk of a single choice.
    last = chunks[-1] if args.get("n", 1) == 1 else None
    assert all(("usage" in c) == (with_usage or c is last) for c in chunks)
    assert all(set(choice) == {"index", "delta", "finish_reason", "logprobs"} for c in chunks for choice in c["choices"])


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("args", TEXT)
def test_text_answers_and_chunks_match_their_schemas(client, args, stream):  # noqa: F811
    result = client.simulate_post("/v1/completions", json={"prompt": "hello", **args, **stream})
    assert result.status_code == 200, result.text
    if not stream:
        _validator("Completion").validate(result.json)
        return
    for chunk in _events(result.text):
        _validator("CompletionChunk").validate(chunk)
        assert ("usage" in chunk) == ("stream_options" in stream)


def test_an_optional_field_is_left_out_at_its_default_and_sent_when_null_is_a_value():
    def chunk(usage):
        return to_json(ChatCompletionChunk(id="c", object="chat.completion.chunk", created=0, model="m",
                                           choices=[], usage=usage))

    assert "usage" not in chunk(UNSET)
    assert chunk(None)["usage"] is None
    assert to_json(Delta(content="x")) == {"content": "x"}
    assert to_json(Delta(role="assistant", content="")) == {"role": "assistant", "content": ""}


def test_a_session_history_with_tool_calls_comes_back_as_sent_and_matches_its_schema(client):  # noqa: F811
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    sent = [{"role": "user", "content": "weather?", "name": "ann"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
            {"role": "user", "content": "thanks"}]
    assert client.simulate_post("/v1/sessions", json={"session_id": "h"}).status_code == 201
    turn = client.simulate_post("/v1/chat/completions", json={"messages": sent, "session_id": "h", "max_tokens": 3,
                                                               "tools": [TOOL], "chat_template_kwargs": NO_THINK})
    assert turn.status_code == 200, turn.text
    history = client.simulate_get("/v1/sessions/h/history").json
    _validator("SessionHistory").validate(history)
    assert history["session_id"] == "h" and history["messages"][:4] == sent
    assert history["messages"][4]["role"] == "assistant"
