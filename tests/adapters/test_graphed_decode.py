"""The graph-capturable decode step computes what `HybridLM.forward` computes, and the CUDA graph replays it.

On CPU: `decode_logits` (position as a device tensor, attention over the whole KV buffer) against the
eager one-token forward, dense and Superlinear. On CUDA (marked ``gpu``): graph replays against eager
steps of the same model, and the bf16 GPU model (graphs, Triton attention, grouped MoE) against the fp32
PyTorch path on CPU with the same random weights of the narrow 30B preset.
"""

from __future__ import annotations

import random

import pytest
import torch
from superlinear.adapters import TorchModel
from superlinear.adapters.hybrid.config import HybridConfig
from superlinear.adapters.hybrid.state import HybridState
from superlinear.adapters.hybrid.testing import nano_30b_narrow_config, random_model, tiny_config

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _seed() -> int:
    seed = random.SystemRandom().randrange(2**31)
    print(f"seed={seed}")
    return seed


@pytest.mark.parametrize("model_type", ["superlinear-exp", "nemotron_h"])
def test_decode_logits_at_a_device_position_equals_the_eager_step(model_type):
    seed = _seed()
    model = random_model(
        HybridConfig.from_dict(tiny_config(model_type)), device="cpu", dtype=torch.float32, seed=seed
    )
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (1, 40), generator=gen)
    with torch.inference_mode():
        eager = HybridState.empty(model.config, 512, device="cpu", dtype=torch.float32)
        static = HybridState.empty(model.config, 512, device="cpu", dtype=torch.float32)
        model(ids[:, :30], eager)
        model(ids[:, :30], static)
        for pos in range(30, 40):
            want = model(ids[:, pos : pos + 1], eager)
            static.reserve(pos + 1)
            got = model.decode_logits(ids[:, pos : pos + 1], torch.tensor([pos]), static)
            static.cursor = pos + 1
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def _torch_model(lm) -> TorchModel:
    return TorchModel(lm, name="random", fingerprint={})


@pytest.mark.gpu
@needs_cuda
def test_graph_replays_equal_eager_steps_on_cuda():
    seed = _seed()
    cfg = HybridConfig.from_dict(nano_30b_narrow_config())
    lm = random_model(cfg, device="cuda", dtype=torch.bfloat16, seed=seed)
    model = _torch_model(lm)
    assert model.graphs is not None
    ids = torch.randint(0, cfg.vocab_size, (300,), generator=torch.Generator().manual_seed(seed)).tolist()
    graphed, eager = model.new_state(1024), model.new_state(1024)
    model.append(graphed, ids[:200])
    model.append(eager, ids[:200])
    for token in ids[200:300]:
        model.append(graphed, [token])
        with torch.inference_mode():
            lm(torch.tensor([[token]], device="cuda"), eager)
        torch.testing.assert_close(graphed.logits, eager.logits, atol=2e-2, rtol=2e-2)
    # Capacity 256 grows once to 512 at token 256: one graph before, one after.
    assert model.graphs.captures == 2


@pytest.mark.gpu
@needs_cuda
def test_bf16_gpu_model_follows_the_fp32_torch_path():
    """Narrow 30B preset, same random weights: logits within 5e-2 relative, same greedy tokens, 24 steps."""
    seed = _seed()
    cfg = HybridConfig.from_dict(nano_30b_narrow_config())
    cpu = _torch_model(random_model(cfg, device="cpu", dtype=torch.float32, seed=seed))
    gpu_lm = random_model(cfg, device="cpu", dtype=torch.float32, seed=seed).to("cuda", torch.bfloat16)
    for name, param in cpu.lm.named_parameters():  # the loader's fp32 tensors stay fp32 on the GPU
        if param.dtype == torch.float32 and gpu_lm.get_parameter(name).dtype != torch.float32:
            gpu_lm.get_parameter(name).data = param.data.to("cuda")
    gpu = _torch_model(gpu_lm)
    ids = torch.randint(0, cfg.vocab_size, (3000,), generator=torch.Generator().manual_seed(seed)).tolist()
    sc, sg = cpu.new_state(4096), gpu.new_state(4096)
    for start in range(0, 3000, 1000):
        cpu.append(sc, ids[start : start + 1000])
        gpu.append(sg, ids[start : start + 1000])
    errors, agree = [], 0
    for _ in range(24):
        errors.append(float((sg.logits.cpu() - sc.logits).norm() / sc.logits.norm()))
        token = int(sc.logits.argmax())
        agree += token == int(sg.logits.argmax())
        cpu.append(sc, [token])
        gpu.append(sg, [token])
    print(f"max relative logits error {max(errors):.3e}; greedy agreement {agree}/24")
    assert max(errors) < 5e-2
    assert agree == 24
