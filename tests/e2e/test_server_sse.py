"""Chat completions against a real spl-server: SSE conformance per API.md and the standard fields.

The default model has random weights, so these tests check structure and equalities between runs
(greedy decoding is deterministic), never what the text says.
"""

import json

import pytest
import requests
from openai import OpenAI

NO_THINK = {"enable_thinking": False}
ALLOWED_FINISH = {"stop", "length", "tool_calls", "repetition"}
USAGE_KEYS = {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details",
              "completion_tokens_details"}


@pytest.fixture(scope="module")
def client(strict_server):
    return OpenAI(base_url=f"{strict_server}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


def post(url, body, **kw):
    return requests.post(f"{url}/v1/chat/completions", json=body, timeout=120, **kw)


def sse_events(resp) -> list[str]:
    """Split a raw SSE body into the payloads of its `data:` events, checking the framing."""
    raw = resp.content.decode("utf-8")
    assert raw.endswith("\n\n"), raw[-200:]
    events = raw.split("\n\n")[:-1]
    for event in events:
        assert event.startswith("data: ") and "\n" not in event, event
    return [event[len("data: "):] for event in events]


def check_sse(resp, include_usage: bool) -> list[dict]:
    """Assert API.md's streaming rules on a raw response; return the chunks (without [DONE])."""
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    payloads = sse_events(resp)
    assert payloads[-1] == "[DONE]" and "[DONE]" not in payloads[:-1]
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert not any("error" in c for c in chunks), chunks
    assert len({(c["id"], c["created"], c["model"], c["object"]) for c in chunks}) == 1
    assert chunks[0]["object"] == "chat.completion.chunk" and chunks[0]["id"].startswith("chatcmpl-")
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"] is not None]
    assert len(finishes) == 1 and finishes[0]["choices"][0]["finish_reason"] in ALLOWED_FINISH
    if include_usage:
        *body, last = chunks
        assert all("usage" in c and c["usage"] is None for c in body)
        assert last["choices"] == [] and set(last["usage"]) == USAGE_KEYS
        assert body[-1] is finishes[0], "the finish chunk comes right before the usage chunk"
    else:
        # Only the finish chunk carries usage (the published superlinear client reads it there).
        assert not any("usage" in c for c in chunks[:-1])
        assert chunks[-1] is finishes[0] and set(chunks[-1]["usage"]) == USAGE_KEYS
    return chunks


def joined(chunks, key):
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c["choices"])


@pytest.mark.parametrize("include_usage", [True, False])
def test_a_stream_follows_the_sse_rules_and_matches_the_plain_answer(strict_server, include_usage):
    body = {"messages": [{"role": "user", "content": "Count with me."}], "max_tokens": 10, "temperature": 0}
    plain = post(strict_server, body).json()
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = check_sse(post(strict_server, {**body, "stream": True, **options}, stream=True), include_usage)
    message = plain["choices"][0]["message"]
    assert joined(chunks, "reasoning_content") == message.get("reasoning_content", "")
    assert joined(chunks, "content") == message["content"]
    finish = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"])
    assert finish["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]
    if include_usage:
        assert chunks[-1]["usage"] == plain["usage"]


def test_the_sdk_streams_answer_text_equal_to_the_plain_call(client, model):
    args = dict(model=model, messages=[{"role": "user", "content": "Say something."}], max_tokens=12,
                temperature=0, extra_body={"chat_template_kwargs": NO_THINK})
    plain = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **args))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + plain.usage.completion_tokens
    assert plain.usage.prompt_tokens_details.cached_tokens == 0
    assert plain.usage.completion_tokens_details.reasoning_tokens == 0


