"""Tool calls in the format the loaded chat template writes, read back from the template's own rendering.

The released superlinear-exp model's template writes `<tool_call><function=NAME><parameter=ARG>value
</parameter></function></tool_call>`; `data/xml_tool_calls.jinja` renders calls that way. The embedded
default model's template writes `<tool_call>{json}</tool_call>`. For each, an assistant message with
tool calls is rendered by the template, and the text the model would have written is split back into
the same calls, whole and streamed in pieces.
"""

import functools
import json
import random
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from superlinear.adapters import default_model_dir
from superlinear.adapters.chat_template import compile_template
from superlinear.adapters.tokenizer import HFTokenizer, tool_call_format_of
from superlinear.core import Message
from superlinear.core.testing import FakeTokenizer
from superlinear.frontends.http.toolcalls import ToolCallSplitter, split_tool_calls

XML_TEMPLATE = (Path(__file__).parent / "data" / "xml_tool_calls.jinja").read_text()
CALLS = (
    {"id": "call_1", "type": "function",
     "function": {"name": "get_weather", "arguments": json.dumps({"city": "São Paulo", "units": "metric"})}},
    {"id": "call_2", "type": "function",
     "function": {"name": "search", "arguments": json.dumps({"query": "a <b> & c\nsecond line",
                                                             "filters": {"year": 2024, "tags": ["x", "y"]},
                                                             "ids": [1, 2, 3]})}},
)


def tokenizer(template: str) -> HFTokenizer:
    raw = Tokenizer.from_file(str(default_model_dir() / "tokenizer.json"))
    return HFTokenizer(raw, chat_template=compile_template(template))


def rendered_answer(tok: HFTokenizer, content: str) -> str:
    """What the model writes for the assistant turn: the rendering between the turn's header and end."""
    text = tok.render([Message("user", "hi"), Message("assistant", content, tool_calls=CALLS)],
                      add_generation_prompt=False)
    return text.split("<|im_start|>assistant\n", 1)[1].split("<|im_end|>", 1)[0]


def names_and_arguments(calls) -> list:
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]


def test_the_format_is_read_from_the_template():
    assert tokenizer(XML_TEMPLATE).tool_call_format == "xml"
    assert HFTokenizer.from_dir(default_model_dir()).tool_call_format == "json"
    assert tool_call_format_of("") == "json"


@pytest.mark.parametrize("content", ["", "Let me look that up."])
def test_xml_calls_rendered_by_the_template_are_read_back(content):
    tok = tokenizer(XML_TEMPLATE)
    answer = rendered_answer(tok, content)
    assert "<function=get_weather>" in answer and "<parameter=city>\nSão Paulo\n</parameter>" in answer
    text, calls = split_tool_calls(answer, tok.tool_call_format)
    assert text.strip() == content
    assert names_and_arguments(calls) == names_and_arguments(CALLS)
    # The same text in random pieces, as it streams.
    rng, splitter, items, at = random.Random(len(answer)), ToolCallSplitter("xml"), [], 0
    while at < len(answer):
        step = rng.randint(1, 7)
        items += splitter.feed(answer[at : at + step])
        at += step
    items += splitter.finish()
    assert names_and_arguments(v for k, v in items if k == "tool_call") == names_and_arguments(CALLS)
    # Read back and rendered again, the calls give the same text (the session's cache stays valid).
    again = [{"type": "function", "function": c["function"]} for c in calls]
    assert tok.render([Message("assistant", text.strip(), tool_calls=tuple(again))], add_generation_prompt=False) \
        == tok.render([Message("assistant", content, tool_calls=CALLS)], add_generation_prompt=False)


def test_json_calls_of_the_default_template_still_work():
    tok = HFTokenizer.from_dir(default_model_dir())
    # The default template opens every assistant turn with an empty thought; the answer follows it.
    answer = rendered_answer(tok, "").removeprefix("<think></think>")
    text, calls = split_tool_calls(answer, tok.tool_call_format)
    assert text.strip() == "" and names_and_arguments(calls) == names_and_arguments(CALLS)


@pytest.mark.parametrize("block", [
    "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\nstray text</function>\n</tool_call>",
    "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n</tool_call>",
    '<tool_call>{"name": "f", "arguments": {}}</tool_call>',
])
def test_a_malformed_xml_block_stays_text(block):
    text, calls = split_tool_calls(block, "xml")
    assert calls == () and text == block


class XmlFakeTokenizer(FakeTokenizer):
    """The fake tokenizer of the core tests, with a template that writes XML tool calls."""

    tool_call_format = "xml"


