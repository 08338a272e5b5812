"""Where one 8192-token prefill chunk of a 30B-shape Mamba-2 layer goes (torch profiler, CUDA time by op).

Usage (on a GPU machine): python benchmarks/_mamba_prefill_profile.py
"""

import torch

from superlinear.adapters.hybrid.config import HybridConfig
from superlinear.adapters.hybrid.state import HybridState
from superlinear.adapters.hybrid.testing import nano_30b_config, random_model


def main() -> None:
    cfg = HybridConfig.from_dict(nano_30b_config(num_hidden_layers=1, hybrid_override_pattern="M"))
    model = random_model(cfg, device="cuda", dtype=torch.bfloat16, seed=0)
    hidden = torch.randn(1, 8192, cfg.hidden_size, device="cuda", dtype=torch.bfloat16)
    with torch.inference_mode():
        for _ in range(2):
            state = HybridState.empty(cfg, 8192, device="cuda", dtype=torch.bfloat16)
            model.layers[0](hidden, state.layers[0], 0)
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            model.layers[0](hidden, state.layers[0], 0)
            torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=15, max_name_column_width=60))


if __name__ == "__main__":
    main()
