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

from superlinear.adapters import HFTokenizer, TorchModel, default_model_dir
from superlinear.adapters import grammar as grammar_mod
from superlinear.adapters import logits as logits_mod
from superlinear.core import ChatRequest, Engine, Message, SamplingParams, SessionService
from superlinear.core.ports import RandomIds, SystemClock
from superlinear.core.values import Grammar
from superlinear.storage import MemorySnapshotStore

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


def service(device: str) -> SessionService:
    """The engine over the default model, as the server builds it but without HTTP (no stop rules)."""
    model = TorchModel.from_dir(default_model_dir(), device=device)
    tok = HFTokenizer.from_dir(default_model_dir())
    return SessionService(model=model, tok=tok, engine=Engine().start(), store=MemorySnapshotStore(),
                          clock=SystemClock(), ids=RandomIds(), stop_rules=lambda request: [],
                          entropy=lambda: 7, default_max_seq_len=4096,
                          grammars=grammar_mod.LLGuidanceGrammars(tok, model.info.vocab_size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=120)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sessions = service(args.device)
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
           "constrained_tokens": constrained_tokens, "rounds": args.rounds, "requests": args.requests,
           "device": str(torch.cuda.get_device_name()) if args.device.startswith("cuda") else "cpu",
           "torch": torch.__version__}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
