"""The batched prompt forward where the Triton kernels run it: their masked (left-padded) Superlinear call
under the Triton interpreter in bf16 on CPU, and on CUDA (marked ``gpu``) `append_batch` against each
row's own `append` on fresh random inputs. `batchable` / `masked_rows` say where it runs.
"""

from __future__ import annotations

import os
import random

import pytest
import torch

from superlinear.adapters import TorchModel
from superlinear.adapters.hybrid.config import HybridConfig
from superlinear.adapters.hybrid.prompt_batch import batchable, masked_rows
from superlinear.adapters.hybrid.testing import nano_30b_narrow_config, random_model, tiny_config

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_where_prompts_batch(monkeypatch):
    lm = random_model(HybridConfig.from_dict(tiny_config()), device="cpu", dtype=torch.float32, seed=1)
    assert batchable(lm)
    monkeypatch.setenv("SUPERLINEAR_BATCHED_PROMPTS", "0")
    assert not batchable(lm)
    assert masked_rows(torch.zeros(1, dtype=torch.float32))
    assert masked_rows(torch.zeros(1, dtype=torch.bfloat16))


def _pairs(model, rng, held, max_len=2048):
    out = []
    for n in held:
        a, b = model.new_state(max_len), model.new_state(max_len)
        if n:
            ids = [rng.randrange(model.config.vocab_size) for _ in range(n)]
            model.append(a, ids)
            model.append(b, ids)
        out.append((a, b))
    return out


def _batched_against_alone(model, rng, held, widths, tol):
    """`append_batch` of runs of `widths` on states holding `held` tokens against each row's `append`."""
    pairs = _pairs(model, rng, held)
    runs = [[rng.randrange(model.config.vocab_size) for _ in range(w)] for w in widths]
    model.append_batch([a for a, _ in pairs], runs)
    for (a, b), run in zip(pairs, runs, strict=True):
        model.append(b, run)
        assert a.cursor == b.cursor
        err = float((a.logits.float() - b.logits.float()).norm() / b.logits.float().norm())
        assert err < tol, (len(run), err)


INTERPRETED = r"""
import random, sys, torch
sys.path.insert(0, sys.argv[2])
from test_prompt_batch_devices import _batched_against_alone
from superlinear.adapters import TorchModel
from superlinear.adapters.hybrid.config import HybridConfig
from superlinear.adapters.hybrid.testing import random_model, tiny_config
from superlinear.kernels.superlinear.attention import api
# CPU tensors take the Triton kernels (interpreted), as CUDA tensors do.
api.ACCELERATED_PREFILL["cpu"] = api.ACCELERATED_PREFILL["cuda"]
seed = int(sys.argv[1])
lm = random_model(HybridConfig.from_dict(tiny_config()), device="cpu", dtype=torch.bfloat16, seed=seed)
model = TorchModel(lm, name="random", fingerprint={})
# Rows ending at similar lengths: one masked Triton call (interpreted) for them, in bf16.
_batched_against_alone(model, random.Random(seed), [60, 75, 0], [20, 9, 70], 3e-2)
print("ok")
"""


def test_the_masked_triton_prompt_call_under_the_interpreter_in_bf16(interpreted):
    interpreted(INTERPRETED, os.path.dirname(__file__))


@pytest.mark.gpu
@needs_cuda
def test_batched_prompts_on_cuda_equal_each_rows_own_append():
    """Narrow 30B preset in bf16: rows holding 0..3000 tokens take runs of 1..700 tokens."""
    seed = random.SystemRandom().randrange(2**31)
    print(f"seed={seed}")
    lm = random_model(HybridConfig.from_dict(nano_30b_narrow_config()), device="cuda", dtype=torch.bfloat16,
                      seed=seed)
    model = TorchModel(lm, name="random", fingerprint={})
    assert batchable(lm)
    rng = random.Random(seed)
    _batched_against_alone(model, rng, [0, 3, 400, 420, 3000, 128, 2900], [19, 2, 130, 65, 700, 1, 1], 5e-2)
