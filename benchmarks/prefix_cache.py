"""Prefix caching: a stateless agent loop that resends a growing ~8K-token conversation, cache on vs off.

The loop sends a long system prompt (a generated document) and a question, then resends everything with
each reply and a new question, 10 turns in all, greedy, 16 tokens per reply, thinking off. Runs the
engine in-process (SessionService from the server's composition root), once with `--prefix-cache 0`
and once with the default, and reports per-turn seconds, prompt and cached tokens, and the totals.

    python benchmarks/prefix_cache.py [--turns 10] [--tokens 8000]
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

from superlinear.core import ChatRequest, Message, SamplingParams
from superlinear.frontends.http.compose import Settings, build_services, stop_rule_source
from superlinear.plugins import build_plugin_manager, collect

WORDS = ("sea tide harbor ship rope sail wind storm island coast lighthouse anchor wave reef gull net "
         "captain map compass star night dawn salt current fish shell sand cliff port cargo").split()


def document(tok, tokens: int, seed: int = 0) -> str:
    """Sentences of sea words until the text is about `tokens` tokens long."""
    rng, parts = random.Random(seed), []
    while True:
        parts.append(" ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + ".")
        if len(parts) % 50 == 0 and len(tok.encode(" ".join(parts))) >= tokens:
            return " ".join(parts)


def loop(svc, doc: str, turns: int) -> list[dict]:
    messages = [Message("system", "Answer from this log.\n" + doc), Message("user", "What is the first ship?")]
    rows = []
    for turn in range(turns):
        req = ChatRequest(messages=tuple(messages), sampling=SamplingParams(max_tokens=16, temperature=0.0),
                          template_kwargs={"enable_thinking": False})
        start = time.perf_counter()
        events = list(svc.sessions.chat(req).events(timeout=3600))
        secs = time.perf_counter() - start
        usage = events[-1].usage
        reply = "".join(e.text for e in events if e.kind == "content")
        rows.append({"turn": turn + 1, "seconds": round(secs, 3), "prompt_tokens": usage.prompt_tokens,
                     "cached_tokens": usage.cached_tokens, "reply": reply})
        messages += [Message("assistant", reply), Message("user", f"And after that? ({turn + 1})")]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=8000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pm = build_plugin_manager(load_entrypoints=False)
    rules, families = stop_rule_source(pm), collect(pm, "superlinear_model_families")
    out = {}
    for name, entries in (("off", 0), ("on", 8)):
        svc = build_services(Settings(prefix_cache=entries), rules, families)
        doc = document(svc.sessions.tok, args.tokens)
        rows = loop(svc, doc, args.turns)
        svc.sessions.engine.stop()
        out[name] = {"total_seconds": round(sum(r["seconds"] for r in rows), 2), "turns": rows}
    same = [r["reply"] for r in out["off"]["turns"]] == [r["reply"] for r in out["on"]["turns"]]
    out["speedup"] = round(out["off"]["total_seconds"] / out["on"]["total_seconds"], 2)
    out["same_replies"] = same
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