def test_the_server_reads_xml_calls_when_the_template_writes_them():
    import falcon.testing

    from superlinear.core import Engine, SessionService
    from superlinear.core.testing import FakeModel, FixedClock, SequentialIds
    from superlinear.frontends.http import AppOptions, Limits, ServiceHolder, Services, create_app
    from superlinear.storage import MemorySnapshotStore

    model = FakeModel(XmlFakeTokenizer())
    sessions = SessionService(model=model, tok=model.tok, engine=Engine().start(), store=MemorySnapshotStore(),
                              clock=FixedClock(), ids=SequentialIds(), stop_rules=lambda r: [],
                              entropy=lambda: 7, default_max_seq_len=2048,
                              reply_parser=functools.partial(split_tool_calls, fmt="xml"))
    services = Services(sessions=sessions, model_name="fake", default_max_tokens=256)
    client = falcon.testing.TestClient(create_app(ServiceHolder(lambda: services, background=False),
                                                  AppOptions(load_plugins=False, limits=Limits())))
    call = "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>"
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    body = {"messages": [{"role": "user", "content": "weather?"}], "tools": [tool],
            "chat_template_kwargs": {"enable_thinking": False}}
    try:
        for stream in (False, True):
            model.script = [call + "<|im_end|>"]
            result = client.simulate_post("/v1/chat/completions", json={**body, "stream": stream})
            assert result.status_code == 200, result.text
            if stream:
                chunks = [json.loads(e[6:]) for e in result.text.split("\n\n") if e and e != "data: [DONE]"]
                calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks
                         if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
                finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
            else:
                message = result.json["choices"][0]
                calls, finish = message["message"]["tool_calls"], message["finish_reason"]
            assert finish == "tool_calls"
            assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] \
                == [("get_weather", {"city": "Paris"})]
    finally:
        sessions.engine.stop()


def _accepts(grammars, grammar, text: str, tok: HFTokenizer) -> bool:
    """Whether the grammar's matcher takes `text` (tokenized by the real tokenizer) and can end there."""
    import llguidance

    matcher = llguidance.LLMatcher(grammars._tokenizer(), grammars.compile(grammar))
    for tid in tok.encode(text):
        if not matcher.consume_token(tid):
            return False
    return matcher.is_accepting()


def test_forced_xml_tool_calls_follow_the_template_s_format():
    """tool_choice "required" with the released model's template: the grammar takes exactly the calls the
    template renders (declared parameters, objects and arrays as JSON of their schema), not JSON blocks."""
    from superlinear.adapters.grammar import LLGuidanceGrammars
    from superlinear.frontends.http.structured import tool_grammar

    tok = tokenizer(XML_TEMPLATE)
    grammars = LLGuidanceGrammars(tok, tok.vocab_size)
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}, "units": {"type": "string"}},
            "required": ["city"]}}},
        {"type": "function", "function": {"name": "search", "parameters": {
            "type": "object", "properties": {
                "query": {"type": "string"},
                "filters": {"type": "object", "properties": {"year": {"type": "integer"},
                                                             "tags": {"type": "array", "items": {"type": "string"}}},
                            "required": ["year"], "additionalProperties": False},
                "ids": {"type": "array", "items": {"type": "integer"}}},
            "required": ["query", "filters"]}}},
    ]
    several = tool_grammar(tools, True, "xml")
    # What the model writes under the grammar: the template's layout, JSON values compact.
    answer = ("<tool_call>\n<function=get_weather>\n<parameter=city>\nSão Paulo\n</parameter>\n"
              "<parameter=units>\nmetric\n</parameter>\n</function>\n</tool_call>\n"
              "<tool_call>\n<function=search>\n<parameter=query>\na & c\nsecond line\n</parameter>\n"
              '<parameter=filters>\n{"year":2024,"tags":["x","y"]}\n</parameter>\n'
              "<parameter=ids>\n[1,2,3]\n</parameter>\n</function>\n</tool_call>")
    assert _accepts(grammars, several, answer, tok)
    _, calls = split_tool_calls(answer, "xml")
    assert names_and_arguments(calls) == [
        ("get_weather", {"city": "São Paulo", "units": "metric"}),
        ("search", {"query": "a & c\nsecond line", "filters": {"year": 2024, "tags": ["x", "y"]}, "ids": [1, 2, 3]})]
    one = tool_grammar(tools[:1], False, "xml")
    call = "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>"
    assert _accepts(grammars, one, call, tok)
    assert split_tool_calls(call, "xml")[1][0]["function"]["arguments"] == json.dumps({"city": "Paris"})
    # The JSON form, a missing required parameter, an undeclared one, a schema-breaking object: refused.
    assert not _accepts(grammars, one, '<tool_call>{"name": "get_weather", "arguments": {"city": "P"}}</tool_call>', tok)
    assert not _accepts(grammars, one, "<tool_call>\n<function=get_weather>\n</function>\n</tool_call>", tok)
    assert not _accepts(grammars, one, call.replace("city", "town"), tok)
    bad = answer.replace('{"year":2024', '{"year":"2024"')
    assert bad != answer and not _accepts(grammars, several, bad, tok)
    # Only the named tool when one is forced; JSON templates keep the JSON form.
    assert not _accepts(grammars, tool_grammar(tools[1:], False, "xml"), call, tok)
    assert _accepts(grammars, tool_grammar(tools[:1], False, "json"),
                    '<tool_call>{"name":"get_weather","arguments":{"city":"Paris"}}</tool_call>', tok)
