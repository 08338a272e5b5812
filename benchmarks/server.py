"""Serving benchmark: N concurrent streaming clients against spl-server vs the engine alone.

For N in (1, 4, 16) clients, each streams greedy chat completions of `--max-tokens` tokens from the
default model. Reports aggregate tokens/s, TTFT p50/p99 and the HTTP overhead per token: the server's
seconds per token minus the engine's, where the engine alone is the same SessionService driven
in-process by N threads (no HTTP, no JSON, no SSE).

    python benchmarks/server.py [--clients 1 4 16] [--max-tokens 64] [--torch-threads 1] [--results FILE]

With `--fairness`: one client streams while another sends a `--long-prompt` token prompt; reports that
stream's longest gap between tokens, `POST /v1/sessions` latency during the prefill, and the time from a
client dropping a `--disconnect-prompt` token request to its session being idle again.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

PROMPT = "Count to one thousand."
SECTION = "## Server (issue 7)"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of `values` (q in 0..100)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def run_clients(n: int, rounds: int, one: Callable[[], tuple[float, int]]) -> dict:
    """Run `n` client threads, each making `rounds` requests; return tokens/s and TTFT percentiles."""
    ttfts: list[float] = []
    tokens = [0]
    lock = threading.Lock()

    def client():
        for _ in range(rounds):
            ttft, count = one()
            with lock:
                ttfts.append(ttft)
                tokens[0] += count

    threads = [threading.Thread(target=client) for _ in range(n)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {
        "tps": tokens[0] / wall,
        "tokens": tokens[0],
        "wall": wall,
        "ttft_p50": statistics.median(ttfts),
        "ttft_p99": percentile(ttfts, 99),
    }


def http_request(url: str, max_tokens: int) -> tuple[float, int]:
    """Stream one completion over HTTP; return (TTFT, completion tokens)."""
    import requests

    body = {
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    ttft, usage = None, None
    with requests.post(f"{url}/v1/chat/completions", json=body, stream=True, timeout=600) as resp:
        for line in resp.iter_lines():
            if not line.startswith(b"data: {"):
                continue
            chunk = json.loads(line[6:])
            delta = chunk["choices"][0]["delta"] if chunk["choices"] else {}
            if ttft is None and (delta.get("content") or delta.get("reasoning_content")):
                ttft = time.perf_counter() - start
            usage = chunk.get("usage") or usage
    return ttft or time.perf_counter() - start, usage["completion_tokens"]


def engine_request(sessions, max_tokens: int) -> tuple[float, int]:
    """Run one turn on the session service directly; return (TTFT, completion tokens)."""
    from superlinear.core import ChatRequest, Message, SamplingParams

    request = ChatRequest(
        messages=(Message("user", PROMPT),), sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0)
    )
    start = time.perf_counter()
    ttft = None
    for event in sessions.chat(request).events():
        if ttft is None and event.kind != "done" and event.text:
            ttft = time.perf_counter() - start
        if event.kind == "done":
            return ttft or time.perf_counter() - start, event.usage.completion_tokens
    raise RuntimeError("the turn ended without a done event")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(threads: int, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    """Start spl-server on a free loopback port with the default model; return it once healthy."""
    import requests

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "superlinear.frontends.http.server",
        "--port",
        str(port),
        "--no-plugins",
        "--threads",
        str(threads),
        *extra,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("spl-server did not become healthy")


def median_runs(runs: list[dict[int, dict]]) -> dict[int, dict]:
    """Per client count, the median of each measure over repeated runs."""
    return {n: {k: statistics.median(r[n][k] for r in runs) for k in runs[0][n]} for n in runs[0]}


def bench(clients: list[int], max_tokens: int, repeat: int) -> tuple[dict[int, dict], dict[int, dict]]:
    """Alternate engine-alone and server runs `repeat` times (the machine's load drifts); return medians."""
    from superlinear.frontends.http.compose import Settings, build_services, stop_rule_source
    from superlinear.plugins import build_plugin_manager, collect

    pm = build_plugin_manager(load_entrypoints=False)
    services = build_services(Settings(), stop_rule_source(pm), collect(pm, "superlinear_model_families"))
    proc, url = start_server(threads=max(clients) + 4)
    engine_one = lambda: engine_request(services.sessions, max_tokens)  # noqa: E731
    http_one = lambda: http_request(url, max_tokens)  # noqa: E731
    engine_runs, http_runs = [], []
    try:
        engine_request(services.sessions, 4)
        http_request(url, 4)
        for _ in range(repeat):
            engine_runs.append({n: run_clients(n, max(1, 16 // n), engine_one) for n in clients})
            http_runs.append({n: run_clients(n, max(1, 16 // n), http_one) for n in clients})
    finally:
        services.sessions.engine.stop()
        proc.terminate()
        proc.wait(timeout=30)
    return median_runs(engine_runs), median_runs(http_runs)


def table(engine: dict[int, dict], http: dict[int, dict], args: argparse.Namespace) -> str:
    """Render the results as a markdown table."""
    head = (
        f"Default embedded model (random weights), CPU, greedy, {args.max_tokens} tokens per request, "
        f"torch threads {args.torch_threads}; each row: 16 requests (N clients x 16/N rounds), median of "
        f"{args.repeat} alternating runs. Engine = SessionService driven in-process by N threads.\n\n"
        "| clients | engine tok/s | server tok/s | engine TTFT p50 / p99 (ms) | server TTFT p50 / p99 (ms) "
        "| HTTP overhead per token (ms) |\n|---|---|---|---|---|---|\n"
    )
    rows = []
    for n in args.clients:
        e, h = engine[n], http[n]
        overhead = (1 / h["tps"] - 1 / e["tps"]) * 1000
        rows.append(
            f"| {n} | {e['tps']:.1f} | {h['tps']:.1f} | {e['ttft_p50'] * 1000:.0f} / "
            f"{e['ttft_p99'] * 1000:.0f} | {h['ttft_p50'] * 1000:.0f} / {h['ttft_p99'] * 1000:.0f} | "
            f"{overhead:+.2f} |"
        )
    return head + "\n".join(rows) + "\n"


def append_results(path: Path, text: str, machine: str, section: str = SECTION) -> None:
    """Append the table under this benchmark's heading, leaving other sections untouched."""
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    block = f"\n{section}\n\nMachine: {machine}. Command: `python benchmarks/server.py`.\n\n{text}"
    path.write_text(existing.rstrip("\n") + "\n" + block, encoding="utf-8")


def prompt_of(tokens: int) -> str:
    """A user message of about `tokens` tokens for the default model's tokenizer (random common words)."""
    import random

    from superlinear.adapters import HFTokenizer, default_model_dir

    tok = HFTokenizer.from_dir(default_model_dir())
    rng = random.Random(0)
    words = "the sea ship bird count one two three tell me about why how blue green river stone".split()
    sample = " ".join(rng.choice(words) for _ in range(2000))
    per_word = len(tok.encode(sample)) / 2000
    return " ".join(rng.choice(words) for _ in range(int(tokens / per_word)))


def stream_stamps(url: str, stamps: list[float], stop: threading.Event) -> None:
    """Stream greedy completions one after another until `stop`; record each text chunk's arrival."""
    import requests

    while not stop.is_set():
        body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 400, "temperature": 0,
                "stream": True}
        with requests.post(f"{url}/v1/chat/completions", json=body, stream=True, timeout=600) as resp:
            for line in resp.iter_lines():
                if line.startswith(b"data: {") and b'content"' in line:  # content or reasoning_content
                    stamps.append(time.perf_counter())
                if stop.is_set():
                    break


def prefill_interference(url: str, tokens: int) -> dict:
    """Another stream's longest token gap and POST /v1/sessions latencies while a `tokens` prompt prefills."""
    import requests

    text = prompt_of(tokens)
    stamps: list[float] = []
    stop = threading.Event()
    streamer = threading.Thread(target=stream_stamps, args=(url, stamps, stop))
    streamer.start()
    while len(stamps) < 5:
        time.sleep(0.05)
    result: dict = {}

    def long_request():
        body = {"messages": [{"role": "user", "content": text}], "max_tokens": 1, "temperature": 0}
        resp = requests.post(f"{url}/v1/chat/completions", json=body, timeout=3600).json()
        result["prompt_tokens"] = resp["usage"]["prompt_tokens"]

    start = time.perf_counter()
    worker = threading.Thread(target=long_request)
    worker.start()
    creates = []
    while worker.is_alive():
        t0 = time.perf_counter()
        assert requests.post(f"{url}/v1/sessions", json={}, timeout=600).status_code == 201
        creates.append(time.perf_counter() - t0)
        time.sleep(0.5)
    end = time.perf_counter()
    stop.set()
    streamer.join()
    inside = [t for t in stamps if start <= t <= end]
    gaps = [b - a for a, b in zip(inside, inside[1:], strict=False)]
    return {"tokens": result.get("prompt_tokens"), "seconds": end - start, "max_gap": max(gaps, default=end - start),
            "stream_tokens": len(inside), "create_p50": statistics.median(creates), "create_max": max(creates),
            "creates": len(creates)}


def disconnect_to_free(url: str, tokens: int, after: float = 1.5) -> dict:
    """Send a `tokens` prompt on a session, disconnect after `after` s; time until the session is idle."""
    import requests

    sid = f"bench-leave-{tokens}"
    requests.post(f"{url}/v1/sessions", json={"session_id": sid}, timeout=600)
    text = prompt_of(tokens)
    parts = url.split(":")
    sock = socket.create_connection(("127.0.0.1", int(parts[-1])), timeout=30)
    data = json.dumps({"messages": [{"role": "user", "content": text}], "session_id": sid, "max_tokens": 1}).encode()
    sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    time.sleep(after)
    info = requests.get(f"{url}/v1/sessions/{sid}", timeout=600).json()
    gone = time.perf_counter()
    sock.close()
    while requests.get(f"{url}/v1/sessions/{sid}", timeout=600).json()["busy"]:
        time.sleep(0.01)
    free = time.perf_counter() - gone
    after_info = requests.get(f"{url}/v1/sessions/{sid}", timeout=600).json()
    return {"busy_before": info["busy"], "free_after": free, "cached_after": after_info["cached_tokens"]}


def fairness(args: argparse.Namespace) -> str:
    """Run the prefill-interference and disconnect measures against one server; return a markdown table."""
    proc, url = start_server(threads=16, extra=("--prefill-budget", str(args.prefill_budget)))
    try:
        http_request(url, 4)
        inter = prefill_interference(url, args.long_prompt)
        leave = disconnect_to_free(url, args.disconnect_prompt)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return (
        f"Default model, CPU, torch threads {args.torch_threads}, prefill budget {args.prefill_budget} tokens "
        "per step. One client streams greedy answers throughout; another sends one long prompt.\n\n"
        "| measure | value |\n|---|---|\n"
        f"| long prompt: tokens / prefill seconds | {inter['tokens']} / {inter['seconds']:.1f} |\n"
        f"| other stream during that prefill: tokens / longest gap (s) | {inter['stream_tokens']} / "
        f"{inter['max_gap']:.2f} |\n"
        f"| `POST /v1/sessions` during that prefill: p50 / max (ms), n | {inter['create_p50'] * 1000:.0f} / "
        f"{inter['create_max'] * 1000:.0f}, {inter['creates']} |\n"
        f"| {args.disconnect_prompt}-token prompt, client gone after 1.5 s: busy then / seconds to idle / "
        f"tokens kept | {leave['busy_before']} / {leave['free_after']:.2f} / {leave['cached_after']} |\n"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3, help="alternating engine/server runs; medians reported")
    p.add_argument("--results", type=Path, default=None, help="append the table to this markdown file")
    p.add_argument("--machine", default="unspecified machine")
    p.add_argument("--fairness", action="store_true",
                   help="measure a stream's token gaps and create latency while a long prompt prefills, and "
                        "disconnect-to-idle time, instead of throughput")
    p.add_argument("--long-prompt", type=int, default=32768, help="tokens of the prompt that prefills (fairness)")
    p.add_argument("--prefill-budget", type=int, default=128, help="the server's --prefill-budget (fairness)")
    p.add_argument("--disconnect-prompt", type=int, default=65536, help="tokens of the abandoned prompt (fairness)")
    args = p.parse_args()
    # Before torch loads here and in the server: one intra-op thread per process keeps a small CPU sane.
    os.environ["OMP_NUM_THREADS"] = str(args.torch_threads)
    if args.fairness:
        text = fairness(args)
        print(text)
        if args.results:
            append_results(args.results, text, args.machine, "## Continuous batching (issue 15)")
        return
    engine, http = bench(args.clients, args.max_tokens, args.repeat)
    text = table(engine, http, args)
    print(text)
    if args.results:
        append_results(args.results, text, args.machine)


if __name__ == "__main__":
    main()
