"""The OpenAI surface (logit_bias, logprobs, text completions, ...) through the HTTP app over the core's fakes."""

import math

import falcon.testing
import pytest

from superlinear.core import Engine, SessionService
from superlinear.core.prefix_cache import PrefixCache
from superlinear.core.testing import FakeModel, FakeTokenizer, FixedClock, SequentialIds
from superlinear.frontends.http import AppOptions, Limits, ServiceHolder, Services, create_app
from superlinear.frontends.http.compose import stop_rule_source
from superlinear.plugins import build_plugin_manager
from superlinear.storage import MemorySnapshotStore

from .test_server_inprocess import USER, chat, sse

NO_THINK = {"enable_thinking": False}

Z = ord("Z") + 5  # the fake tokenizer's id of "Z"


@pytest.fixture
def model():
    return FakeModel(FakeTokenizer())


@pytest.fixture
def services(model):
    """Services over a fresh fake model, with the built-in stop rules as the server wires them."""
    sessions = SessionService(
        model=model, tok=model.tok, engine=Engine().start(), store=MemorySnapshotStore(), clock=FixedClock(),
        ids=SequentialIds(), stop_rules=stop_rule_source(build_plugin_manager(load_entrypoints=False)),
        entropy=lambda: 7, default_max_seq_len=2048, prefix_cache=PrefixCache(model))
    yield Services(sessions=sessions, model_name="fake", default_max_tokens=256)
    sessions.engine.stop()


@pytest.fixture
def client(services):
    app = create_app(ServiceHolder(lambda: services, background=False), AppOptions(load_plugins=False,
                                                                                    limits=Limits()))
    return falcon.testing.TestClient(app)


def test_a_bias_of_100_makes_every_greedy_token_that_one(client):
    choice = chat(client, temperature=0, max_tokens=6, logit_bias={str(Z): 100},
                  chat_template_kwargs=NO_THINK).json["choices"][0]
    assert choice["message"]["content"] == "ZZZZZZ"


def test_a_bias_of_minus_100_bans_the_greedy_choice(client):
    plain = chat(client, temperature=0, max_tokens=4, chat_template_kwargs=NO_THINK).json
    first = plain["choices"][0]["message"]["content"][0]
    biased = chat(client, temperature=0, max_tokens=4, logit_bias={str(ord(first) + 5): -100},
                  chat_template_kwargs=NO_THINK).json
    assert biased["choices"][0]["message"]["content"][0] != first


