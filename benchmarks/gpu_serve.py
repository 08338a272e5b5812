"""The 30B shape served by the real spl-server, streamed through the openai SDK, against the in-process decode.

Issue 14's last point. Writes a random-weights checkpoint directory (config.json of the preset, the default
model's tokenizer with its vocabulary padded to the config's `vocab_size`, its chat template, and the
`random_weights.json` marker instead of safetensors; see adapters/hybrid/random_weights.py), then:

1. bench: in a child process, the same model (same config, seed, loader and bf16, so the same weights)
   prefilled with random ids to each context and decoded greedily through `GraphedDecoder` on CUDA, with
   full_size_shape.py's prefill and decode functions (the child exits, freeing the GPU, before step 2);
2. serve: `python -m superlinear.frontends.http.server` (gunicorn, --dtype bfloat16) on that directory, and
   for each context the bench measured, one
   session: turn 1 streams `--decode` tokens after a prompt of about the context's length (its decode
   includes the graph capture of the session's first step), turn 2 streams `--decode` more after a short
   follow-up (every step a graph replay). Decode tok/s of a stream = (completion tokens - 1) / (time of its
   last text chunk - time of its first).

Random weights need SPL_ALLOW_RANDOM_WEIGHTS=1; this script sets it for itself and its server (it exists
to measure exactly that). Every phase checks a wall-clock deadline (`--budget-s`) and skips what would not
fit; the JSON says what ran.

    python benchmarks/gpu_serve.py --device cuda --contexts 65536,1048576 --decode 256 --out gpu_out
    python benchmarks/gpu_serve.py --preset narrow --device cpu --contexts 1024 --decode 8 --out /tmp/o
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import full_size_shape as fss  # noqa: E402

PAD_PREFIX = "\u0120<r"  # byte-level "Ġ": padded ids decode to " <rN>", never produced by encoding
# A paragraph repeated to make a long prompt (words only, so the BPE splits it the same way each time).
_PARAGRAPH = (
    "The river bends twice before it reaches the old mill, where the water slows and the light "
    "falls through the trees in long bands. People come here in the evening to read and to talk. "
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="nano30b", choices=["nano30b", "narrow"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--contexts", default="65536", help="comma-separated prompt lengths in tokens")
    p.add_argument("--decode", type=int, default=256, help="tokens per streamed turn and in-process decode")
    p.add_argument("--chunk", type=int, default=8192, help="prefill chunk size (bench and server)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget-s", type=float, default=330.0, help="wall-clock budget of the whole run")
    p.add_argument("--steps", default="bench,serve", help="bench, serve or both")
    p.add_argument("--bench-share", type=float, default=0.5, help="fraction of the time left for bench")
    p.add_argument("--model-dir", type=Path, default=None, help="where to write the checkpoint directory")
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_serve.json and the logs")
    return p.parse_args(argv)


def preset_config(name: str) -> dict[str, Any]:
    """The HF config of a preset: the 30B shape, or its narrow widths (vocab 4096, so padding is exercised)."""
    from superlinear.adapters.hybrid.testing import nano_30b_config, nano_30b_narrow_config

    if name == "nano30b":
        return nano_30b_config()
    return nano_30b_narrow_config(vocab_size=4096)


def padded_tokenizer_json(text: str, vocab_size: int) -> str:
    """Add plain vocabulary entries " <rN>" for ids from the tokenizer's size up to `vocab_size`.

    No merge makes them, so every text encodes exactly as before; each added id decodes to visible text.
    """
    raw = json.loads(text)
    vocab = raw["model"]["vocab"]
    ids = set(vocab.values()) | {t["id"] for t in raw.get("added_tokens", [])}
    size = max(ids) + 1
    if size > vocab_size:
        raise ValueError(f"the tokenizer has {size} ids, more than the config's vocab_size {vocab_size}")
    for i in range(size, vocab_size):
        vocab[f"{PAD_PREFIX}{i}>"] = i
    return json.dumps(raw, ensure_ascii=False)


def write_model_dir(directory: Path, preset: str, seed: int, max_len: int) -> Path:
    """Write config.json, the padded tokenizer, the chat template files and the random-weights marker."""
    from superlinear.adapters.hybrid.random_weights import write_marker
    from superlinear.adapters.torch_model import DEFAULT_MODEL_DIR

    directory.mkdir(parents=True, exist_ok=True)
    config = preset_config(preset)
    config.update(_name_or_path=f"superlinear-{preset}-random-weights", eos_token_id=1, pad_token_id=0,
                  max_position_embeddings=max(config["max_position_embeddings"], max_len))
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    tok = (DEFAULT_MODEL_DIR / "tokenizer.json").read_text(encoding="utf-8")
    (directory / "tokenizer.json").write_text(padded_tokenizer_json(tok, config["vocab_size"]), encoding="utf-8")
    for name in ("tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        shutil.copy(DEFAULT_MODEL_DIR / name, directory / name)
    write_marker(directory, seed)
    return directory


# ---------------------------------------------------------------- bench: the in-process decode speed


def bench(model_dir: Path, contexts: list[int], args, deadline: float, record: dict) -> None:
    """Load the directory's model in this process and run full_size_shape's prefill and decode per context."""
    import torch

    from superlinear.adapters.hybrid.config import HybridConfig, parse_config_text
    from superlinear.adapters.hybrid.random_weights import load_random
    from superlinear.adapters.hybrid.state import HybridState

    device = torch.device(args.device)
    record.update(fss.environment(device))
    cfg = HybridConfig.from_dict(parse_config_text((model_dir / "config.json").read_text(encoding="utf-8")))
    t0 = time.perf_counter()
    model, weights_id = load_random(model_dir, cfg, dtype=torch.bfloat16, device=device)
    record.update(build_s=round(time.perf_counter() - t0, 2), weights_fingerprint=weights_id,
                  params=sum(p.numel() for p in model.parameters()))
    runs = record["contexts"] = {}
    with torch.inference_mode():
        fss.warm_up(model, device)
        for ctx in contexts:
            left = deadline - time.perf_counter()
            if runs and left < _bench_estimate(runs, ctx):
                runs[str(ctx)] = {"skipped": f"{left:.0f} s left"}
                continue
            fargs = argparse.Namespace(chunk=args.chunk, decode=args.decode, decode_reserve_s=10.0,
                                       no_graphs=False)
            clock = fss.Clock(device, max(left, 1.0))
            run = runs[str(ctx)] = {}
            gen = torch.Generator(device=device).manual_seed(args.seed + 1)
            ids = torch.randint(0, cfg.vocab_size, (1, ctx), device=device, generator=gen)
            state = HybridState.empty(cfg, ctx + args.decode + 8, device=device, dtype=model.dtype)
            fss.prefill(model, state, ids, fargs, clock, run)
            fss.decode(model, state, fargs, clock, run)
            state.release()
            print(f"bench {ctx}: {json.dumps(run)[:400]}", flush=True)


def _bench_estimate(runs: dict, ctx: int) -> float:
    """Seconds a context is expected to take, from the prefill rate of the runs so far (plus decode)."""
    rates = []
    for run in runs.values():
        steady = run.get("prefill_chunks", [])[1:]  # the first chunk may still compile kernels
        if steady:
            rates.append(sum(c["tokens"] for c in steady) / sum(c["seconds"] for c in steady))
    return ctx / min(rates) * 1.15 + 15.0 if rates else 0.0


# ---------------------------------------------------------------- serve: the real server and the openai SDK


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, args, max_len: int, home: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    """Start spl-server on a free port with the directory's model; return (process, base URL)."""
    port = _free_port()
    env = dict(os.environ, SPL_ALLOW_RANDOM_WEIGHTS="1", SPL_KEEP_SESSIONS="0", PYTHONUNBUFFERED="1",
               XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"),
               SUPERLINEAR_SNAPSHOT_DIR=str(home / "snapshots"))
    env.pop("SPL_API_KEY", None)
    cmd = [sys.executable, "-m", "superlinear.frontends.http.server", "--model", str(model_dir),
           "--device", args.device, "--dtype", "bfloat16", "--port", str(port), "--no-plugins", "--threads", "4",
           "--chunk-size", str(args.chunk), "--max-seq-len", str(max_len), "--max-body-bytes", "256MiB",
           "--max-tokens", str(args.decode)]
    print("server:", " ".join(cmd), flush=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(url: str, proc: subprocess.Popen, deadline: float) -> dict:
    """Poll /health until 200; raise if the server exits, reports a load error or the deadline passes."""
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"spl-server exited with {proc.returncode} before it was ready")
        try:
            r = requests.get(f"{url}/health", timeout=2)
            body = r.json()
            if r.status_code == 200:
                return body
            if body.get("status") == "error":
                raise RuntimeError(f"the server failed to load the model: {body.get('error')}")
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError("spl-server was not ready before the deadline")


