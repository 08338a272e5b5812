"""The grouped Triton MoE computes the reference expert loop's function, on fresh random inputs.

In CI (no GPU) the kernels run under the Triton CPU interpreter in a subprocess (``TRITON_INTERPRET``
must be set before Triton is imported); on CUDA (marked ``gpu``) in bf16 at the 30B expert sizes.
"""

from __future__ import annotations

import random

import pytest
import torch

CHECK = r"""
import sys, torch
from superlinear.adapters.hybrid.moe import StackedExperts
from superlinear.adapters.hybrid.testing import tiny_config
from superlinear.adapters.hybrid.config import HybridConfig
from superlinear.kernels.moe import grouped_expert_mlp, moe_layout

seed = int(sys.argv[1])
torch.manual_seed(seed)
cfg = HybridConfig.from_dict(tiny_config())
experts = StackedExperts(cfg)
with torch.no_grad():
    experts.up_proj.normal_(0, cfg.hidden_size ** -0.5)
    experts.down_proj.normal_(0, cfg.moe_intermediate_size ** -0.5)
E, k = cfg.n_routed_experts, cfg.num_experts_per_tok
for tokens in (1, 3, 8, 29):
    hidden = torch.randn(tokens, cfg.hidden_size)
    ids = torch.stack([torch.randperm(E)[:k] for _ in range(tokens)])
    weights = torch.rand(tokens, k)
    layout = moe_layout(ids, E, 16)
    real = layout.pairs[layout.pairs < ids.numel()]
    assert sorted(real.tolist()) == list(range(ids.numel())), "every pair exactly once"
    for b in range(int(layout.n_blocks)):
        rows = layout.pairs[b * 16 : (b + 1) * 16]
        rows = rows[rows < ids.numel()]
        assert (ids.reshape(-1)[rows] == layout.block_expert[b]).all(), "a block holds one expert"
    with torch.no_grad():
        got = grouped_expert_mlp(hidden, experts.up_proj, experts.down_proj, ids, weights)
        ref = experts.reference(hidden, ids, weights)
    err = float((got - ref).norm() / ref.norm())
    assert err < 1e-5, (tokens, err)
print("ok")
"""


def test_grouped_moe_matches_reference_under_interpreter(interpreted):
    interpreted(CHECK)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("tokens", [1, 7, 3000])
def test_grouped_moe_matches_reference_on_cuda(tokens):
    from superlinear.kernels.moe import grouped_expert_mlp

    torch.manual_seed(random.SystemRandom().randrange(2**31))
    experts, hidden, inner, k = 128, 2688, 1856, 6
    up = (torch.randn(experts, inner, hidden, device="cuda") * hidden**-0.5).bfloat16()
    down = (torch.randn(experts, hidden, inner, device="cuda") * inner**-0.5).bfloat16()
    x = torch.randn(tokens, hidden, device="cuda").bfloat16()
    ids = torch.rand(tokens, experts, device="cuda").topk(k, dim=-1).indices
    weights = torch.rand(tokens, k, device="cuda")
    got = grouped_expert_mlp(x, up, down, ids, weights)
    # fp32 reference on the same bf16 inputs, one expert at a time.
    ref = torch.zeros(tokens, hidden, device="cuda")
    for expert in ids.unique().tolist():
        rows, slot = (ids == expert).nonzero(as_tuple=True)
        act = torch.relu(x[rows].float() @ up[expert].float().T) ** 2
        ref.index_add_(0, rows, (act @ down[expert].float().T) * weights[rows, slot, None])
    err = float((got - ref).norm() / ref.norm())
    assert err < 1e-2, err
