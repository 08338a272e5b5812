"""Where the engine thread's time goes at N concurrent clients (a diagnostic driver, not a benchmark table).

Runs the same in-process load as `benchmarks/server.py` (SessionService driven by N threads, 16 greedy
requests of `--max-tokens` tokens per run) and splits each run's wall time into: batched decode forwards
(`run_decode`), prompt forwards (`Engine._prefill`, one batched forward per call: prompt, generation prompt, and the template rewrite of
an answer), the rest of the engine step (the turns' own Python: sampling, detokenizing, stop rules, events),
and time outside steps. `--cprofile` adds a cProfile of the engine thread (internal time).

    OMP_NUM_THREADS=1 python benchmarks/_engine_profile.py [--clients 1 16] [--repeat 2] [--cprofile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

_KEYS = ("step", "step_n", "decode", "decode_n", "prefill", "prefill_n")


def instrument(engine_mod, record: dict) -> None:
    """Wrap the engine's step, decode and prefill to add their seconds (and counts) to `record`."""
    step, decode, prefill = engine_mod.Engine._step, engine_mod.run_decode, engine_mod.Engine._prefill

    def timed(key, fn, count):
        def wrapper(*args):
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                record[key] += time.perf_counter() - start
                record[key + "_n"] += count(args)

        return wrapper

    engine_mod.Engine._step = timed("step", step, lambda a: 1)
    engine_mod.run_decode = timed("decode", decode, lambda a: len(a[0]))
    engine_mod.Engine._prefill = timed("prefill", prefill, lambda a: 1)


def profile_thread(engine_mod, profiler: cProfile.Profile) -> None:
    """Run the engine thread's loop under `profiler`."""
    loop = engine_mod.Engine._loop

    def profiled(self):
        profiler.enable()
        try:
            loop(self)
        finally:
            profiler.disable()

    engine_mod.Engine._loop = profiled


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--cprofile", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import server as bench

    from superlinear.core import engine as engine_mod
    from superlinear.frontends.http.compose import Settings, build_services, stop_rule_source
    from superlinear.plugins import build_plugin_manager, collect

    record = dict.fromkeys(_KEYS, 0)
    instrument(engine_mod, record)
    profiler = cProfile.Profile()
    if args.cprofile:
        profile_thread(engine_mod, profiler)
    pm = build_plugin_manager(load_entrypoints=False)
    services = build_services(Settings(), stop_rule_source(pm), collect(pm, "superlinear_model_families"))
    one = lambda: bench.engine_request(services.sessions, args.max_tokens)  # noqa: E731
    try:
        bench.engine_request(services.sessions, 4)
        for n in args.clients:
            for _ in range(args.repeat):
                record.update(dict.fromkeys(_KEYS, 0))
                r = bench.run_clients(n, max(1, 16 // n), one)
                report(n, r, record)
    finally:
        services.sessions.engine.stop()
    if args.cprofile:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def report(n: int, r: dict, rec: dict) -> None:
    """Print one run's split of the wall time."""
    other = rec["step"] - rec["decode"] - rec["prefill"]
    print(f"clients {n:2d}: {r['tps']:6.1f} tok/s, wall {r['wall']:.3f} s = decode {rec['decode']:.3f} "
          f"({rec['step_n']} steps, {rec['decode_n']} rows) + prompt forwards {rec['prefill']:.3f} "
          f"({rec['prefill_n']}) + rest of steps {other:.3f} + outside steps {r['wall'] - rec['step']:.3f}")


if __name__ == "__main__":
    main()