def prompt_text(model_dir: Path, tokens: int) -> str:
    """A user message of about `tokens` tokens (the paragraph repeated; the chat template adds a few)."""
    from superlinear.adapters.tokenizer import HFTokenizer

    tok = HFTokenizer.from_dir(model_dir)
    per = len(tok.encode(_PARAGRAPH))
    return _PARAGRAPH * max(1, (tokens - 32) // per)


def stream_turn(client, model: str, session: str, text: str, args, timeout: float) -> dict:
    """One streamed chat turn; return token counts, time to first text and the decode rate of the stream."""
    t0 = time.perf_counter()
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}], stream=True, max_tokens=args.decode,
        temperature=0, stream_options={"include_usage": True}, timeout=timeout,
        extra_body={"session_id": session, "repetition_detection": {"enabled": False}},
    )
    times, usage, finish = [], None, None
    for chunk in stream:
        now = time.perf_counter()
        usage = chunk.usage or usage
        for choice in chunk.choices:
            delta = choice.delta
            if (delta.content or "") + (getattr(delta, "reasoning_content", None) or ""):
                times.append(now)
            finish = choice.finish_reason or finish
    return _stream_record(t0, times, usage, finish)


def _stream_record(t0: float, times: list[float], usage, finish) -> dict:
    rec: dict[str, Any] = {"finish_reason": finish, "text_chunks": len(times)}
    if usage is not None:
        rec.update(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
        details = getattr(usage, "prompt_tokens_details", None)
        rec["cached_tokens"] = getattr(details, "cached_tokens", None)
    if times:
        rec["ttft_s"] = round(times[0] - t0, 3)
        rec["total_s"] = round(times[-1] - t0, 3)
    if len(times) > 1 and usage is not None:
        span = times[-1] - times[0]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        rec.update(stream_s=round(span, 3), decode_tok_s=round((usage.completion_tokens - 1) / span, 2),
                   median_gap_ms=round(1000 * statistics.median(gaps), 2),
                   first_gap_ms=round(1000 * gaps[0], 2), max_gap_ms=round(1000 * max(gaps), 2))
        if len(gaps) > 2 and len(times) == usage.completion_tokens:
            # One text chunk per token: the rate without the first step (a new session's graph capture).
            rec["steady_tok_s"] = round((len(gaps) - 1) / (times[-1] - times[1]), 2)
    return rec


def serve(model_dir: Path, contexts: list[int], args, deadline: float, record: dict, out: Path,
          bench_runs: dict | None = None, save=lambda: None) -> None:
    """Start the server, stream two turns per context through the openai SDK, stop the server.

    A context is skipped when the time left is below its estimate (from the bench's prefill time of that
    context, else from the server's earlier prefill rate); `save` is called after each context.
    """
    import openai

    max_len = max(contexts) + 4 * args.decode + 4096
    home = Path(tempfile.mkdtemp(prefix="spl-gpu-serve-"))
    proc, url = start_server(model_dir, args, max_len, home, out / "server.log")
    try:
        t0 = time.perf_counter()
        health = wait_ready(url, proc, deadline)
        record.update(ready_s=round(time.perf_counter() - t0, 1), health=health)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        runs = record["contexts"] = {}
        for ctx in contexts:
            left = deadline - time.perf_counter()
            if runs and left < _serve_estimate(runs, ctx, (bench_runs or {}).get(str(ctx), {})):
                runs[str(ctx)] = {"skipped": f"{left:.0f} s left"}
                continue
            runs[str(ctx)] = run = {}
            try:
                serve_context(client, url, health["model"], model_dir, ctx, args, deadline, run)
            finally:
                save()
            print(f"serve {ctx}: {json.dumps(run)}", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(home, ignore_errors=True)


def _serve_estimate(runs: dict, ctx: int, bench_run: dict) -> float:
    """Seconds a context is expected to take: the bench's prefill of it, else the earlier contexts' rate."""
    if bench_run.get("prefill_s"):
        return 1.2 * bench_run["prefill_s"] + 25.0
    rates = [r["turn1"]["prompt_tokens"] / r["turn1"]["ttft_s"] for r in runs.values()
             if r.get("turn1", {}).get("ttft_s")]
    return ctx / min(rates) * 1.15 + 20.0 if rates else 0.0


def serve_context(client, url: str, model: str, model_dir: Path, ctx: int, args, deadline: float,
                  run: dict) -> None:
    """A session of `ctx` prompt tokens: turn 1 (long prompt) and turn 2 (short follow-up), both streamed."""
    session = f"gpu-serve-{ctx}"
    r = requests.post(f"{url}/v1/sessions", json={"session_id": session}, timeout=30)
    r.raise_for_status()
    text = prompt_text(model_dir, ctx)
    run["prompt_chars"] = len(text)
    run["turn1"] = stream_turn(client, model, session, text, args, deadline - time.perf_counter())
    run["turn2"] = stream_turn(client, model, session, "Go on.", args, deadline - time.perf_counter())
    info = requests.get(f"{url}/v1/sessions/{session}", timeout=30).json()
    run["session_tokens"] = info.get("cached_tokens")
    requests.delete(f"{url}/v1/sessions/{session}", timeout=30)


# ---------------------------------------------------------------- the whole run


def compare(record: dict) -> dict:
    """Server decode rate over in-process decode rate, per context (turn 2: every step a graph replay).

    The reference is the bench's steady rate (its first step captures the graph); the target of issue 14
    is a server rate of at least 0.8 times it.
    """
    out = {}
    for ctx, run in record.get("serve", {}).get("contexts", {}).items():
        bench_run = record.get("bench", {}).get("contexts", {}).get(ctx, {})
        ref = bench_run.get("decode_steady_tok_s") or bench_run.get("decode_tok_s")
        got = run.get("turn2", {}).get("decode_tok_s")
        if ref and got:
            out[ctx] = {"bench_tok_s": ref, "server_tok_s": got, "ratio": round(got / ref, 3),
                        "at_least_0.8x": got >= 0.8 * ref}
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    deadline = start + args.budget_s
    os.environ["SPL_ALLOW_RANDOM_WEIGHTS"] = "1"  # this benchmark measures random weights, on purpose
    args.out.mkdir(parents=True, exist_ok=True)
    contexts = [int(c) for c in args.contexts.split(",") if c]
    model_dir = args.model_dir or Path(tempfile.mkdtemp(prefix="spl-random-model-"))
    try:
        return _run(args, model_dir, contexts, start, deadline)
    finally:
        if args.model_dir is None:
            shutil.rmtree(model_dir, ignore_errors=True)


def _run(args, model_dir: Path, contexts: list[int], start: float, deadline: float) -> int:
    """Write the model directory, then bench and serve as asked; return the exit status."""
    steps = set(args.steps.split(","))
    record: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    status = 0
    write_model_dir(model_dir, args.preset, args.seed, max(contexts) + 4 * args.decode + 4096)
    for step in ("bench", "serve"):
        if step not in steps:
            continue
        part = record[step] = {}
        try:
            if step == "bench":
                # In a child process, so that its GPU memory is free before the server loads the model.
                _bench_in_child(model_dir, args, deadline, part)
            else:
                serve(model_dir, _served(contexts, record), args, deadline, part, args.out,
                      bench_runs=record.get("bench", {}).get("contexts"), save=lambda: _write(record, args.out, start))
        except Exception as exc:  # noqa: BLE001 - keep what ran, go on to the next step
            part["error"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            status = 1
        _write(record, args.out, start)
    record["compare"] = compare(record)
    _write(record, args.out, start)
    print(json.dumps(record["compare"], indent=2), flush=True)
    return status


def _served(contexts: list[int], record: dict) -> list[int]:
    """The contexts to serve: those the bench measured, when it ran (a server rate needs its reference)."""
    runs = record.get("bench", {}).get("contexts")
    if runs is None:
        return contexts
    done = [c for c in contexts if runs.get(str(c), {}).get("decode_tok_s")
            and runs[str(c)].get("prefill_tokens") == c]
    return done or contexts[:1]


def _bench_in_child(model_dir: Path, args, deadline: float, part: dict) -> None:
    """Run `bench` in a child process (this script with --child-bench) and read back its JSON."""
    out = args.out / "bench.json"
    cmd = [sys.executable, __file__, "--preset", args.preset, "--device", args.device, "--contexts",
           args.contexts, "--decode", str(args.decode), "--chunk", str(args.chunk), "--seed", str(args.seed),
           "--budget-s", str(max((deadline - time.perf_counter()) * args.bench_share, 1.0)),
           "--model-dir", str(model_dir),
           "--out", str(args.out), "--steps", "child-bench"]
    left = deadline - time.perf_counter()
    with open(args.out / "bench.log", "wb") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=max(left, 1.0), check=False)
    part.update(json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {"error": "no bench.json"})


def _write(record: dict, out: Path, start: float) -> None:
    record["wall_s"] = round(time.perf_counter() - start, 1)
    (out / "gpu_serve.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def child_bench(args) -> int:
    """The bench step, in its own process; writes bench.json."""
    record: dict[str, Any] = {}
    deadline = time.perf_counter() + args.budget_s
    status = 0
    try:
        bench(args.model_dir, [int(c) for c in args.contexts.split(",") if c], args, deadline, record)
    except Exception as exc:  # noqa: BLE001 - keep what ran
        record["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        status = 1
    (args.out / "bench.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return status


if __name__ == "__main__":
    _args = parse_args(None)
    if _args.steps == "child-bench":
        os.environ["SPL_ALLOW_RANDOM_WEIGHTS"] = "1"
        sys.exit(child_bench(_args))
    sys.exit(main())
