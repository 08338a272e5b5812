"""Per-chunk render time of streamed chat completions: build the chunk (a response body class), write it as
JSON and frame it as one SSE event; what the server pays per token on top of generating it.

    python benchmarks/sse_render.py [--number 100000] [--repeat 5]

Three chunks: a content delta, a content delta carrying one token's logprobs with 5 alternatives, and a
finish chunk carrying the usage. The best of `--repeat` runs of `--number` calls, in microseconds per chunk.
"""

from __future__ import annotations

import argparse
import timeit

from superlinear.core import TokenLogprob, Usage
from superlinear.frontends.http.render import ChunkMaker
from superlinear.frontends.http.render_logprobs import chat_logprobs
from superlinear.frontends.http.responses import Delta
from superlinear.frontends.http.streaming import sse_body


def _cases() -> dict:
    with_usage = ChunkMaker("chatcmpl-0123456789abcdef01234567", 1700000000, "model-x", True)
    plain = ChunkMaker("chatcmpl-0123456789abcdef01234567", 1700000000, "model-x", False)
    token = [TokenLogprob(1, " hello", -0.5, tuple((f"t{i}", -1.0 - i) for i in range(5)))]
    return {
        "content chunk": lambda: sse_body(with_usage(Delta(content=" hello"))),
        "content chunk + logprobs (top 5)": lambda: sse_body(with_usage(Delta(content=" hello"), None,
                                                                        chat_logprobs(token))),
        "finish chunk + usage": lambda: sse_body(plain(Delta(), "stop", None, Usage(10, 5))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for name, render in _cases().items():
        best = min(timeit.repeat(render, number=args.number, repeat=args.repeat)) / args.number
        print(f"{name}: {best * 1e6:.2f} us")


if __name__ == "__main__":
    main()
