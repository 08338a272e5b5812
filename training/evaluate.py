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

import synthetic  # noqa: E402
from superlinear.adapters.hybrid.model import HybridLM  # noqa: E402
from superlinear.adapters.hybrid.state import HybridState  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from train import IM_END_ID, TOKENIZER, build_model  # noqa: E402


def load(path: Path, device: str) -> HybridLM:
    """A checkpoint folder (model.pt) or an exported model directory (model.safetensors)."""
    if (path / "model.pt").is_file():
        lm = build_model(0, device)
        lm.load_state_dict(torch.load(path / "model.pt", map_location=device))
        return lm.eval()
    from superlinear.adapters.torch_model import TorchModel

    return TorchModel.load(path, device=device).lm.eval()


@torch.no_grad()
def generate(lm: HybridLM, ids: list[int], max_new: int = 160) -> list[int]:
    """Greedy continuation of ``ids`` until <|im_end|> (not included) or ``max_new`` tokens."""
    state = HybridState.empty(lm.config, len(ids) + max_new + 1, device=lm.device, dtype=lm.dtype)
    lm(torch.tensor([ids], device=lm.device), state)
    out: list[int] = []
    for _ in range(max_new):
        nxt = int(state.logits.argmax())
        if nxt == IM_END_ID:
            break
        out.append(nxt)
        lm(torch.tensor([[nxt]], device=lm.device), state)
    return out


class Chat:
    """A conversation held as text, answered turn by turn like a session."""

    def __init__(self, lm: HybridLM, tok: Tokenizer):
        self.lm, self.tok, self.text = lm, tok, ""

    def ask(self, user: str, thinking: bool = True) -> str:
        self.text += synthetic.all_text([synthetic.user_turn(user), synthetic.generation_prompt(thinking)])
        ids = self.tok.encode(self.text, add_special_tokens=False).ids
        reply = self.tok.decode(generate(self.lm, ids), skip_special_tokens=False)
        self.text += reply + "<|im_end|>\n"
        return reply


def chat_checks(lm, tok, rng: random.Random, samples: int) -> dict[str, float]:
    """Print a few transcripts and return accuracies on name recall and arithmetic."""
    demo = Chat(lm, tok)
    for line in ("Hello!", "My name is Alice.", "What is 15 x 17?", "What's my name?"):
        print(f"> {line}\n{demo.ask(line)}\n", flush=True)
    names_ok = 0
    for _ in range(samples):
        name = rng.choice(synthetic.FIRST_NAMES) if rng.random() < 0.5 else synthetic.made_up_word(rng).title()
        chat = Chat(lm, tok)
        chat.ask(f"My name is {name}.")
        user, _, _ = synthetic.arithmetic_exchange(rng)
        chat.ask(user)
        names_ok += f"Your name is {name}." in chat.ask("What's my name?")
    math_ok = 0
    for _ in range(samples):
        user, _, answer = synthetic.arithmetic_exchange(rng)
        math_ok += Chat(lm, tok).ask(user).endswith(answer)
    return {"name recall": names_ok / samples, "arithmetic": math_ok / samples}


def answer_of(reply: str) -> str:
    """The reply after its thought."""
    return reply.split("</think>", 1)[-1]


def niah(lm, tok, rng: random.Random, lengths: list[int], samples: int) -> dict[int, float]:
    """Accuracy of finding the needle at each context length, depths spread evenly over the samples."""
    count = lambda text: len(tok.encode(text, add_special_tokens=False).ids)  # noqa: E731
    result = {}
    for length in lengths:
        ok = 0
        start = time.monotonic()
        for i in range(samples):
            depth = i / max(1, samples - 1)
            segments, needle = synthetic.niah_session(rng, count, length, depth)
            ids = tok.encode(synthetic.all_text(segments), add_special_tokens=False).ids
            reply = tok.decode(generate(lm, ids, max_new=80), skip_special_tokens=False)
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
    lm = load(args.path, args.device)
    tok = Tokenizer.from_file(str(TOKENIZER))
    rng = random.Random(args.seed)
    print(chat_checks(lm, tok, rng, args.samples), flush=True)
    lengths = [int(x) for x in args.niah.split(",") if x]
    print(niah(lm, tok, rng, lengths, args.samples), flush=True)


if __name__ == "__main__":
    main()