@pytest.mark.parametrize("body,param", [
    ({"logit_bias": {"x": 1}}, "logit_bias"), ({"logit_bias": {"5": 101}}, "logit_bias"),
    ({"logit_bias": {"5": True}}, "logit_bias"), ({"logit_bias": {"99999999": 1}}, "logit_bias"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"), ({"top_logprobs": 2}, "top_logprobs"),
    ({"logprobs": "yes"}, "logprobs"),
])
def test_bad_logit_fields_are_400_naming_the_field(client, body, param):
    result = chat(client, max_tokens=2, **body)
    assert result.status_code == 400, result.text
    assert result.json["error"]["type"] == "invalid_request_error" and result.json["error"]["param"] == param


def test_logprobs_cover_the_answer_tokens_and_rank_the_alternatives(client):
    choice = chat(client, temperature=1, seed=3, max_tokens=12, logprobs=True, top_logprobs=5,
                  chat_template_kwargs=NO_THINK).json["choices"][0]
    items = choice["logprobs"]["content"]
    assert "".join(i["token"] for i in items) == choice["message"]["content"]
    for item in items:
        tops = [t["logprob"] for t in item["top_logprobs"]]
        assert len(tops) == 5 and tops == sorted(tops, reverse=True)
        assert item["logprob"] <= tops[0] + 1e-9 and item["logprob"] <= 0
        assert item["bytes"] == list(item["token"].encode())
        # The fake's 95 printable tokens hold all the mass: the top-5 can't exceed 1, the chosen is among them.
        assert sum(math.exp(t) for t in tops) <= 1 + 1e-9


def test_greedy_logprobs_name_the_top_token_and_streaming_gives_the_same(client):
    args = dict(temperature=0, max_tokens=10, logprobs=True, top_logprobs=3, chat_template_kwargs=NO_THINK)
    plain = chat(client, **args).json["choices"][0]["logprobs"]["content"]
    assert all(i["token"] == i["top_logprobs"][0]["token"] for i in plain)
    chunks = sse(chat(client, stream=True, **args))
    streamed = [i for c in chunks for i in ((c["choices"][0]["logprobs"] or {}).get("content") or [])]
    assert streamed == plain


def test_without_logprobs_the_choice_has_none(client):
    assert chat(client, max_tokens=3).json["choices"][0]["logprobs"] is None


def complete(client, **body):
    return client.simulate_post("/v1/completions", json={"prompt": "Once upon", **body})


def test_a_completion_continues_the_prompt_with_no_template(client):
    answer = complete(client, temperature=0, max_tokens=5).json
    assert answer["object"] == "text_completion" and answer["id"].startswith("cmpl-")
    choice = answer["choices"][0]
    assert len(choice["text"]) == 5 and choice["finish_reason"] == "length" and choice["logprobs"] is None
    assert answer["usage"]["prompt_tokens"] == len("Once upon") and answer["usage"]["completion_tokens"] == 5
    # The same ids as a prompt give the same continuation; echo puts the prompt in front.
    ids = [ord(c) + 5 for c in "Once upon"]
    again = complete(client, prompt=ids, temperature=0, max_tokens=5, echo=True).json["choices"][0]
    assert again["text"] == "Once upon" + choice["text"]


def test_a_streamed_completion_gives_the_same_text_and_logprobs(client):
    args = dict(temperature=0, max_tokens=6, logprobs=2)
    plain = complete(client, **args).json["choices"][0]
    chunks = sse(complete(client, stream=True, stream_options={"include_usage": True}, **args))
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == plain["text"]
    tokens = [t for c in chunks if c["choices"] and c["choices"][0]["logprobs"]
              for t in c["choices"][0]["logprobs"]["tokens"]]
    assert tokens == plain["logprobs"]["tokens"] and "".join(tokens) == plain["text"]
    assert plain["logprobs"]["text_offset"] == list(range(6))
    assert all(len(top) == 2 for top in plain["logprobs"]["top_logprobs"])
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]] \
        == ["length"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6


@pytest.mark.parametrize("body,param", [
    ({"suffix": "end"}, "suffix"), ({"session_id": "s"}, "session_id"), ({"prompt": ["a", "b"]}, "prompt"),
    ({"prompt": []}, "prompt"), ({"prompt": [-1]}, "prompt"), ({"echo": True, "logprobs": 1}, "logprobs"),
    ({"logprobs": 21}, "logprobs"), ({"best_of": 2}, "best_of"), ({"messages": []}, "messages"),
])
def test_bad_completion_bodies_are_400_naming_the_field(client, body, param):
    result = complete(client, max_tokens=2, **body)
    assert result.status_code == 400 and result.json["error"]["param"] == param, result.text


def test_special_tokens_a_model_emits_are_fed_but_not_text(client, model, services):
    client.simulate_post("/v1/sessions", json={"session_id": "s"})
    model.script = ["Hi<|endoftext|> there", "Hi<|endoftext|> there", "Hi<|endoftext|> there"]
    body = dict(chat_template_kwargs=NO_THINK, session_id="s")
    assert chat(client, **body).json["choices"][0]["message"]["content"] == "Hi there"
    # The session's state holds the reply as the template renders it, as its transcript says.
    state = services.sessions.session("s").state
    assert 0 not in state.ids and client.simulate_get("/v1/sessions/s/history").json["messages"][-1]["content"] \
        == "Hi there"
    chunks = sse(chat(client, stream=True, chat_template_kwargs=NO_THINK))
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hi there"
    assert complete(client, max_tokens=20).json["choices"][0]["text"] == "Hi there"


def test_n_choices_come_from_one_prefill_and_differ(client, model):
    before = model.appended
    answer = chat(client, n=4, temperature=1, seed=11, max_tokens=8, chat_template_kwargs=NO_THINK).json
    prompt = answer["usage"]["prompt_tokens"]
    # One prefill of the prompt; each choice then feeds only its own tokens.
    assert model.appended - before == prompt + sum(len(c["message"]["content"]) for c in answer["choices"])
    assert [c["index"] for c in answer["choices"]] == [0, 1, 2, 3]
    texts = [c["message"]["content"] for c in answer["choices"]]
    assert len(set(texts)) == 4 and answer["usage"]["completion_tokens"] == 4 * 8
    again = chat(client, n=4, temperature=1, seed=11, max_tokens=8, chat_template_kwargs=NO_THINK).json
    assert [c["message"]["content"] for c in again["choices"]] == texts


def test_n_choices_stream_with_their_indexes(client):
    args = dict(n=3, temperature=1, seed=2, max_tokens=6, chat_template_kwargs=NO_THINK)
    plain = chat(client, **args).json
    chunks = sse(chat(client, stream=True, stream_options={"include_usage": True}, **args))
    for i, choice in enumerate(plain["choices"]):
        mine = [c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["index"] == i]
        assert "".join(c["delta"].get("content") or "" for c in mine) == choice["message"]["content"]
        assert [c["finish_reason"] for c in mine if c["finish_reason"]] == [choice["finish_reason"]]
    assert chunks[-1]["usage"] == plain["usage"]


def test_n_in_a_session_is_a_400(client):
    client.simulate_post("/v1/sessions", json={"session_id": "s"})
    result = chat(client, n=2, session_id="s")
    assert result.status_code == 400 and result.json["error"]["param"] == "n"
    assert chat(client, n=17).json["error"]["param"] == "n"


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


@pytest.mark.parametrize("body,param", [
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"response_format": {"type": "xml"}}, "response_format"),
    ({"response_format": {"type": "json_schema"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a b"}}}, "response_format.json_schema.name"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": []}}},
     "response_format.json_schema.schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a", "strict": 1}}},
     "response_format.json_schema.strict"),
    ({"tool_choice": "required"}, "tool_choice"), ({"tools": [TOOL], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
    ({"tools": [TOOL], "tool_choice": "required", "response_format": {"type": "json_object"}}, "response_format"),
])
def test_structured_output_requests_the_fakes_cannot_serve_or_that_are_wrong_are_400(client, body, param):
    result = chat(client, max_tokens=2, **body)
    assert result.status_code == 400 and result.json["error"]["param"] == param, result.text


