"""The OpenAI surface users of vLLM and llama.cpp take for granted, through the official SDK on a real server."""

import pytest
import requests
from openai import OpenAI

from superlinear.adapters import default_model_dir
from superlinear.adapters.tokenizer import HFTokenizer

NO_THINK = {"chat_template_kwargs": {"enable_thinking": False}}
ASK = [{"role": "user", "content": "Tell me about the sea."}]


@pytest.fixture
def client(server):
    return OpenAI(base_url=f"{server}/v1", api_key="not-needed", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def tok():
    return HFTokenizer.from_dir(default_model_dir())


def model_id(client) -> str:
    return client.models.list().data[0].id


def test_logprobs_are_the_greedy_tokens_and_stream_the_same(client):
    args = dict(model=model_id(client), messages=ASK, max_tokens=12, temperature=0, logprobs=True,
                top_logprobs=4, extra_body=NO_THINK)
    plain = client.chat.completions.create(**args).choices[0]
    items = plain.logprobs.content
    assert len(items) >= 1 and "".join(i.token for i in items) == plain.message.content
    for item in items:
        tops = [t.logprob for t in item.top_logprobs]
        assert len(tops) == 4 and tops == sorted(tops, reverse=True)
        assert item.token == item.top_logprobs[0].token and item.logprob == pytest.approx(tops[0]) and tops[0] <= 0
    chunks = list(client.chat.completions.create(stream=True, **args))
    streamed = [i for c in chunks if c.choices and c.choices[0].logprobs for i in c.choices[0].logprobs.content]
    assert [(i.token, i.logprob) for i in streamed] == [(i.token, i.logprob) for i in items]


def test_sampled_tokens_report_their_logprob_under_the_model_distribution(client):
    reply = client.chat.completions.create(model=model_id(client), messages=ASK, max_tokens=16, temperature=1,
                                           seed=5, logprobs=True, top_logprobs=20, extra_body=NO_THINK)
    for item in reply.choices[0].logprobs.content:
        listed = {t.token: t.logprob for t in item.top_logprobs}
        assert item.logprob <= 0
        if item.token in listed:
            assert item.logprob == pytest.approx(listed[item.token])
        else:
            assert item.logprob <= min(listed.values()) + 1e-6


def test_logit_bias_bans_the_greedy_token_and_forces_another(client, tok):
    args = dict(model=model_id(client), messages=ASK, max_tokens=4, temperature=0, extra_body=NO_THINK)
    first = client.chat.completions.create(logprobs=True, **args).choices[0].logprobs.content[0].token
    [first_id] = tok.encode(first)
    banned = client.chat.completions.create(logprobs=True, logit_bias={str(first_id): -100}, **args)
    assert banned.choices[0].logprobs.content[0].token != first
    [sea] = tok.encode(" sea")[:1]
    forced = client.chat.completions.create(logit_bias={str(sea): 100}, **args).choices[0]
    assert forced.message.content == tok.decode([sea] * 4)


def test_logit_bias_outside_the_vocabulary_is_a_400(server, client):
    body = {"messages": ASK, "max_tokens": 1, "logit_bias": {str(10**8): 5}}
    answer = requests.post(f"{server}/v1/chat/completions", json=body, timeout=30)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "logit_bias"


def test_tokenize_and_detokenize_round_trip_a_prompt(server, tok):
    text = "The sea is deep, and <|im_start|> is text here."
    answer = requests.post(f"{server}/tokenize", json={"prompt": text, "return_token_strs": True}, timeout=10).json()
    assert answer["tokens"] == tok.encode(text) and answer["count"] == len(answer["tokens"])
    assert answer["token_strs"] == [tok.decode([i]) for i in answer["tokens"]] and answer["max_model_len"] > 0
    back = requests.post(f"{server}/detokenize", json={"tokens": answer["tokens"]}, timeout=10).json()
    assert back == {"prompt": text}


def test_tokenize_counts_messages_as_a_chat_turn_prefills_them(server, client):
    messages = [{"role": "system", "content": "Be brief."}, *ASK]
    counted = requests.post(f"{server}/tokenize", json={"messages": messages, **NO_THINK}, timeout=10).json()
    reply = client.chat.completions.create(model=model_id(client), messages=messages, max_tokens=1, temperature=0,
                                           extra_body=NO_THINK)
    assert counted["count"] == reply.usage.prompt_tokens and counted["token_strs"] is None
    bare = requests.post(f"{server}/tokenize", timeout=10,
                         json={"messages": messages, "add_generation_prompt": False, **NO_THINK}).json()
    assert bare["tokens"] == counted["tokens"][: bare["count"]] and bare["count"] < counted["count"]


@pytest.mark.parametrize("route,body,param", [
    ("tokenize", {}, "prompt"), ("tokenize", {"prompt": "a", "messages": ASK}, "prompt"),
    ("tokenize", {"prompt": 5}, "prompt"), ("tokenize", {"prompt": "a", "frobnicate": 1}, "frobnicate"),
    ("detokenize", {"tokens": [-1]}, "tokens"), ("detokenize", {"tokens": [10**9]}, "tokens"),
    ("detokenize", {}, "tokens"),
])
def test_bad_tokenize_bodies_are_400_naming_the_field(server, route, body, param):
    answer = requests.post(f"{server}/{route}", json=body, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param, answer.text


def test_a_text_completion_streams_the_same_text_and_echoes_the_prompt(client, tok):
    args = dict(model=model_id(client), prompt="The sea is", max_tokens=10, temperature=0, logprobs=3)
    plain = client.completions.create(**args)
    choice = plain.choices[0]
    assert plain.object == "text_completion" and choice.finish_reason in ("stop", "length")
    assert plain.usage.prompt_tokens == len(tok.encode("The sea is"))
    assert "".join(choice.logprobs.tokens) == choice.text and len(choice.logprobs.tokens) >= 1
    for chosen, top in zip(choice.logprobs.token_logprobs, choice.logprobs.top_logprobs, strict=True):
        assert len(top) <= 3 and chosen == pytest.approx(max(top.values()))  # greedy: the most likely token
    chunks = list(client.completions.create(stream=True, stream_options={"include_usage": True}, **args))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == choice.text
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    echoed = client.completions.create(**{**args, "logprobs": None}, echo=True)
    assert echoed.choices[0].text == "The sea is" + choice.text
    by_ids = client.completions.create(**{**args, "logprobs": None, "prompt": tok.encode("The sea is")})
    assert by_ids.choices[0].text == choice.text
    several = client.completions.create(model=model_id(client), prompt="Once upon a time", max_tokens=8,
                                        temperature=1, seed=2, n=3)
    assert [c.index for c in several.choices] == [0, 1, 2] and len({c.text for c in several.choices}) > 1


def test_a_completion_refuses_suffix_and_sessions_clearly(client):
    import openai

    with pytest.raises(openai.BadRequestError) as suffix:
        client.completions.create(model=model_id(client), prompt="def f(", suffix="\n    return 1", max_tokens=4)
    assert suffix.value.body["param"] == "suffix" and "fill-in-the-middle" in suffix.value.body["message"]
    with pytest.raises(openai.BadRequestError) as session:
        client.completions.create(model=model_id(client), prompt="Hi", max_tokens=2,
                                  extra_body={"session_id": "my-chat"})
    assert session.value.body["param"] == "session_id"


def test_special_tokens_the_model_emits_stay_out_of_the_text(server, client, tok):
    start = tok.token_id("<|im_start|>")
    assert start in tok.special_ids
    args = dict(model=model_id(client), messages=ASK, max_tokens=5, temperature=0, extra_body=NO_THINK,
                logit_bias={str(start): 100})
    reply = client.chat.completions.create(**args)
    assert reply.choices[0].message.content == "" and reply.usage.completion_tokens == 5
    chunks = list(client.chat.completions.create(stream=True, **args))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""
    text = client.completions.create(model=model_id(client), prompt="The sea", max_tokens=3, temperature=0,
                                     logit_bias={str(start): 100})
    assert text.choices[0].text == ""


def test_n_choices_are_sampled_independently_from_one_prompt(server, client):
    poem = [{"role": "user", "content": "Write a short poem."}]
    args = dict(model=model_id(client), messages=poem, max_tokens=12, temperature=1, seed=4, n=3, extra_body=NO_THINK)
    reply = client.chat.completions.create(**args)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert len({c.message.content for c in reply.choices}) > 1
    single = client.chat.completions.create(**{**args, "n": 1})
    assert reply.usage.prompt_tokens == single.usage.prompt_tokens
    assert reply.usage.completion_tokens > single.usage.completion_tokens
    chunks = list(client.chat.completions.create(stream=True, **args))
    for choice in reply.choices:
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices[0].index == choice.index)
        assert text == choice.message.content
    requests.post(f"{server}/v1/sessions", json={"session_id": "n-sess"}, timeout=10)
    refused = requests.post(f"{server}/v1/chat/completions", timeout=10,
                            json={"messages": ASK, "n": 2, "session_id": "n-sess", "max_tokens": 2})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "n"


PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age", "likes"],
          "properties": {"name": {"type": "string", "maxLength": 12},
                         "age": {"type": "integer", "minimum": 0, "maximum": 120},
                         "likes": {"type": "array", "maxItems": 3, "items": {"enum": ["sea", "sun", "tea"]}}}}


