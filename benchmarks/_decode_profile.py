"""Driver for profiling one Superlinear decode step under Nsight Compute (not a benchmark by itself).

Usage: ncu --kernel-name regex:"_search|_select|_chunk|_combine" --launch-skip 8 --launch-count 4 \\
           --section SpeedOfLight python benchmarks/_decode_profile.py [--length 1048576] [--chunk-keys 64]

Runs two warm-up decode steps (4 launches each: search, select, chunk, combine), then the profiled one,
with the released model's attention shapes (B=1, HQ=32, HKV=2, D=128, bf16) at position L - 1.
"""

import argparse

import torch

from superlinear.kernels import SuperlinearParams
from superlinear.kernels.superlinear.span.decode import triton_decode

RELEASED = SuperlinearParams(
    sw_index=65, num_spans=3, backward_factor=3.0, forward_factor=1.0, search_power=0.55, span_power=0.55
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=1 << 20)
    parser.add_argument("--chunk-keys", type=int, default=64)
    args = parser.parse_args()
    q1, q2 = (torch.randn(1, 32, 1, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    k, v = (torch.randn(1, 2, args.length, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    position = torch.tensor([args.length - 1], device="cuda")
    for _ in range(3):
        triton_decode(q1, q2, k, v, position, None, RELEASED, chunk_keys=args.chunk_keys)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
