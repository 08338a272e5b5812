"""Engine thread count: decode tokens/s and first-token latency of the default model for several
`--torch-threads` values, each against a fresh spl-server, rounds interleaved across the counts.

    python benchmarks/threads.py [--threads 1 2 0] [--rounds 7] [--max-tokens 64]

0 means all cores. Each round streams one greedy completion per thread count (a fresh conversation each time);
the table gives medians over the rounds. OMP_NUM_THREADS is removed from the servers' environment so that only
the flag decides.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import requests

PROMPT = "Count to one thousand."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(threads: int):
    """Start spl-server with `--torch-threads threads`; yield its URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SPL_TORCH_THREADS")}
    cmd = [sys.executable, "-m", "superlinear.frontends.http.server", "--port", str(port), "--no-plugins",
           "--torch-threads", str(threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def one(url: str, max_tokens: int) -> tuple[float, float]:
    """Stream one completion; return (first-token seconds, decode tokens/s after the first token)."""
    body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens, "temperature": 0,
            "stream": True}
    start = time.perf_counter()
    stamps: list[float] = []
    with requests.post(f"{url}/v1/chat/completions", json=body, stream=True, timeout=600) as resp:
        for line in resp.iter_lines():
            if line.startswith(b"data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"] if b'"choices"' in line else {}
                if delta.get("content") or delta.get("reasoning_content"):
                    stamps.append(time.perf_counter())
    ttft = stamps[0] - start
    decode = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
    return ttft, decode


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2, 0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--max-tokens", type=int, default=64)
    args = p.parse_args()
    results: dict[int, list[tuple[float, float]]] = {t: [] for t in args.threads}
    with contextlib.ExitStack() as stack:
        urls = {t: stack.enter_context(server(t)) for t in args.threads}
        for t, url in urls.items():
            one(url, 8)  # warm-up
        for _ in range(args.rounds):
            for t, url in urls.items():
                results[t].append(one(url, args.max_tokens))
    print(f"cores: {os.cpu_count()}, rounds: {args.rounds}, max_tokens: {args.max_tokens}\n")
    print("| torch threads | decode tok/s (median) | first token ms (median) | decode tok/s (min-max) | first token ms (max) |")
    print("|---|---|---|---|---|")
    for t, rows in results.items():
        decode = [d for _, d in rows]
        ttft = [f for f, _ in rows]
        label = f"{t or os.cpu_count()}" + (" (all cores)" if t == 0 else "")
        print(f"| {label} | {statistics.median(decode):.1f} | {statistics.median(ttft) * 1000:.0f} | "
              f"{min(decode):.1f}-{max(decode):.1f} | {max(ttft) * 1000:.0f} |")


if __name__ == "__main__":
    main()
