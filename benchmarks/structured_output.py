"""Structured-output overhead: what the grammar mask costs per generated token on the default model.

Two measurements, both on the engine in-process (no HTTP):
- per step: the seconds inside the matcher (llguidance's bitmask and consuming the token) and inside the
  mask's application to the logits, timed around those calls during constrained generations;
- end to end: ms per generated token of constrained requests (response_format json_schema) against
  unconstrained requests capped at the constrained replies' mean length, temperature 1, alternating,
  median of the rounds.

    python benchmarks/structured_output.py [--rounds 5] [--requests 8] [--max-tokens 120]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time

import torch
from superlinear.adapters import grammar as grammar_mod
from superlinear.adapters import logits as logits_mod
from superlinear.core import ChatRequest, Message, SamplingParams
from superlinear.core.values import Grammar
from superlinear.frontends.http.compose import Settings, build_services, stop_rule_source
from superlinear.plugins import build_plugin_manager, collect

PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age", "likes"],
          "properties": {"name": {"type": "string", "maxLength": 12},
                         "age": {"type": "integer", "minimum": 0, "maximum": 120},
                         "likes": {"type": "array", "maxItems": 3, "items": {"enum": ["sea", "sun", "tea"]}}}}


def timed(fn, totals: dict, key: str):
    """Wrap a function (or method) so its wall time adds to `totals[key]`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[key] = totals.get(key, 0.0) + time.perf_counter() - start

    return wrapper


def run(service, grammar: Grammar | None, requests: int, max_tokens: int, seed0: int) -> tuple[float, int]:
    """Seconds and generated tokens of `requests` stateless turns."""
    tokens, start = 0, time.perf_counter()
    for i in range(requests):
        sampling = SamplingParams(max_tokens=max_tokens, temperature=1.0, seed=seed0 + i, grammar=grammar)
        req = ChatRequest(messages=(Message("user", "Describe a person."),), sampling=sampling,
                          template_kwargs={"enable_thinking": False})
        done = list(service.chat(req).events(timeout=600))[-1]
        tokens += done.usage.completion_tokens
    return time.perf_counter() - start, tokens


def instrument(totals: dict) -> None:
    """Time the matcher's calls and the mask's application."""
    cls = grammar_mod.LLGuidanceMatcher
    cls.allowed = timed(cls.allowed, totals, "matcher")
    cls.advance = timed(cls.advance, totals, "matcher")
    import superlinear.adapters.torch_model as tm

    tm.mask_disallowed = timed(logits_mod.mask_disallowed, totals, "mask")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=120)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pm = build_plugin_manager(load_entrypoints=False)
    svc = build_services(Settings(), stop_rule_source(pm), collect(pm, "superlinear_model_families"))
    sessions = svc.sessions
    grammar = Grammar("json_schema", json.dumps(PERSON), True)
    totals: dict = {}
    instrument(totals)
    run(sessions, grammar, 2, args.max_tokens, 999)  # warm-up: tokenizer build, first compile
    run(sessions, None, 2, args.max_tokens, 999)
    totals.clear()
    free, constrained = [], []
    constrained_tokens = 0
    for r in range(args.rounds):
        secs, toks = run(sessions, grammar, args.requests, args.max_tokens, 100 * r)
        constrained.append(1000 * secs / toks)
        constrained_tokens += toks
        # Free text of the same mean length, so prefill and position weigh the same in both.
        secs, toks = run(sessions, None, args.requests, round(toks / args.requests), 100 * r)
        free.append(1000 * secs / toks)
    sessions.engine.stop()
    out = {"free_ms_per_token": statistics.median(free), "constrained_ms_per_token": statistics.median(constrained),
           "matcher_us_per_token": 1e6 * totals.get("matcher", 0.0) / constrained_tokens,
           "mask_us_per_token": 1e6 * totals.get("mask", 0.0) / constrained_tokens,
           "constrained_tokens": constrained_tokens, "rounds": args.rounds, "requests": args.requests}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
