"""Issue 15 on the GPU: batched decode throughput and a stream's gaps beside a long prefill, 30B shape.

Builds the model with random weights on the device (as benchmarks/full_size_shape.py), served through
`TorchModel` exactly as the engine drives it, then measures (each phase within the time budget; the JSON
says what ran and where a phase stopped):

1. sessions: one random prompt of --context tokens prefilled, forked into --sessions states, and a distinct
   random suffix of --suffix tokens appended to all of them in one `append_batch` (the batched prompt
   path), so every row routes differently;
2. decode: for each batch size of --batches, `decode_batch` steps of the first B sessions (a graph replay of
   B's bucket on CUDA; the first step of a new row set records the graph, reported apart) with each row's
   greedy token taken from the step before (one argmax over the batch, one host sync a step): aggregate
   tok/s = B x steps / time, step times;
3. gaps: one session decodes alone (idle gaps between its tokens), then beside another session that prefills
   --long tokens, the engine's way: every step one decode token for the stream, then --prefill-budgets
   tokens of the other prompt (`append`); gap = time between two tokens of the stream. p50/p99 against idle,
   over the last --gap-window steps of the prompt (the longest context; the prompt before them goes in
   --chunk pieces) or over the whole prompt (--gap-window 0).

    python benchmarks/gpu_batch.py --out gpu_out                 # on one H200 (benchmarks/gpu_batch.sh)
    python benchmarks/gpu_batch.py --smoke --out /tmp/smoke      # CPU, tiny sizes, end to end
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import traceback
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from full_size_shape import DTYPES, PRESETS, Clock, environment  # noqa: E402

from superlinear.adapters import TorchModel  # noqa: E402
from superlinear.adapters.hybrid.batch_graphs import BatchedGraphs  # noqa: E402
from superlinear.adapters.hybrid.config import HybridConfig  # noqa: E402
from superlinear.adapters.hybrid.testing import random_model  # noqa: E402

SMOKE = dict(preset="tiny", device="cpu", dtype="fp32", context=64, suffix=8, sessions=4, batches="1,2,4",
             steps=3, eager_steps=2, long=192, prefill_budgets="64,32", idle_steps=4, chunk=64, gap_window=4)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="nano30b")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    p.add_argument("--context", type=int, default=16384, help="tokens each session holds before decoding")
    p.add_argument("--suffix", type=int, default=64, help="distinct tokens appended to each forked session")
    p.add_argument("--sessions", type=int, default=32)
    p.add_argument("--batches", default="1,8,32", help="batch sizes of the decode curve")
    p.add_argument("--steps", type=int, default=32, help="timed decode steps per batch size")
    p.add_argument("--eager-steps", type=int, default=6, help="steps of the largest batch without graphs")
    p.add_argument("--long", type=int, default=262144, help="tokens of the prompt prefilled beside a stream")
    p.add_argument("--prefill-budgets", default="128,32,512",
                   help="prompt tokens per engine step (128: the engine's default), one run each")
    p.add_argument("--gap-window", type=int, default=128,
                   help="interleaved steps measured at the end of the long prompt (0: the whole prompt)")
    p.add_argument("--idle-steps", type=int, default=64, help="stream tokens timed with nothing beside")
    p.add_argument("--chunk", type=int, default=8192, help="TorchModel chunk size (prefill)")
    p.add_argument("--budget-s", type=float, default=360.0, help="wall-clock budget from start")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny sizes on CPU (overrides the sizes above)")
    p.add_argument("--out", type=Path, default=Path("gpu_out"))
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
        args.budget_s = min(args.budget_s, 60.0)
    return args


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _ms(seconds: list[float]) -> dict[str, float]:
    """Median, p99 (nearest rank) and max of `seconds`, in ms."""
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return {"median_ms": round(1000 * statistics.median(ordered), 3), "p99_ms": round(1000 * p99, 3),
            "max_ms": round(1000 * ordered[-1], 3), "n": len(ordered)}


def build(args, device: torch.device, clock: Clock, record: dict) -> TorchModel:
    """The random model on the device, wrapped as the engine's TorchModel."""
    cfg = HybridConfig.from_dict(PRESETS[args.preset]())
    t0 = clock.now()
    with torch.no_grad():
        lm = random_model(cfg, device=device, dtype=DTYPES[args.dtype], seed=args.seed)
    model = TorchModel(lm, name=f"random-{args.preset}", fingerprint={}, chunk_size=args.chunk)
    if args.smoke and model.batch_graphs is None:  # the same bucket bookkeeping, replayed eagerly on CPU
        model.batch_graphs = BatchedGraphs(lm, capture=False)
    record["build"] = {"seconds": round(clock.now() - t0, 2), "params": sum(p.numel() for p in lm.parameters()),
                       "graphs": model.batch_graphs is not None, "layers": "".join(cfg.layer_kinds)}
    print(f"built {record['build']}", flush=True)
    return model


