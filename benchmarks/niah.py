"""Needle-in-a-haystack accuracy of a model (by default the embedded default model).

Usage: python benchmarks/niah.py [--lengths 1024 4096 16384 65536] [--depths 5] [--trials 2]
                                 [--device cpu] [--dtype float32] [--model DIR] [--deadline SECONDS]
                                 [--json FILE]

Each trial builds a session the way `spl docs` fills one: filler documents handed over one user message at
a time (framed, each answered ``OK`` with thinking off), about LENGTH tokens in all, with one needle ("The
special magic number for Lisbon is 482917.") hidden at a relative depth; then the needle's question with
thinking on. ``--kind word`` hides a made-up password instead of a number. The model prefills it
through ``TorchModel`` (the server's adapter: chunked prefill, the device's attention kernels) and
answers greedily; a trial passes when the answer after the thought holds the needle's value. Depths are spread evenly from 0 (first document) to 1 (last); every (length, depth)
cell gets ``--trials`` haystacks with different needles.

``--deadline`` stops starting new trials after that many seconds and reports what finished.

``--write-haystack DIR`` writes one haystack (the first length, depth 0.5) as text files instead, for
trying ``spl docs`` by hand: ``/add DIR`` in the REPL, then ask the question it prints.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))

import synthetic  # noqa: E402

from superlinear.adapters import HFTokenizer, TorchModel, default_model_dir  # noqa: E402
from superlinear.core import SamplingParams  # noqa: E402
from superlinear.frontends.cli.docs.framing import framed_documents  # noqa: E402

GREEDY = SamplingParams(max_tokens=1, temperature=0.0)


def answer(model: TorchModel, tok: HFTokenizer, prompt: str, max_new: int) -> str:
    """Prefill ``prompt`` into a fresh state and decode greedily; return the reply's text."""
    ids = tok.encode(prompt)
    state = model.new_state(len(ids) + max_new + 1)
    model.append(state, ids)
    out: list[int] = []
    rng = random.Random(0)
    for _ in range(max_new):
        nxt = model.sample(state, GREEDY, rng)
        if nxt in model.eos_token_ids:
            break
        out.append(nxt)
        model.append(state, [nxt])
    return tok.decode(out)


def answer_of(reply: str) -> str:
    """The answer after the thought; empty when the thought never closed (the value in it doesn't count)."""
    return reply.split("</think>", 1)[1] if "</think>" in reply else ""


def run(args: argparse.Namespace) -> list[dict]:
    model = TorchModel.from_dir(args.model, device=args.device, dtype=args.dtype, chunk_size=args.chunk)
    tok = HFTokenizer.from_dir(args.model)
    count = lambda text: len(tok.encode(text))  # noqa: E731
    depths = [i / max(1, args.depths - 1) for i in range(args.depths)]
    rows = []
    start = time.monotonic()
    for length in args.lengths:
        for depth in depths:
            for trial in range(args.trials):
                if args.deadline and time.monotonic() - start > args.deadline:
                    print(f"deadline reached; skipping the rest from {length} tokens", flush=True)
                    return rows
                rng = random.Random(f"{args.seed}-{length}-{depth}-{trial}")
                segments, needle = synthetic.niah_session(rng, count, length, depth, args.kind)
                prompt = synthetic.all_text(segments)
                t0 = time.monotonic()
                reply = answer(model, tok, prompt, args.max_new)
                final = answer_of(reply)
                row = {"length": length, "tokens": count(prompt), "depth": round(depth, 3), "trial": trial,
                       "ok": needle.value in final, "value": needle.value, "answer": final.strip()[:120],
                       "seconds": round(time.monotonic() - t0, 2)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """A markdown table: accuracy per length and depth, and overall per length."""
    lengths = sorted({r["length"] for r in rows})
    depths = sorted({r["depth"] for r in rows})
    lines = ["| context | " + " | ".join(f"depth {d:g}" for d in depths) + " | all | s/trial |",
             "| --- |" + " --- |" * (len(depths) + 2)]
    for length in lengths:
        cells = []
        for depth in depths:
            hits = [r["ok"] for r in rows if r["length"] == length and r["depth"] == depth]
            cells.append(f"{sum(hits)}/{len(hits)}" if hits else "-")
        mine = [r for r in rows if r["length"] == length]
        share = sum(r["ok"] for r in mine) / len(mine)
        seconds = sum(r["seconds"] for r in mine) / len(mine)
        label = f"{length // 1024}K" if length >= 1024 else str(length)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {share:.0%} | {seconds:.1f} |")
    return "\n".join(lines)


def write_haystack(args: argparse.Namespace) -> None:
    """Write the documents of one haystack as files under ``args.write_haystack``; print the question."""
    tok = HFTokenizer.from_dir(args.model)
    rng = random.Random(f"{args.seed}-haystack")
    segments, needle = synthetic.niah_session(rng, lambda t: len(tok.encode(t)), args.lengths[0], 0.5, args.kind)
    framed = {"role": "user", "content": ""}
    docs = []
    for seg in segments:
        if seg.text.startswith("<|im_start|>user\n"):
            framed["content"] = seg.text.removeprefix("<|im_start|>user\n").removesuffix("<|im_end|>\n")
            docs += list(framed_documents([framed]))
    args.write_haystack.mkdir(parents=True, exist_ok=True)
    for source, text in docs:
        path = args.write_haystack / source.replace("/", "_")
        path.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {len(docs)} documents to {args.write_haystack}; the needle: {needle.sentence}")
    print(f"ask: {needle.question}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    parser.add_argument("--depths", type=int, default=5, help="depths spread evenly over [0, 1]")
    parser.add_argument("--trials", type=int, default=2, help="haystacks per (length, depth)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--model", type=Path, default=default_model_dir())
    parser.add_argument("--chunk", type=int, default=16384, help="prefill chunk in tokens")
    parser.add_argument("--max-new", type=int, default=96)
    parser.add_argument("--kind", choices=["number", "word"], default="number",
                        help="needle value: a 4-7 digit magic number (the usual NIAH needle) or a made-up word")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--deadline", type=float, default=0.0)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--write-haystack", type=Path, metavar="DIR", help="write one haystack as files and stop")
    args = parser.parse_args(argv)
    if args.write_haystack:
        write_haystack(args)
        return
    if args.device == "cuda":
        print(torch.cuda.get_device_name(), flush=True)
    rows = run(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if rows:
        print(table(rows))


if __name__ == "__main__":
    main()
