"""The seed README's OpenAI SDK examples against a real spl-server."""

import pytest
import requests
from openai import OpenAI


@pytest.fixture
def client(server):
    return OpenAI(base_url=f"{server}/v1", api_key="not-needed", max_retries=0, timeout=120)


def test_health_and_models(server, client):
    health = requests.get(f"{server}/health", timeout=5).json()
    assert health["status"] == "ok"
    ids = [m.id for m in client.models.list().data]
    assert ids == [health["model"]]


def test_a_plain_chat_completion(client):
    response = client.chat.completions.create(
        model=client.models.list().data[0].id,
        messages=[{"role": "user", "content": "Hello!"}],
        max_tokens=20,
        temperature=0,
    )
    choice = response.choices[0]
    assert choice.finish_reason in ("stop", "length")
    assert isinstance(choice.message.content, str)
    assert response.usage.completion_tokens >= 1
    assert response.usage.prompt_tokens > 0


def test_streaming_gives_the_same_text_as_a_plain_call(client):
    args = dict(model=client.models.list().data[0].id,
                messages=[{"role": "user", "content": "Tell me something."}], max_tokens=16, temperature=0,
                extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    plain = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **args))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [plain.choices[0].finish_reason]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_the_stateful_session_example_reuses_the_cache(server, client):
    base = server
    assert requests.post(f"{base}/v1/sessions", json={"session_id": "my-chat"}, timeout=10).status_code == 201
    first = client.chat.completions.create(
        model=client.models.list().data[0].id,
        messages=[{"role": "user", "content": "My name is Alice."}],
        max_tokens=64, temperature=0, extra_body={"session_id": "my-chat"},
    )
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    info = requests.get(f"{base}/v1/sessions/my-chat", timeout=10).json()
    second = client.chat.completions.create(
        model=client.models.list().data[0].id,
        messages=[{"role": "user", "content": "What's my name?"}],
        max_tokens=12, temperature=0, extra_body={"session_id": "my-chat"},
    )
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached == info["cached_tokens"] > 0
    assert second.usage.prompt_tokens - cached < cached
    history = requests.get(f"{base}/v1/sessions/my-chat/history", timeout=10).json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert requests.delete(f"{base}/v1/sessions/my-chat", timeout=10).status_code == 200
    assert requests.get(f"{base}/v1/sessions/my-chat", timeout=10).status_code == 404


def test_errors_are_openai_error_objects(server):
    bad = requests.post(f"{server}/v1/chat/completions", data=b"{not json", timeout=10,
                        headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    assert set(bad.json()["error"]) == {"message", "type", "param", "code"}
    missing = requests.post(f"{server}/v1/chat/completions", json={"messages": []}, timeout=10)
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "messages"
    unknown = requests.post(f"{server}/v1/chat/completions", timeout=10,
                            json={"messages": [{"role": "user", "content": "x"}], "session_id": "nope"})
    assert unknown.status_code == 404
    dup = requests.post(f"{server}/v1/sessions", json={"session_id": "twice"}, timeout=10)
    again = requests.post(f"{server}/v1/sessions", json={"session_id": "twice"}, timeout=10)
    assert (dup.status_code, again.status_code) == (201, 409)
    assert requests.post(f"{server}/v1/sessions", json={"session_id": "../x"}, timeout=10).status_code == 400


def test_a_session_saved_to_disk_loads_back(server, client):
    requests.post(f"{server}/v1/sessions", json={"session_id": "snap-src"}, timeout=10)
    client.chat.completions.create(model=client.models.list().data[0].id, max_tokens=8, temperature=0,
                                   messages=[{"role": "user", "content": "Remember 42."}],
                                   extra_body={"session_id": "snap-src"})
    saved = requests.post(f"{server}/v1/sessions/snap-src/save", json={"title": "t"}, timeout=30).json()
    loaded = requests.post(f"{server}/v1/snapshots/{saved['snapshot_id']}/load",
                           json={"session_id": "snap-copy"}, timeout=30).json()
    assert loaded["tokens"] == saved["tokens"] > 0
    src = requests.get(f"{server}/v1/sessions/snap-src", timeout=10).json()
    copy = requests.get(f"{server}/v1/sessions/snap-copy", timeout=10).json()
    assert copy["cached_tokens"] == src["cached_tokens"]
    assert requests.get(f"{server}/v1/sessions/snap-copy/history", timeout=10).json()["messages"] == \
        requests.get(f"{server}/v1/sessions/snap-src/history", timeout=10).json()["messages"]