def test_json_schema_replies_at_temperature_one_are_valid_50_of_50(client):
    import json

    import jsonschema

    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    replies = []
    for seed in range(5):
        reply = client.chat.completions.create(
            model=model_id(client), messages=[{"role": "user", "content": "Describe a person."}], n=10,
            temperature=1, seed=seed, max_tokens=120, response_format=fmt, extra_body=NO_THINK)
        replies += [c.message.content for c in reply.choices]
    assert len(replies) == 50
    for text in replies:
        jsonschema.validate(json.loads(text), PERSON)
    assert len(set(replies)) > 1


def test_json_object_replies_are_json_objects_streamed_too(client):
    import json

    args = dict(model=model_id(client), messages=ASK, temperature=1, seed=3, max_tokens=80,
                response_format={"type": "json_object"}, extra_body=NO_THINK)
    reply = client.chat.completions.create(**args).choices[0]
    if reply.finish_reason == "stop":
        assert isinstance(json.loads(reply.message.content), dict)
    else:
        assert reply.message.content.startswith("{")
    chunks = list(client.chat.completions.create(stream=True, **args))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == reply.message.content


@pytest.mark.parametrize("schema,strict,words", [
    ({"type": "objectx"}, False, "objectx"), ({"type": "string", "format": "no-such-format"}, True, "no-such-format"),
    ({"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}, False, "nowhere"),
])
def test_schemas_that_cannot_be_enforced_are_a_400_that_says_why(client, schema, strict, words):
    import openai

    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": strict}}
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=model_id(client), messages=ASK, max_tokens=5, response_format=fmt)
    assert bad.value.body["param"] == "response_format.json_schema.schema" and words in bad.value.body["message"]


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 16}}, "required": ["city"],
    "additionalProperties": False}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"],
    "additionalProperties": False}}}


