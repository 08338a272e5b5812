"""Quick checks of a training checkpoint or model directory: chat skills and needle-in-a-haystack.

    python training/evaluate.py CHECKPOINT_OR_MODEL_DIR [--niah 2048,8192,16384] [--samples 5]

Greedy decoding straight on ``HybridLM`` (no server), with prompts laid out exactly as a session holds
them. The release checks go through the real server and CLI instead (README, benchmarks/niah.py).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "benchmarks"))

import synthetic  # noqa: E402
from niah import answer, answer_of  # noqa: E402
from train import build_model, model_config  # noqa: E402

from superlinear.adapters import HFTokenizer, TorchModel, default_model_dir  # noqa: E402


def load(path: Path, device: str) -> TorchModel:
    """A checkpoint folder (model.pt) or an exported model directory (model.safetensors)."""
    if (path / "model.pt").is_file():
        lm = build_model(0, device, model_config(path))
        lm.load_state_dict(torch.load(path / "model.pt", map_location=device))
        return TorchModel(lm.eval(), name=str(path), fingerprint={})
    return TorchModel.from_dir(path, device=device)


class Chat:
    """A conversation held as text, answered turn by turn like a session that keeps its thoughts."""

    def __init__(self, model: TorchModel, tok: HFTokenizer):
        self.model, self.tok, self.text = model, tok, ""

    def ask(self, user: str, thinking: bool = True) -> str:
        self.text += synthetic.all_text([synthetic.user_turn(user), synthetic.generation_prompt(thinking)])
        reply = answer(self.model, self.tok, self.text, 320)
        self.text += reply + "<|im_end|>\n"
        return reply


def chat_checks(model, tok, rng: random.Random, samples: int) -> dict[str, float]:
    """Print a few transcripts and return accuracies on name recall and arithmetic."""
    demo = Chat(model, tok)
    for line in ("Hello!", "My name is Alice.", "What is 15 x 17?", "What's my name?"):
        print(f"> {line}\n{demo.ask(line)}\n", flush=True)
    names_ok = 0
    for _ in range(samples):
        name = rng.choice(synthetic.FIRST_NAMES) if rng.random() < 0.5 else synthetic.made_up_word(rng).title()
        chat = Chat(model, tok)
        chat.ask(f"My name is {name}.")
        user, _, _ = synthetic.arithmetic_exchange(rng)
        chat.ask(user)
        names_ok += f"Your name is {name}." in chat.ask("What's my name?")
    math_ok = 0
    for _ in range(samples):
        user, _, answer = synthetic.arithmetic_exchange(rng)
        math_ok += Chat(model, tok).ask(user).endswith(answer)
    return {"name recall": names_ok / samples, "arithmetic": math_ok / samples}


def niah(model, tok, rng: random.Random, lengths: list[int], samples: int) -> dict[int, float]:
    """Accuracy of finding the needle at each context length, depths spread evenly over the samples."""
    count = lambda text: len(tok.encode(text))  # noqa: E731
    result = {}
    for length in lengths:
        ok = 0
        start = time.monotonic()
        for i in range(samples):
            depth = i / max(1, samples - 1)
            segments, needle = synthetic.niah_session(rng, count, length, depth, kind=None)
            reply = answer(model, tok, synthetic.all_text(segments), 80)
            ok += needle.value in answer_of(reply)
        result[length] = ok / samples
        print(f"niah {length}: {ok}/{samples} ({time.monotonic() - start:.1f}s)", flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--niah", default="1024,4096")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=99)
    args = parser.parse_args(argv)
    model = load(args.path, args.device)
    tok = HFTokenizer.from_dir(default_model_dir())
    rng = random.Random(args.seed)
    print(chat_checks(model, tok, rng, args.samples), flush=True)
    lengths = [int(x) for x in args.niah.split(",") if x]
    print(niah(model, tok, rng, lengths, args.samples), flush=True)


if __name__ == "__main__":
    main()
