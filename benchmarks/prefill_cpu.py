"""Time and peak memory of a long prefill of the embedded default model (CPU by default).

Usage: python benchmarks/prefill_cpu.py [--tokens 32768] [--chunk 8192] [--device cpu]
"""

from __future__ import annotations

import argparse
import random
import resource
import time

from superlinear.adapters import TorchModel, default_model_dir


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=32768)
    p.add_argument("--chunk", type=int, default=8192)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    a = p.parse_args()
    model = TorchModel.from_dir(default_model_dir(), device=a.device, dtype=a.dtype, chunk_size=a.chunk)
    rng = random.Random(0)
    ids = [rng.randrange(5, model.info.vocab_size) for _ in range(a.tokens)]
    state = model.new_state(a.tokens + 1)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    for i in range(0, a.tokens, a.chunk):
        t = time.perf_counter()
        model.append(state, ids[i : i + a.chunk])
        print(f"chunk at {i}: {time.perf_counter() - t:.2f} s", flush=True)
    total = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"tokens={a.tokens} chunk={a.chunk} device={a.device} seconds={total:.1f} tok/s={a.tokens / total:.0f} "
          f"peak_rss_mb={peak:.0f} (after loading: {base:.0f}) state_mb={model.nbytes(state) / 1e6:.1f}")


if __name__ == "__main__":
    main()