def sessions(model: TorchModel, args, clock: Clock, rng: random.Random, record: dict) -> list:
    """`args.sessions` states of context + suffix tokens, different in their last `suffix` tokens."""
    vocab = model.config.vocab_size
    batches, budgets = _ints(args.batches), _ints(args.prefill_budgets)
    # Room for every token any phase adds to a session (the stream of `gaps` is session 0).
    per_budget = [args.gap_window if args.gap_window > 0 else -(-args.long // b) for b in budgets]
    extra = args.steps * (len(batches) + 1) + args.eager_steps + 1 + args.idle_steps + sum(per_budget)
    room = args.context + args.suffix + extra + 64
    base = model.new_state(room)
    t0 = clock.now()
    model.append(base, [rng.randrange(vocab) for _ in range(args.context)])
    prefill_s = clock.now() - t0
    states = [model.fork(base) for _ in range(args.sessions)]
    model.release(base)
    suffixes = [[rng.randrange(vocab) for _ in range(args.suffix)] for _ in states]
    marks = [model.checkpoint(s) for s in states]
    t0 = clock.now()
    try:
        model.append_batch(states, suffixes)
    except Exception:  # noqa: BLE001 - keep the run going on per-row appends, and say so
        record.setdefault("errors", {})["append_batch"] = traceback.format_exc()
        print(record["errors"]["append_batch"], flush=True)
        for state, mark, suffix in zip(states, marks, suffixes, strict=True):
            model.restore(state, mark)
            model.append(state, suffix)
    suffix_s = clock.now() - t0
    record["sessions"] = {"count": len(states), "context": args.context, "prefill_s": round(prefill_s, 3),
                          "prefill_tok_s": round(args.context / prefill_s, 1), "suffix": args.suffix,
                          "suffix_batch_s": round(suffix_s, 3)}
    print(f"sessions {record['sessions']}", flush=True)
    return states


def decode_curve(model: TorchModel, states: list, args, clock: Clock, record: dict) -> None:
    """Aggregate decode tok/s for each batch size: B x steps / time of `steps` replayed steps."""
    curve = record["decode"] = []
    for batch in _ints(args.batches):
        rows = states[:batch]
        row: dict[str, Any] = {"batch": batch}
        curve.append(row)
        tokens = [int(t) for t in torch.stack([s.logits for s in rows]).argmax(-1).tolist()]
        t0 = clock.now()
        model.decode_batch(rows, tokens)  # a new row set: the first step records the graph
        row["first_step_s"] = round(clock.now() - t0, 3)
        times = []
        for _ in range(args.steps):
            if times and clock.left() < 3 * sum(times[-1:]) + 5:
                row["stopped_early"] = f"budget: {clock.left():.1f} s left"
                break
            t0 = clock.now()
            tokens = [int(t) for t in torch.stack([s.logits for s in rows]).argmax(-1).tolist()]
            model.decode_batch(rows, tokens)
            times.append(clock.now() - t0)
        row.update(_ms(times), steps=len(times), tok_s=round(batch * len(times) / sum(times), 1))
        if model.batch_graphs is not None:
            row["graph_captures_total"] = model.batch_graphs.captures
        print(f"decode {row}", flush=True)
    if model.batch_graphs is not None and args.eager_steps > 0:
        record["decode_eager"] = _eager_decode(model, states[: max(_ints(args.batches))], args.eager_steps, clock)


def _eager_decode(model: TorchModel, rows: list, steps: int, clock: Clock) -> dict:
    """The same batched step without graphs (as SUPERLINEAR_CUDA_GRAPHS=0), for the graphs' gain."""
    graphs, model.batch_graphs = model.batch_graphs, None
    try:
        times = []
        for _ in range(steps + 1):  # the first step is left out (warm-up)
            t0 = clock.now()
            model.decode_batch(rows, [int(t) for t in torch.stack([s.logits for s in rows]).argmax(-1).tolist()])
            times.append(clock.now() - t0)
    finally:
        model.batch_graphs = graphs
    row = {"batch": len(rows), **_ms(times[1:]), "tok_s": round(len(rows) * steps / sum(times[1:]), 1)}
    print(f"decode eager {row}", flush=True)
    return row


def _stream_token(model: TorchModel, stream) -> None:
    model.decode_batch([stream], [int(torch.argmax(stream.logits))])


def gaps(model: TorchModel, stream, args, clock: Clock, rng: random.Random, record: dict) -> None:
    """The stream's gaps between tokens alone, then beside a --long prefill at each prefill budget."""
    out = record["gaps"] = {}
    for _ in range(2):  # warm: the stream's own graph (bucket 1, its buffers)
        _stream_token(model, stream)
    idle = []
    for _ in range(args.idle_steps):
        t0 = clock.now()
        _stream_token(model, stream)
        idle.append(clock.now() - t0)
    out["idle"] = _ms(idle)
    print(f"idle gaps {out['idle']}", flush=True)
    budgets = _ints(args.prefill_budgets)
    prompt = [rng.randrange(model.config.vocab_size) for _ in range(args.long)]
    # The prompt's common start (before every budget's measured steps) is prefilled once, then forked.
    base = model.new_state(args.long + 1)
    t0 = clock.now()
    _bulk(model, base, prompt, min(_gap_start(args, b) for b in budgets), args.chunk)
    out["common_prefill"] = {"tokens": base.cursor, "seconds": round(clock.now() - t0, 2)}
    for budget in budgets:
        _beside_prefill(model, stream, model.fork(base), prompt, budget, args, clock, out)
    model.release(base)


def _gap_start(args, budget: int) -> int:
    """Where the measured steps of `budget` start in the long prompt."""
    return max(0, args.long - args.gap_window * budget) if args.gap_window > 0 else 0


def _bulk(model: TorchModel, state, prompt: list[int], stop: int, chunk: int) -> None:
    """Append prompt[state.cursor:stop] in `chunk` pieces."""
    for start in range(state.cursor, stop, chunk):
        model.append(state, prompt[start : min(stop, start + chunk)])


def _beside_prefill(model: TorchModel, stream, other, prompt: list[int], budget: int, args, clock: Clock,
                    out: dict) -> None:
    """The stream's gaps while `other` takes the rest of the --long prompt `budget` tokens a step. With
    --gap-window W > 0 the prompt up to its last W x budget tokens goes in --chunk pieces first (the
    stream waiting), and the gaps are those of its last W steps, where the context is longest."""
    run: dict[str, Any] = {"prefill_budget": budget}
    out[f"budget_{budget}"] = run
    t0 = clock.now()
    _bulk(model, other, prompt, _gap_start(args, budget), args.chunk)
    done = other.cursor
    run["bulk_to"], run["bulk_s"] = done, round(clock.now() - t0, 2)
    seen, started = [], clock.now()
    last, first = started, done
    while done < args.long:
        if clock.left() < 10:
            run["stopped_early"] = f"budget: {clock.left():.1f} s left at {done} of {args.long} tokens"
            break
        _stream_token(model, stream)
        now = clock.now()
        seen.append(now - last)
        last = now
        piece = prompt[done : done + budget]
        model.append(other, piece)
        done += len(piece)
    run["prefilled"], run["measured_from"] = done, first
    run["prefill_tok_s"] = round((done - first) / (clock.now() - started), 1)
    run.update(_ms(seen[1:] or seen))
    run["p99_over_idle_p99"] = round(run["p99_ms"] / out["idle"]["p99_ms"], 2)
    run["p99_over_idle_median"] = round(run["p99_ms"] / out["idle"]["median_ms"], 2)
    model.release(other)
    print(f"gaps {run}", flush=True)


def table(record: dict) -> str:
    """The markdown summary of what ran."""
    lines = ["| measure | value |", "| --- | --- |"]
    for row in record.get("decode", []):
        lines.append(f"| decode, batch {row['batch']}, {record['sessions']['context']} context: aggregate tok/s "
                     f"(median / p99 step ms) | {row.get('tok_s')} ({row.get('median_ms')} / {row.get('p99_ms')}) |")
    eager = record.get("decode_eager")
    if eager:
        lines.append(f"| decode, batch {eager['batch']}, without graphs: aggregate tok/s (median / p99 step ms) | "
                     f"{eager['tok_s']} ({eager['median_ms']} / {eager['p99_ms']}) |")
    gap = record.get("gaps", {})
    if "idle" in gap:
        lines.append(f"| stream alone: gap median / p99 ms | {gap['idle']['median_ms']} / {gap['idle']['p99_ms']} |")
    for key, run in gap.items():
        if key.startswith("budget_") and "p99_ms" in run:
            lines.append(f"| stream beside a {run['prefilled']}-token prefill, {run['prefill_budget']} tokens a "
                         f"step (gaps from token {run['measured_from']}): gap median / p99 ms (p99 / idle p99) | "
                         f"{run['median_ms']} / {run['p99_ms']} ({run['p99_over_idle_p99']}x); prefill "
                         f"{run['prefill_tok_s']} tok/s |")
    for phase, error in record.get("errors", {}).items():
        lines.append(f"| {phase} failed | {error.splitlines()[-1] if error else ''} |")
    return "\n".join(lines) + "\n"


def run(args, record: dict) -> None:
    device = torch.device(args.device)
    clock = Clock(device, args.budget_s)
    record["environment"] = environment(device)
    record["args"] = {k: str(v) for k, v in vars(args).items()}
    rng = random.Random(args.seed)
    model = build(args, device, clock, record)
    errors = record.setdefault("errors", {})
    states = sessions(model, args, clock, rng, record)
    for phase, call in (("decode", lambda: decode_curve(model, states, args, clock, record)),
                        ("gaps", lambda: gaps(model, states[0], args, clock, rng, record))):
        try:
            call()
        except Exception:  # noqa: BLE001 - record the failure, keep the other phases
            errors[phase] = traceback.format_exc()
            print(errors[phase], flush=True)
            if model.batch_graphs is not None and device.type == "cuda" and phase == "decode":
                # Numbers of the eager batched step rather than none (the failure above says why).
                model.batch_graphs = None
                record["decode_graphed"] = record.pop("decode", None)
                _try(errors, "decode_eager", lambda: decode_curve(model, states, args, clock, record))
        if device.type == "cuda":
            record[f"peak_gib_after_{phase}"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


def _try(errors: dict, phase: str, call) -> None:
    try:
        call()
    except Exception:  # noqa: BLE001 - record the failure
        errors[phase] = traceback.format_exc()
        print(errors[phase], flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {}
    try:
        with torch.inference_mode():
            run(args, record)
    except Exception:  # noqa: BLE001 - the JSON still says what ran
        record.setdefault("errors", {})["run"] = traceback.format_exc()
        print(record["errors"]["run"], flush=True)
    (args.out / "gpu_batch.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "gpu_batch.md").write_text(table(record))
    print(table(record))
    return 1 if record.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
