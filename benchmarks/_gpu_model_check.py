"""Compare the default model on CUDA (bf16, Triton attention) with CPU fp32: prefill logits and greedy decode.

Usage (on a GPU machine): python benchmarks/_gpu_model_check.py
"""

import random

from superlinear.adapters import TorchModel, default_model_dir
from superlinear.core import SamplingParams


def rel_err(a, b) -> float:
    a, b = a.float().cpu(), b.float().cpu()
    return float((a - b).norm() / a.norm())


def main() -> None:
    cpu = TorchModel.from_dir(default_model_dir(), device="cpu", dtype="float32")
    gpu = TorchModel.from_dir(default_model_dir(), device="cuda", dtype="bfloat16", chunk_size=1024)
    rng = random.Random(0)
    ids = [rng.randrange(5, 1024) for _ in range(3000)]
    sc, sg = cpu.new_state(8192), gpu.new_state(8192)
    cpu.append(sc, ids)
    gpu.append(sg, ids)
    print("prefill logits rel err", rel_err(sc.logits, sg.logits))
    greedy, agree = SamplingParams(temperature=0), 0
    for _ in range(32):
        ta = cpu.sample(sc, greedy, random.Random(1))
        agree += ta == gpu.sample(sg, greedy, random.Random(1))
        cpu.append(sc, [ta])
        gpu.append(sg, [ta])
    print("decode steps: greedy agreement", agree, "/ 32; last rel err", rel_err(sc.logits, sg.logits))


if __name__ == "__main__":
    main()
