"""Snapshot save/load throughput and time-to-first-token of a restored session vs re-prefilling.

Usage: python benchmarks/snapshots.py [--tokens 4096 16384 65536] [--device cpu] [--dtype float32]

For each context length: build a session holding that many tokens (one long user message), save it,
load it back, and time the first token of a follow-up turn on the restored session against a fresh
session that prefills the same context from scratch.
"""

from __future__ import annotations

import argparse
import random
import secrets
import tempfile
import time

from superlinear.adapters import HFTokenizer, TorchModel, default_model_dir
from superlinear.core import ChatRequest, Engine, Message, SamplingParams, SessionService
from superlinear.core.ports import RandomIds, SystemClock
from superlinear.storage import FilesystemSnapshotStore

WORDS = "the of and to in is was for on that with as by at from his her an were are which this be".split()


def filler(tok: HFTokenizer, tokens: int, seed: int) -> str:
    """Return text of about `tokens` tokens."""
    rng = random.Random(seed)
    words = [rng.choice(WORDS) for _ in range(tokens)]
    text = " ".join(words)
    while len(tok.encode(text)) > tokens - 32:
        words = words[: int(len(words) * 0.95)]
        text = " ".join(words)
    return text


def first_token_seconds(svc: SessionService, sid: str, messages: list[Message]) -> float:
    """Time until the first event of a greedy one-token turn."""
    req = ChatRequest(tuple(messages), SamplingParams(max_tokens=1, temperature=0), sid, {"enable_thinking": False})
    start = time.perf_counter()
    handle = svc.chat(req)
    events = handle.events()
    next(events)
    elapsed = time.perf_counter() - start
    list(events)
    return elapsed


def measure(svc: SessionService, tokens: int) -> dict:
    text = filler(svc.tok, tokens, tokens)
    svc.create("src", max_seq_len=tokens + 256)
    prefill = first_token_seconds(svc, "src", [Message("user", text)])
    held = svc.info("src").cached_tokens
    start = time.perf_counter()
    saved = svc.save("src")
    save_s = time.perf_counter() - start
    start = time.perf_counter()
    svc.load(saved["snapshot_id"], session_id="restored")
    load_s = time.perf_counter() - start
    follow = [Message("user", "And?")]
    restored = load_s + first_token_seconds(svc, "restored", follow)
    for sid in ("src", "restored"):
        svc.delete(sid)
    gb = saved["bytes"] / 1e9
    return {"tokens": held, "bytes": saved["bytes"], "save_gbs": gb / save_s, "load_gbs": gb / load_s,
            "prefill_ttft": prefill, "restore_ttft": restored, "speedup": prefill / restored}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, nargs="+", default=[4096, 16384, 65536])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--model", default=str(default_model_dir()))
    a = p.parse_args()
    model = TorchModel.from_dir(a.model, device=a.device, dtype=a.dtype, chunk_size=8192)
    tok = HFTokenizer.from_dir(a.model)
    with tempfile.TemporaryDirectory() as root:
        svc = SessionService(model=model, tok=tok, engine=Engine().start(), store=FilesystemSnapshotStore(root),
                             clock=SystemClock(), ids=RandomIds(), stop_rules=lambda r: [],
                             entropy=lambda: secrets.randbits(63), default_max_seq_len=max(a.tokens) + 256)
        print(f"model={model.info.name} device={a.device} dtype={a.dtype}")
        print("| tokens | state MB | save GB/s | load GB/s | TTFT re-prefill s | TTFT restore s | speedup |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for n in a.tokens:
            r = measure(svc, n)
            print(f"| {r['tokens']} | {r['bytes'] / 1e6:.1f} | {r['save_gbs']:.2f} | {r['load_gbs']:.2f} | "
                  f"{r['prefill_ttft']:.2f} | {r['restore_ttft']:.3f} | {r['speedup']:.0f}x |", flush=True)
        svc.engine.stop()


if __name__ == "__main__":
    main()