@pytest.mark.parametrize("choice,parallel", [("required", False), ("required", None),
                                             ({"type": "function", "function": {"name": "get_time"}}, None)])
def test_forced_tool_calls_match_the_declared_parameters(client, choice, parallel):
    import json

    import jsonschema

    extra = {} if parallel is None else {"parallel_tool_calls": parallel}
    for seed in range(3):
        reply = client.chat.completions.create(
            model=model_id(client), messages=[{"role": "user", "content": "What's the weather in Paris?"}],
            tools=[WEATHER, TIME], tool_choice=choice, temperature=1, seed=seed, max_tokens=100, extra_body=NO_THINK,
            **extra)
        out = reply.choices[0]
        # One call ends the answer; "required" with parallel calls lets this small model go on calling.
        assert out.message.tool_calls and (out.finish_reason == "tool_calls" or choice == "required" and not extra)
        assert len(out.message.tool_calls) == 1 or choice == "required" and not extra
        for call in out.message.tool_calls:
            tool = {"get_weather": WEATHER, "get_time": TIME}[call.function.name]
            jsonschema.validate(json.loads(call.function.arguments), tool["function"]["parameters"])
            if isinstance(choice, dict):
                assert call.function.name == "get_time"


def test_a_forced_tool_choice_needs_a_declared_tool(client):
    import openai

    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=model_id(client), messages=ASK, tools=[WEATHER], max_tokens=5,
                                       tool_choice={"type": "function", "function": {"name": "nope"}})
    assert bad.value.body["param"] == "tool_choice"


