"""Build the embedded default model's tokenizer and chat template.

Trains a byte-level BPE of exactly 1024 ids on a corpus generated here from a fixed seed, and writes
`tokenizer.json`, `tokenizer_config.json` and `chat_template.jinja` into the output directory (by default
`adapters/default_model/`). Nothing else is written; running it again reproduces the same bytes.

    python tools/build_tokenizer.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

VOCAB_SIZE = 1024
SEED = 1024
MODEL_MAX_LENGTH = 1_048_576
# Fixed ids 0..4, in this order; the chat template and the engine rely on them.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_end|>", "<|im_start|>", "<think>", "</think>"]
OUTPUT_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")

CHAT_TEMPLATE = r"""{#- ChatML in the Nemotron-H style.
    Every turn renders the same whatever follows it (earlier reasoning is always dropped), so the
    rendering of a conversation starts with the rendering of any complete prefix of it. -#}
{%- macro text_of(content) -%}
    {%- if content is string -%}
        {{- content -}}
    {%- elif content is iterable -%}
        {%- for part in content if part.type == 'text' -%}
            {{- part.text -}}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
{%- macro tool_call_json(call) -%}
    {%- set fn = call.function if call.function is defined else call -%}
    {%- set args = fn.arguments if fn.arguments is defined else {} -%}
    {{- '{"name": ' + fn.name | tojson + ', "arguments": ' -}}
    {{- args if args is string else args | tojson -}}
    {{- '}' -}}
{%- endmacro -%}
{%- set has_system = messages | length > 0 and messages[0].role == 'system' -%}
{#- With no messages at all there is nothing to attach tools to; rendering stays empty, so even the empty
    history is a prefix of every rendering. -#}
{%- if has_system or (tools and messages) -%}
    {{- '<|im_start|>system\n' -}}
    {%- set system_text = text_of(messages[0].content) if has_system else '' -%}
    {{- system_text -}}
    {%- if tools -%}
        {{- '\n\n' if system_text else '' -}}
        {{- '# Tools\n\nYou can call these functions, each described as JSON:\n<tools>\n' -}}
        {%- for tool in tools -%}
            {{- tool | tojson + '\n' -}}
        {%- endfor -%}
        {{- '</tools>\n\nTo call functions, answer with one line per call:\n' -}}
        {{- '<tool_call>{"name": <function name>, "arguments": <arguments object>}</tool_call>' -}}
    {%- endif -%}
    {{- '<|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
    {%- if loop.first and has_system -%}
        {%- continue -%}
    {%- endif -%}
    {%- set content = text_of(message.content) -%}
    {%- if message.role == 'assistant' -%}
        {%- if '</think>' in content -%}
            {%- set content = content.split('</think>')[-1].lstrip('\n') -%}
        {%- endif -%}
        {{- '<|im_start|>assistant\n<think></think>' + content -}}
        {%- for call in message.tool_calls or [] -%}
            {{- '\n' if content or not loop.first else '' -}}
            {{- '<tool_call>' + tool_call_json(call) + '</tool_call>' -}}
        {%- endfor -%}
        {{- '<|im_end|>\n' -}}
    {%- else -%}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\n' -}}
    {{- '<think>\n' if enable_thinking is not defined or enable_thinking else '<think></think>' -}}
{%- endif -%}
"""

_SUBJECTS = [
    "I",
    "you",
    "we",
    "they",
    "the model",
    "my friend",
    "the team",
    "this function",
    "the server",
    "she",
]
_VERBS = [
    "need",
    "want",
    "can explain",
    "will check",
    "wrote",
    "found",
    "like",
    "tested",
    "asked about",
    "saw",
]
_OBJECTS = [
    "the answer",
    "a long document",
    "the weather today",
    "some numbers",
    "this question",
    "the code",
    "a short story",
    "the results",
    "your message",
    "the next step",
    "a cache",
    "the session",
]
_ENDINGS = [".", "!", "?", " again.", " for you.", " right now.", " in the morning.", ", thanks."]
_QUESTIONS = [
    "What is {a} plus {b}?",
    "Can you help me with {topic}?",
    "How does {topic} work?",
    "Please summarize {topic} in one sentence.",
    "Why is {topic} useful?",
    "Tell me about {topic}.",
]
_TOPICS = [
    "attention",
    "memory",
    "the weather",
    "python",
    "sorting",
    "prime numbers",
    "history",
    "music",
    "cooking",
    "long context",
    "snapshots",
    "tokenizers",
    "the ocean",
    "mathematics",
    "travel",
]
_ANSWERS = [
    "Sure, here is a short answer.",
    "Let me think about that step by step.",
    "The answer is {c}.",
    "Of course! {topic} is a big subject.",
    "I am not sure, but I can try.",
    "Yes. That works well.",
    "No, that is not correct.",
    "Here is an example:",
    "Okay, thinking about {topic} first.",
]
_MULTILINGUAL = [
    "Bonjour, comment ça va ? Très bien, merci.",
    "Le café est prêt à côté de la fenêtre.",
    "Ich möchte ein Stück Kuchen, bitte. Schöne Grüße aus München.",
    "Straße, Mädchen, Größe, Übung.",
    "¿Dónde está la biblioteca? Mañana vamos a la playa.",
    "Olá, tudo bem? Não, obrigado.",
    "你好，世界。今天天气很好。",
    "我们一起学习中文和数学。",
    "こんにちは、元気ですか？ありがとうございます。",
    "日本語のテキストとカタカナ。",
    "안녕하세요, 만나서 반갑습니다.",
    "Привет, как дела? Всё хорошо, спасибо.",
    "Москва — столица России.",
    "Καλημέρα, τι κάνεις;",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "Emoji: 😀 🎉 👍 🚀 ❤️ 🙂 🤖 🌍",
    "Combining: e\u0301 a\u0300 n\u0303 o\u0308 — café naïve résumé",
    "Math: π ≈ 3.14159, ∑ x² ≤ ∞, √2, ½ + ¼ = ¾",
    "Quotes “like this” and ‘this’ … «and these»",
]
_CODE = [
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    print(i * i)\n",
    'import json\n\ndata = json.loads(text)\nprint(data["name"])\n',
    "class Cache:\n    def __init__(self):\n        self.items = {}\n",
    "if x > 0 and y < 10:\n    result = x - y\nelse:\n    result = None\n",
    '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}',
    "$ pip install superlinear\n$ spl server start --port 8000\n",
    "const total = items.reduce((sum, x) => sum + x, 0);\n",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;\n",
    'fn main() {\n    println!("Hello, world!");\n}\n',
]


def _chat_line(rng: random.Random) -> str:
    """One user question and one assistant answer in plain text."""
    a, b = rng.randint(0, 999), rng.randint(0, 999)
    fill = {"a": a, "b": b, "c": a + b, "topic": rng.choice(_TOPICS)}
    sentence = f"{rng.choice(_SUBJECTS).capitalize()} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}{rng.choice(_ENDINGS)}"
    question = rng.choice(_QUESTIONS).format(**fill)
    answer = rng.choice(_ANSWERS).format(**fill)
    return f"user\n{question} {sentence}\nassistant\n{answer}\n"


def _arithmetic_line(rng: random.Random) -> str:
    """A small arithmetic fact or a number in a sentence."""
    a, b = rng.randint(0, 1000), rng.randint(1, 100)
    op = rng.choice(["+", "-", "*", "/"])
    value = {"+": a + b, "-": a - b, "*": a * b, "/": round(a / b, 2)}[op]
    if rng.random() < 0.3:
        return f"In {rng.randint(1900, 2030)} there were {rng.randint(2, 99999)} items, about {rng.random():.3f} each.\n"
    return f"{a} {op} {b} = {value}\n"


def _training_conversations(seed: int, count: int) -> Iterator[str]:
    """Conversations from the default model's training data (training/synthetic.py), so its words are tokens."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))
    import synthetic

    rng = random.Random(seed)
    for _ in range(count):
        # The generator as it was when the tokenizer was trained: the mix of the first runs, and a product's
        # closing sum in one line. Later training data changes, the vocabulary must not.
        yield synthetic.all_text(synthetic.conversation(rng, 2000, mix=(0.45, 0.15), sum_in_pieces=False))


def corpus(seed: int = SEED) -> Iterator[str]:
    """Yield the training corpus: chat-like English, numbers, arithmetic, code, non-ASCII text and the
    default model's training conversations."""
    yield from _training_conversations(seed, 600)
    rng = random.Random(seed)
    for _ in range(4000):
        yield _chat_line(rng)
    for _ in range(3000):
        yield _arithmetic_line(rng)
    for _ in range(40):
        yield from _CODE
        yield from _MULTILINGUAL


def train_tokenizer(lines: Iterator[str]) -> Tokenizer:
    """Train the byte-level BPE; special tokens take ids 0..4 and no normalizer touches the text."""
    tokenizer = Tokenizer(models.BPE())
    # Digits are split one per token first, so every number is spelled the same way wherever it appears:
    # the default model does arithmetic and copies numbers digit by digit.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        # The full byte alphabet makes every string encodable, whatever the corpus held.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(lines, trainer)
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size != VOCAB_SIZE:
        raise RuntimeError(f"trained {size} ids, expected {VOCAB_SIZE}; the corpus is too small")
    return tokenizer


def tokenizer_config() -> dict:
    """The tokenizer_config.json transformers and the adapter read."""
    added = {
        str(i): {
            "content": text,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for i, text in enumerate(SPECIAL_TOKENS)
    }
    return {
        "added_tokens_decoder": added,
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "model_max_length": MODEL_MAX_LENGTH,
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


def build(out_dir: Path) -> list[Path]:
    """Write the three files into `out_dir` and return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(corpus())
    texts = {
        "tokenizer.json": tokenizer.to_str(pretty=True) + "\n",
        "tokenizer_config.json": json.dumps(tokenizer_config(), indent=2, ensure_ascii=False) + "\n",
        "chat_template.jinja": CHAT_TEMPLATE,
    }
    paths = []
    for name in OUTPUT_FILES:
        path = out_dir / name
        path.write_bytes(texts[name].encode("utf-8"))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and build."""
    default_out = Path(__file__).resolve().parent.parent / "adapters" / "default_model"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default_out, help="output directory")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(path)


if __name__ == "__main__":
    main()