def test_a_text_response_format_is_free_text(client):
    assert chat(client, max_tokens=2, response_format={"type": "text"}).status_code == 200


def test_n_completions_come_from_one_prefill(client, model):
    before = model.appended
    answer = complete(client, n=3, temperature=1, seed=4, max_tokens=5, logprobs=1).json
    assert [c["index"] for c in answer["choices"]] == [0, 1, 2]
    texts = [c["text"] for c in answer["choices"]]
    assert len(set(texts)) == 3 and answer["usage"]["completion_tokens"] == 15
    assert model.appended - before == len("Once upon") + 15
    assert all("".join(c["logprobs"]["tokens"]) == c["text"] for c in answer["choices"])
    chunks = sse(complete(client, stream=True, n=3, temperature=1, seed=4, max_tokens=5))
    for i, text in enumerate(texts):
        assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"][0]["index"] == i) == text


def test_a_resent_conversation_reports_cached_tokens_and_the_cache_shows_in_metrics(client):
    first = chat(client, temperature=0, max_tokens=6, chat_template_kwargs=NO_THINK).json
    reply = first["choices"][0]["message"]["content"]
    messages = [*USER, {"role": "assistant", "content": reply}, {"role": "user", "content": "more"}]
    second = client.simulate_post("/v1/chat/completions", json={
        "messages": messages, "temperature": 0, "max_tokens": 6, "chat_template_kwargs": NO_THINK}).json
    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert first["usage"]["prompt_tokens"] < cached < second["usage"]["prompt_tokens"]
    text = client.simulate_get("/metrics").text
    assert "spl_prefix_cache_hits_total 1.0" in text and "spl_prefix_cache_bytes" in text


def test_completions_and_tokenize_take_the_model_by_its_short_id(services):
    """As chat completions do: a repository id is also served as its name without the owner."""
    import attrs

    named = attrs.evolve(services, model_name="owner/fake")
    client = falcon.testing.TestClient(create_app(ServiceHolder(lambda: named, background=False),
                                                  AppOptions(load_plugins=False, limits=Limits())))
    for model, status in (("fake", 200), ("owner/fake", 200), ("other/model", 400), (7, 400)):
        done = client.simulate_post("/v1/completions", json={"model": model, "prompt": "hi", "max_tokens": 2})
        counted = client.simulate_post("/tokenize", json={"model": model, "prompt": "hi"})
        assert (done.status_code, counted.status_code) == (status, status), (model, done.text, counted.text)