def test_a_thinking_reply_thinks_freely_then_answers_in_the_schema(client):
    import json

    import jsonschema

    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
    reply = client.chat.completions.create(
        model=model_id(client), messages=[{"role": "user", "content": "Describe a person."}], temperature=1, seed=1,
        max_tokens=150, response_format=fmt, extra_body={"reasoning_budget": 12})
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "stop" and message.model_extra.get("reasoning_content")
    jsonschema.validate(json.loads(message.content), PERSON)


LONG_SYSTEM = "You are a helpful assistant who knows the sea, its tides, ships and harbors. " * 12


def agent_loop(client, turns: int = 3) -> list:
    """A stateless agent: each turn resends the whole conversation with the reply it got; then a new
    conversation with the same long system prompt."""
    messages = [{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": "Tell me about the sea."}]
    out = []
    for turn in range(turns):
        reply = client.chat.completions.create(model=model_id(client), messages=messages, max_tokens=16,
                                               temperature=0, extra_body=NO_THINK)
        out.append(reply)
        messages += [{"role": "assistant", "content": reply.choices[0].message.content},
                     {"role": "user", "content": f"And then? ({turn})"}]
    fresh = [{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": "Name a ship."}]
    out.append(client.chat.completions.create(model=model_id(client), messages=fresh, max_tokens=16,
                                              temperature=0, extra_body=NO_THINK))
    return out


def test_a_stateless_agent_loop_reports_cached_tokens_and_answers_as_without_the_cache(
        server, client, launch_server, server_env, tmp_path):
    system_tokens = requests.post(f"{server}/tokenize", timeout=10, json={
        "messages": [{"role": "system", "content": LONG_SYSTEM}], "add_generation_prompt": False, **NO_THINK}).json()
    assert system_tokens["count"] >= 256  # long enough to be cached on its own
    looped = agent_loop(client)
    usages = [r.usage for r in looped]
    assert usages[0].prompt_tokens_details.cached_tokens == 0
    for before, now in zip(usages[:-2], usages[1:-1], strict=True):
        cached = now.prompt_tokens_details.cached_tokens
        assert before.prompt_tokens < cached < now.prompt_tokens
    # A new conversation starts from the shared system prompt.
    assert usages[-1].prompt_tokens_details.cached_tokens == system_tokens["count"]
    with launch_server(server_env, tmp_path / "server.log", "--no-plugins", "--prefix-cache", "0") as (url, _):
        plain = agent_loop(OpenAI(base_url=f"{url}/v1", api_key="-", max_retries=0, timeout=120))
    assert all(r.usage.prompt_tokens_details.cached_tokens == 0 for r in plain)
    assert [r.choices[0].message.content for r in plain] == [r.choices[0].message.content for r in looped]
    assert [r.usage.prompt_tokens for r in plain] == [r.usage.prompt_tokens for r in looped]
