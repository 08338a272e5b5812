"""The graph-capturable decode step computes what `HybridLM.forward` computes, and the CUDA graph replays it.

On CPU: `decode_logits` (position as a device tensor, attention over the whole KV buffer) against the
eager one-token forward, dense and Superlinear. On CUDA (marked ``gpu``): graph replays against eager
steps of the same model, and the bf16 GPU model (graphs, Triton attention, grouped MoE) against the fp32
PyTorch path on CPU with the same random weights of the narrow 30B preset.
"""

from __future__ import annotations

import copy
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


def _greedy_errors(reference, others, cfg, seed, prompt=3000, steps=24):
    """Prefill the same random prompt, then decode `reference`'s greedy tokens in every model (teacher
    forcing); return per model the relative logits errors and the count of agreeing argmaxes."""
    ids = torch.randint(0, cfg.vocab_size, (prompt,), generator=torch.Generator().manual_seed(seed)).tolist()
    states = [m.new_state(prompt + steps + 8) for m in (reference, *others)]
    for model, state in zip((reference, *others), states, strict=True):
        for start in range(0, prompt, 1000):
            model.append(state, ids[start : start + 1000])
    results = [([], 0) for _ in others]
    for _ in range(steps):
        want = states[0].logits
        token = int(want.argmax())
        for j, state in enumerate(states[1:]):
            got = state.logits.float().cpu()
            results[j][0].append(float((got - want).norm() / want.norm()))
            results[j] = (results[j][0], results[j][1] + (int(got.argmax()) == token))
        for model, state in zip((reference, *others), states, strict=True):
            model.append(state, [token])
    return results


@pytest.mark.gpu
@needs_cuda
def test_gpu_model_follows_the_fp32_torch_path():
    """Narrow 30B preset, same random weights, 3000-token prompt, 24 greedy steps.

    fp32 on the GPU (grouped MoE and Mamba decode kernels, eager) against fp32 on the CPU: logits within
    1e-3 relative and the same greedy tokens. bf16 on the GPU (graphs, Triton attention) against fp32:
    this random model is chaotic under bf16 activations (the CPU's own bf16 path is 0.2-0.5 away from
    fp32, with flipped argmaxes), so the bound is that the GPU's bf16 error is at most 1.5 times the CPU
    bf16 path's error on the same steps.
    """
    seed = _seed()
    cfg = HybridConfig.from_dict(nano_30b_narrow_config())
    drawn = random_model(cfg, device="cpu", dtype=torch.bfloat16, seed=seed)
    cpu32 = _torch_model(copy.deepcopy(drawn).float())
    cpu16 = _torch_model(copy.deepcopy(drawn))
    gpu32 = _torch_model(copy.deepcopy(drawn).float().to("cuda"))
    gpu16 = _torch_model(drawn.to("cuda"))
    assert gpu16.graphs is not None and gpu32.graphs is None
    (e32, agree32), (e16, agree16), (ecpu16, agree_cpu16) = _greedy_errors(
        cpu32, [gpu32, gpu16, cpu16], cfg, seed
    )
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    print(
        f"gpu fp32: max err {max(e32):.2e}, greedy {agree32}/24; gpu bf16: mean err {mean(e16):.3f}, "
        f"greedy {agree16}/24; cpu bf16: mean err {mean(ecpu16):.3f}, greedy {agree_cpu16}/24"
    )
    assert max(e32) < 1e-3 and agree32 == 24
    assert mean(e16) <= 1.5 * mean(ecpu16)
