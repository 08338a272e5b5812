"""One batched prompt forward (`TorchModel.append_batch`) against the same rows one `append` at a time.

Default model, CPU, fp32; rows hold `held` random tokens and each takes a run of `width` random tokens;
the best of 5 tries of each is printed (milliseconds).

    OMP_NUM_THREADS=1 python benchmarks/_prompt_batch.py
"""

from __future__ import annotations

import random
import time

from superlinear.adapters.torch_model import DEFAULT_MODEL_DIR, TorchModel

CASES = [(1, 19, 0), (6, 19, 0), (6, 19, 80), (16, 4, 80), (6, 40, 80), (3, 40, 80)]  # rows, width, held


def best_of(model: TorchModel, rows: int, width: int, held: int, tries: int = 5) -> tuple[float, float]:
    """Seconds of the batched call and of the per-row calls, each the best of `tries`."""
    rng = random.Random(1)
    batched = alone = float("inf")
    for _ in range(tries):
        states = []
        for _ in range(2 * rows):
            state = model.new_state(2048)
            if held:
                model.append(state, [rng.randrange(5, 1024) for _ in range(held)])
            states.append(state)
        runs = [[rng.randrange(5, 1024) for _ in range(width)] for _ in range(rows)]
        start = time.perf_counter()
        model.append_batch(states[:rows], runs)
        batched = min(batched, time.perf_counter() - start)
        start = time.perf_counter()
        for state, run in zip(states[rows:], runs, strict=True):
            model.append(state, run)
        alone = min(alone, time.perf_counter() - start)
    return batched, alone


def main() -> None:
    model = TorchModel.from_dir(DEFAULT_MODEL_DIR)
    print("| rows x tokens (held) | append_batch ms | append per row ms |\n|---|---|---|")
    for rows, width, held in CASES:
        batched, alone = best_of(model, rows, width, held)
        print(f"| {rows} x {width} ({held}) | {batched * 1e3:.1f} | {alone * 1e3:.1f} |")


if __name__ == "__main__":
    main()