def test_stop_strings_end_the_answer_and_never_reach_the_client(strict_server):
    """The built-in stop-string rule is active although the server runs with --no-plugins."""
    body = {"messages": [{"role": "user", "content": "Write a line."}], "max_tokens": 24, "temperature": 0,
            "chat_template_kwargs": NO_THINK}
    text = post(strict_server, body).json()["choices"][0]["message"]["content"]
    stop = text[4:7]
    if len(text) < 8 or "\ufffd" in stop or not stop.strip():
        pytest.skip(f"the greedy answer {text!r} has no usable stop string")
    expected = text[: text.find(stop)]
    stopped = post(strict_server, {**body, "stop": [stop, "never-appears-xyz"]}).json()
    assert stopped["choices"][0]["message"]["content"] == expected
    assert stopped["choices"][0]["finish_reason"] == "stop"
    chunks = check_sse(post(strict_server, {**body, "stop": stop, "stream": True}, stream=True), False)
    assert joined(chunks, "content") == expected


def test_max_completion_tokens_wins_over_max_tokens_and_bounds_the_answer(strict_server):
    body = {"messages": [{"role": "user", "content": "Go on."}], "temperature": 0, "max_tokens": 9,
            "max_completion_tokens": 3}
    usage = post(strict_server, body).json()["usage"]
    assert usage["completion_tokens"] <= 3
    default = post(strict_server, {"messages": body["messages"], "temperature": 0}).json()["usage"]
    assert default["completion_tokens"] <= 16, "--max-tokens sets the default completion length"


def test_the_same_seed_gives_the_same_sample(strict_server):
    body = {"messages": [{"role": "user", "content": "Pick words."}], "max_tokens": 8, "temperature": 1.0,
            "top_p": 0.9, "top_k": 40, "seed": 1234}
    first, second = post(strict_server, body).json(), post(strict_server, body).json()
    assert first["choices"][0]["message"] == second["choices"][0]["message"]


def test_a_reasoning_budget_caps_the_thinking(strict_server):
    body = {"messages": [{"role": "user", "content": "Think first."}], "max_tokens": 10, "temperature": 0,
            "reasoning_budget": 2}
    answer = post(strict_server, body).json()
    assert answer["usage"]["completion_tokens_details"]["reasoning_tokens"] <= 2
    thinking = post(strict_server, {**body, "reasoning_budget": None}).json()
    assert "reasoning_content" in thinking["choices"][0]["message"]


def test_tools_reach_the_chat_template(strict_server):
    tool = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                             "parameters": {"type": "object",
                                                            "properties": {"city": {"type": "string"}}}}}
    body = {"messages": [{"role": "user", "content": "Weather?"}], "max_tokens": 1, "temperature": 0}
    without = post(strict_server, body).json()["usage"]["prompt_tokens"]
    auto = post(strict_server, {**body, "tools": [tool], "tool_choice": "auto"}).json()
    assert auto["usage"]["prompt_tokens"] > without + 20, "the tool's JSON is rendered into the prompt"
    none = post(strict_server, {**body, "tools": [tool], "tool_choice": "none"}).json()
    assert none["usage"]["prompt_tokens"] == auto["usage"]["prompt_tokens"]


def test_cached_tokens_count_what_a_session_reuses(strict_server, client, model):
    sid = "sse-cached"
    assert requests.post(f"{strict_server}/v1/sessions", json={"session_id": sid}, timeout=10).status_code == 201
    args = dict(model=model, max_tokens=4, temperature=0, extra_body={"session_id": sid})
    first = client.chat.completions.create(messages=[{"role": "user", "content": "One."}], **args)
    history = [{"role": "user", "content": "One."},
               {"role": "assistant", "content": first.choices[0].message.content}]
    second = client.chat.completions.create(messages=[*history, {"role": "user", "content": "Two."}], **args)
    info = requests.get(f"{strict_server}/v1/sessions/{sid}", timeout=10).json()
    assert second.usage.prompt_tokens_details.cached_tokens > 0
    assert info["message_count"] == 4, "the full history was recognised, not appended again"
    requests.delete(f"{strict_server}/v1/sessions/{sid}", timeout=10)
