"""Chat templates: the HF-compatible sandbox and the default model's ChatML template."""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

import pytest
from jinja2.sandbox import SecurityError

from superlinear.adapters import tokenizer as tokenizer_module
from superlinear.adapters.chat_template import ChatTemplate, TemplateError, compile_template
from superlinear.adapters.tokenizer import HFTokenizer
from superlinear.core.errors import InvalidRequest
from superlinear.core.values import Message

DEFAULT_DIR = Path(tokenizer_module.__file__).parent / "default_model"
SYSTEM = Message("system", "You are a helpful assistant.")
USER = Message("user", "What is 2 + 2?")
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


@pytest.fixture(scope="module")
def tok() -> HFTokenizer:
    return HFTokenizer.from_dir(DEFAULT_DIR)


def render(source: str, **context) -> str:
    return ChatTemplate(source).render(context.pop("messages", []), **context)


# The default template, golden outputs.


def test_a_generation_prompt_opens_a_thinking_block(tok):
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n"
    )
    assert tok.render([SYSTEM, USER], add_generation_prompt=True) == expected
    assert tok.render([SYSTEM, USER], add_generation_prompt=True, enable_thinking=True) == expected


def test_thinking_off_renders_an_empty_thinking_block(tok):
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n"
        "<|im_start|>assistant\n<think></think>"
    )
    assert tok.render([SYSTEM, USER], add_generation_prompt=True, enable_thinking=False) == expected


def test_earlier_reasoning_is_stripped_from_history(tok):
    messages = [
        USER,
        Message("assistant", "It is 4.", reasoning_content="2 + 2 makes 4."),
        Message("user", "And 3 + 3?"),
        Message("assistant", "<think>\nadd them</think>\nIt is 6."),
    ]
    assert tok.render(messages, add_generation_prompt=False) == (
        "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n"
        "<|im_start|>assistant\n<think></think>It is 4.<|im_end|>\n"
        "<|im_start|>user\nAnd 3 + 3?<|im_end|>\n"
        "<|im_start|>assistant\n<think></think>It is 6.<|im_end|>\n"
    )


def test_tools_and_tool_calls_render_as_json(tok):
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    messages = [
        SYSTEM,
        Message("user", "Weather?"),
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", "sunny", tool_call_id="c1"),
    ]
    out = tok.render(messages, add_generation_prompt=False, tools=(WEATHER_TOOL,))
    assert out.startswith("<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n")
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather", ' in out
    assert out.endswith(
        "<|im_start|>user\nWeather?<|im_end|>\n"
        '<|im_start|>assistant\n<think></think><tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}'
        "</tool_call><|im_end|>\n"
        "<|im_start|>tool\nsunny<|im_end|>\n"
    )


def test_tools_without_a_system_message_get_their_own(tok):
    out = tok.render([USER], add_generation_prompt=False, tools=[WEATHER_TOOL])
    assert out.startswith("<|im_start|>system\n# Tools\n")
    assert out.endswith("</tool_call><|im_end|>\n<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n")


def _random_text(rng: random.Random) -> str:
    words = ["hi", "the", "answer", "😀", "你好", "e\u0301", "\n", "</think>", "{x}", "  ", "42"]
    return "".join(rng.choice(words) for _ in range(rng.randint(0, 6)))


def _random_message(rng: random.Random) -> Message:
    role = rng.choice(["user", "user", "assistant", "assistant", "tool", "system"])
    if role != "assistant":
        return Message(role, _random_text(rng))
    calls = tuple(
        {"function": {"name": f"f{i}", "arguments": rng.choice(['{"a": 1}', {"b": [1, "é"]}])}}
        for i in range(rng.choice([0, 0, 1, 2]))
    )
    reasoning = rng.choice([None, _random_text(rng)])
    return Message("assistant", _random_text(rng), reasoning_content=reasoning, tool_calls=calls)


def test_rendering_a_conversation_extends_the_rendering_of_its_history(tok):
    rng = random.Random(1234)
    for _ in range(150):
        messages = [_random_message(rng) for _ in range(rng.randint(1, 8))]
        if rng.random() < 0.5:
            messages.insert(0, Message("system", _random_text(rng)))
        kwargs = {"tools": rng.choice([None, [WEATHER_TOOL]]), "enable_thinking": rng.choice([True, False])}
        for cut in range(len(messages) + 1):
            history = tok.render(messages[:cut], add_generation_prompt=False, **kwargs)
            for gen in (True, False):
                assert tok.render(messages, add_generation_prompt=gen, **kwargs).startswith(history)


def test_plain_dict_messages_with_missing_or_part_content_render():
    template = ChatTemplate((DEFAULT_DIR / "chat_template.jinja").read_text(encoding="utf-8"))
    messages = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"}],
        },
        {"role": "assistant", "content": None},
    ]
    assert template.render(messages) == (
        "<|im_start|>user\nab<|im_end|>\n<|im_start|>assistant\n<think></think><|im_end|>\n"
    )


# The sandbox and the HF extras.


def test_raise_exception_surfaces_as_a_template_error():
    with pytest.raises(TemplateError, match="only user and assistant") as info:
        render("{{ raise_exception('only user and assistant roles') }}")
    assert isinstance(info.value, ValueError) and isinstance(info.value, InvalidRequest)


def test_tojson_keeps_unicode_and_takes_hf_arguments():
    value = {"b": "é😀", "a": [1, 2]}
    assert render("{{ v | tojson }}", v=value) == '{"b": "é😀", "a": [1, 2]}'
    assert render("{{ v | tojson(indent=2) }}", v={"a": 1}) == '{\n  "a": 1\n}'
    assert (
        render("{{ v | tojson(separators=(',', ':'), sort_keys=true) }}", v=value) == '{"a":[1,2],"b":"é😀"}'
    )
    assert render("{{ '<&>' | tojson }}") == '"<&>"'


def test_strftime_now_reads_the_injected_clock():
    template = ChatTemplate("Today is {{ strftime_now('%d %B %Y') }}.", now=lambda: datetime(2024, 3, 5))
    assert template.render([]) == "Today is 05 March 2024."
    assert len(render("{{ strftime_now('%Y') }}")) == 4


def test_loop_controls_work():
    source = (
        "{% for m in messages %}{% if m.role == 'stop' %}{% break %}{% endif %}{{ m.content }}{% endfor %}"
    )
    messages = [
        {"role": "user", "content": "a"},
        {"role": "stop", "content": "x"},
        {"role": "user", "content": "b"},
    ]
    assert render(source, messages=messages) == "a"
    assert (
        render("{% for i in [1, 2, 3] %}{% if i == 2 %}{% continue %}{% endif %}{{ i }}{% endfor %}") == "13"
    )


def test_trim_and_lstrip_blocks_are_on():
    assert render("  {% if true %}\nyes\n  {% endif %}\nend") == "yes\nend"


def test_the_sandbox_blocks_unsafe_attributes():
    with pytest.raises(TemplateError) as info:
        render("{{ ''.__class__ }}")
    assert isinstance(info.value.__cause__, SecurityError)
    with pytest.raises(TemplateError) as info:
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    assert isinstance(info.value.__cause__, SecurityError)


def test_the_sandbox_is_immutable():
    with pytest.raises(TemplateError) as info:
        render("{% set xs = [] %}{{ xs.append(1) }}")
    assert isinstance(info.value.__cause__, SecurityError)


def test_context_variables_reach_the_template():
    source = "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools | length }}|{{ custom }}"
    assert render(source, add_generation_prompt=True, tools=[{"a": 1}], eos_token="</s>", custom=7) == (
        "|</s>|True|1|7"
    )
    assert render("{{ messages[0].tool_calls[0].x }}", messages=[{"tool_calls": ({"x": "t"},)}]) == "t"


def test_the_generation_marker_of_hf_templates_is_accepted():
    assert render("a{% generation %}b{% endgeneration %}c") == "abc"


def test_a_broken_template_fails_at_compile_time():
    with pytest.raises(TemplateError, match="does not compile"):
        ChatTemplate("{% if %}")


def test_each_template_text_is_compiled_once():
    assert compile_template("{{ 1 }}") is compile_template("{{ 1 }}")


def test_transformers_renders_and_encodes_the_default_model_identically(tok):
    transformers = pytest.importorskip("transformers", reason="transformers is the oracle; not installed")
    oracle = transformers.AutoTokenizer.from_pretrained(str(DEFAULT_DIR))
    call = {"type": "function", "function": {"name": "f", "arguments": {"a": "é"}}}
    messages = [
        SYSTEM,
        USER,
        Message("assistant", "4", reasoning_content="r", tool_calls=(call,)),
        Message("tool", "ok"),
    ]
    dicts = [{"role": m.role, "content": m.content, "tool_calls": list(m.tool_calls)} for m in messages]
    for thinking in (True, False):
        kwargs = {"tools": [WEATHER_TOOL], "enable_thinking": thinking}
        expected = oracle.apply_chat_template(dicts, tokenize=False, add_generation_prompt=True, **kwargs)
        assert tok.render(messages, add_generation_prompt=True, **kwargs) == expected
        assert tok.encode(expected) == oracle.encode(expected, add_special_tokens=False)


def test_caller_kwargs_never_collide_with_the_template_context(tok):
    out = tok.render([USER], add_generation_prompt=False, bos_token="<s>", eos_token="</s>")
    assert out == "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n"
    assert render("{{ messages | length }}", messages=[{"role": "user"}], bos_token="x") == "1"
