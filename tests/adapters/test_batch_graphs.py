"""The bucketed batched decode step (`hybrid/batch_graphs.py`) gives every row what its own step gives.

On CPU (fp32, fresh random tiny models, dense and Superlinear): bucket choice; the padded step against each
row's eager one-token forward (logits and every cache buffer), the padded against the unpadded step, the
replay bookkeeping (keys, LRU, growth); `TorchModel.decode_batch` split over buckets. Under the Triton
interpreter (subprocess): the batched Mamba-2 and KV-write kernels (offset tables) inside the padded step,
fp32, and with the Triton decode attention at device positions, bf16. On CUDA (marked
``gpu``): captured graph replays against eager per-row decode on fresh random inputs.
"""

from __future__ import annotations

import os
import random

import pytest
import torch

from superlinear.adapters import TorchModel
from superlinear.adapters.hybrid.batch_graphs import BatchedGraphs, bucket_for
from superlinear.adapters.hybrid.config import HybridConfig
from superlinear.adapters.hybrid.testing import nano_30b_narrow_config, random_model, tiny_config

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _seed() -> int:
    seed = random.SystemRandom().randrange(2**31)
    print(f"seed={seed}")
    return seed


def _model(model_type: str, seed: int, device="cpu", dtype=torch.float32):
    return random_model(HybridConfig.from_dict(tiny_config(model_type)), device=device, dtype=dtype, seed=seed)


def _prefilled(lm, lengths, seed, max_len=1024):
    """States holding random prompts of `lengths`, and independent copies for the reference."""
    model = TorchModel(lm, name="random", fingerprint={})
    gen = torch.Generator().manual_seed(seed)
    states = []
    for n in lengths:
        state = model.new_state(max_len)
        model.append(state, torch.randint(0, lm.config.vocab_size, (n,), generator=gen).tolist())
        states.append(state)
    with torch.inference_mode():
        copies = [s.fork() for s in states]
    return model, states, copies


def _eager_row(lm, state, token):
    with torch.inference_mode():
        return lm(torch.tensor([[token]], device=lm.device), state)[-1]


def _assert_same_state(a, b, atol=1e-5):
    assert a.cursor == b.cursor
    for ca, cb in zip(a.layers, b.layers, strict=True):
        if ca is None:
            continue
        for ta, tb in zip(ca.buffers(), cb.buffers(), strict=True):
            n = min(ta.shape[2], tb.shape[2]) if ta.dim() == 4 and ta.shape[2] != tb.shape[2] else None
            if n is not None:  # KV buffers of different capacities: compare what both hold
                ta, tb = ta[:, :, : a.cursor], tb[:, :, : b.cursor]
            torch.testing.assert_close(ta, tb, atol=atol, rtol=atol)


def test_bucket_is_the_smallest_that_holds_the_rows():
    assert [bucket_for(n) for n in (1, 2, 3, 5, 8, 9, 33, 64)] == [1, 2, 4, 8, 8, 16, 64, 64]
    assert bucket_for(3, (3, 6)) == 3
    with pytest.raises(ValueError):
        bucket_for(65)
    with pytest.raises(ValueError):
        bucket_for(0)


@pytest.mark.parametrize("model_type", ["superlinear-exp", "nemotron_h"])
def test_padded_steps_equal_each_rows_eager_step(model_type):
    """Three rows of different lengths in bucket 4 (one inert row) for 6 steps: logits and caches."""
    seed = _seed()
    lm = _model(model_type, seed)
    _, states, copies = _prefilled(lm, (5, 61, 140), seed)
    graphs = BatchedGraphs(lm, buckets=(1, 2, 4, 8), capture=False)
    rng = random.Random(seed)
    with torch.inference_mode():
        for _ in range(6):
            tokens = [rng.randrange(lm.config.vocab_size) for _ in states]
            got = graphs.step(states, tokens)
            for b, (copy, token) in enumerate(zip(copies, tokens, strict=True)):
                want = _eager_row(lm, copy, token)
                torch.testing.assert_close(got[b], want, atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(states[b].logits, want, atol=1e-5, rtol=1e-5)
    for state, copy in zip(states, copies, strict=True):
        _assert_same_state(state, copy)
    # Same rows, same buffers (capacity 256 holds them all): recorded once, replayed five times.
    assert graphs.captures == 1


def test_inert_rows_change_nothing_the_unpadded_step_gives(interpreted):
    """The same three rows stepped in bucket 8 (five padded rows) and in a bucket of exactly 3 (to fp32
    rounding: matrix products of 8 and 3 rows round differently)."""
    seed = _seed()
    lm = _model("superlinear-exp", seed)
    _, padded, exact = _prefilled(lm, (9, 33, 200), seed)
    wide, tight = BatchedGraphs(lm, buckets=(8,), capture=False), BatchedGraphs(lm, buckets=(3,), capture=False)
    rng = random.Random(seed)
    with torch.inference_mode():
        for _ in range(3):
            tokens = [rng.randrange(lm.config.vocab_size) for _ in padded]
            torch.testing.assert_close(wide.step(padded, tokens), tight.step(exact, tokens), atol=1e-5, rtol=1e-5)
    for a, b in zip(padded, exact, strict=True):
        _assert_same_state(a, b, atol=1e-5)


def test_new_compositions_and_kv_growth_record_new_graphs_and_the_lru_drops_old_ones():
    seed = _seed()
    lm = _model("superlinear-exp", seed)
    _, states, copies = _prefilled(lm, (250, 20, 30), seed)
    graphs = BatchedGraphs(lm, buckets=(2, 4), max_graphs=2, capture=False)
    rng = random.Random(seed)

    def step(rows):
        tokens = [rng.randrange(lm.config.vocab_size) for _ in rows]
        got = graphs.step([states[i] for i in rows], tokens)
        for b, (i, token) in enumerate(zip(rows, tokens, strict=True)):
            torch.testing.assert_close(got[b], _eager_row(lm, copies[i], token), atol=1e-5, rtol=1e-5)

    with torch.inference_mode():
        step([1, 2])
        step([1, 2])
        assert graphs.captures == 1
        step([0, 1, 2])  # bucket 4, new composition
        assert graphs.captures == 2
        for _ in range(6):  # row 0 passes its capacity of 256 after 6 tokens: its KV grows, a new key
            step([0, 1, 2])
        assert graphs.captures == 3
        step([1, 2])  # the first key was dropped (LRU of 2): recorded again
        assert graphs.captures == 4


def test_torch_model_decode_batch_splits_rows_over_the_largest_bucket():
    seed = _seed()
    lm = _model("superlinear-exp", seed)
    model, states, copies = _prefilled(lm, (3, 7, 12, 50, 90, 100), seed)
    model.batch_graphs = BatchedGraphs(lm, buckets=(1, 2, 4), capture=False)
    tokens = [random.Random(seed).randrange(lm.config.vocab_size) for _ in states]
    model.decode_batch(states, tokens)
    for state, copy, token in zip(states, copies, tokens, strict=True):
        want = _eager_row(lm, copy, token)
        torch.testing.assert_close(state.logits, want, atol=1e-5, rtol=1e-5)
    assert model.batch_graphs.captures == 2  # rows 0-3 in bucket 4, rows 4-5 in bucket 2


INTERPRETED = r"""
import random, sys, torch
sys.path.insert(0, sys.argv[2])
from test_batch_graphs import _eager_row, _model, _prefilled, _assert_same_state
from superlinear.adapters.hybrid.batch_graphs import BatchedGraphs
from superlinear.kernels import mamba as mamba_decode
assert mamba_decode.supported(torch.zeros(1))  # the step takes the batched Triton kernels
seed = int(sys.argv[1])
lm = _model("superlinear-exp", seed)
_, states, copies = _prefilled(lm, (4, 19), seed, max_len=300)
graphs = BatchedGraphs(lm, buckets=(4,), capture=False)
rng = random.Random(seed)
with torch.inference_mode():
    for _ in range(2):
        tokens = [rng.randrange(lm.config.vocab_size) for _ in states]
        got = graphs.step(states, tokens)
        for b, (copy, token) in enumerate(zip(copies, tokens)):
            for layer in lm.layers:
                if layer.kind == "M":
                    layer.mixer.fused_decode = False  # the reference: the PyTorch Mamba step
            want = _eager_row(lm, copy, token)
            for layer in lm.layers:
                if layer.kind == "M":
                    layer.mixer.fused_decode = True
            torch.testing.assert_close(got[b], want, atol=1e-4, rtol=1e-4)
for s, c in zip(states, copies):
    _assert_same_state(s, c, atol=1e-4)
print("ok")
"""


def test_the_batched_mamba_kernels_in_a_padded_step_under_the_interpreter(interpreted):
    interpreted(INTERPRETED, os.path.dirname(__file__))


TRITON_ATTENTION = r"""
import random, sys, torch
sys.path.insert(0, sys.argv[2])
from test_batch_graphs import _eager_row, _model, _prefilled
from superlinear.adapters.hybrid.batch_graphs import BatchedGraphs
from superlinear.kernels.superlinear.attention import api
# CPU tensors take the Triton kernels (interpreted), as CUDA tensors do: decode at a device position
# over each row's whole KV buffer.
api.ACCELERATED_PREFILL["cpu"] = api.ACCELERATED_PREFILL["cuda"]
seed = int(sys.argv[1])
lm = _model("superlinear-exp", seed, dtype=torch.bfloat16)
_, states, copies = _prefilled(lm, (45, 9, 90), seed, max_len=300)
graphs = BatchedGraphs(lm, buckets=(4,), capture=False)
rng = random.Random(seed)
with torch.inference_mode():
    for _ in range(2):
        tokens = [rng.randrange(lm.config.vocab_size) for _ in states]
        got = graphs.step(states, tokens)
        for b, (copy, token) in enumerate(zip(copies, tokens)):
            want = _eager_row(lm, copy, token).float()
            err = float((got[b].float() - want).norm() / want.norm())
            assert err < 3e-2, (b, err)
print("ok")
"""


def test_the_padded_step_with_triton_attention_under_the_interpreter_in_bf16(interpreted):
    interpreted(TRITON_ATTENTION, os.path.dirname(__file__))


def _narrow_bf16(seed):
    cfg = HybridConfig.from_dict(nano_30b_narrow_config())
    return random_model(cfg, device="cuda", dtype=torch.bfloat16, seed=seed)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("rows", [1, 3, 8])
def test_graphed_batched_steps_equal_eager_per_row_decode_on_cuda(rows):
    """Narrow 30B preset in bf16: rows of different lengths (bucket padding for 3), 20 graphed steps; each
    step against every row's own eager step from a copy of its state just before (so bf16 rounding does not
    compound over steps); the KV of the 250-token row grows once (a second capture)."""
    seed = _seed()
    lm = _narrow_bf16(seed)
    lengths = [250, 40, 700, 1000, 5, 130, 333, 64][:rows]
    model, states, _ = _prefilled(lm, lengths, seed, max_len=2048)
    assert model.batch_graphs is not None and model.batch_graphs.capture
    rng = random.Random(seed)
    for _ in range(20):
        tokens = [rng.randrange(lm.config.vocab_size) for _ in states]
        with torch.inference_mode():
            copies = [s.fork() for s in states]
        model.decode_batch(states, tokens)
        for state, copy, token in zip(states, copies, tokens, strict=True):
            want = _eager_row(lm, copy, token)
            err = float((state.logits - want).norm() / want.norm())
            assert err < 5e-2, err  # bf16: batched and one-row products round differently
    assert model.batch_graphs.captures == 2


@pytest.mark.gpu
@needs_cuda
def test_graph_replays_equal_the_same_step_run_eagerly_on_cuda():
    """Five rows in bucket 8, 12 steps: captured replays against the uncaptured step on copies."""
    seed = _seed()
    lm = _narrow_bf16(seed)
    _, graphed, eager = _prefilled(lm, (17, 300, 90, 1200, 2), seed, max_len=2048)
    replays, plain = BatchedGraphs(lm, capture=True), BatchedGraphs(lm, capture=False)
    rng = random.Random(seed)
    with torch.inference_mode():
        for _ in range(12):
            tokens = [rng.randrange(lm.config.vocab_size) for _ in graphed]
            got, want = replays.step(graphed, tokens), plain.step(eager, tokens)
            assert float((got - want).norm() / want.norm()) < 1e-3
    for a, b in zip(graphed, eager, strict=True):
        _assert_same_state(a, b, atol=1e-2)
    assert replays.captures >= 1


@pytest.mark.gpu
@needs_cuda
def test_cuda_graphs_off_runs_the_eager_batched_step(monkeypatch):
    """SUPERLINEAR_CUDA_GRAPHS=0: no recorded graphs; the eager batched step still equals each row's own."""
    monkeypatch.setenv("SUPERLINEAR_CUDA_GRAPHS", "0")
    seed = _seed()
    lm = _narrow_bf16(seed)
    model, states, copies = _prefilled(lm, (30, 300, 5), seed)
    assert model.batch_graphs is None and model.graphs is None
    tokens = [random.Random(seed).randrange(lm.config.vocab_size) for _ in states]
    model.decode_batch(states, tokens)
    for state, copy, token in zip(states, copies, tokens, strict=True):
        want = _eager_row(lm, copy, token)
        assert float((state.logits - want).norm() / want.norm()) < 5e-2


SHARED_TABLES = r"""
import random, sys, torch
sys.path.insert(0, sys.argv[2])
from test_batch_graphs import _eager_row, _model, _prefilled
from superlinear.adapters.hybrid.batch_graphs import BatchedGraphs, rows_batched
from superlinear.kernels.superlinear.attention import api
seed = int(sys.argv[1])
lm = _model("superlinear-exp", seed, dtype=torch.bfloat16)
# A: capacity 256; B: 256, grows to 512 at its second step; C: 300 (the decode's capacity 512).
_, states, copies = _prefilled(lm, (9, 255, 300), seed, max_len=600)
api.ACCELERATED_PREFILL["cpu"] = api.ACCELERATED_PREFILL["cuda"]  # decode through the Triton kernels
assert rows_batched(lm)  # every per-row part reads the shared offset tables
graphs = BatchedGraphs(lm, buckets=(4,), capture=False)
rng = random.Random(seed)
def step(rows):
    tokens = [rng.randrange(lm.config.vocab_size) for _ in rows]
    got = graphs.step([states[i] for i in rows], tokens)
    for b, (i, token) in enumerate(zip(rows, tokens)):
        want = _eager_row(lm, copies[i], token).float()
        err = float((got[b].float() - want).norm() / want.norm())
        assert err < 3e-2, (rows, b, err)
with torch.inference_mode():
    step([0, 1])
    assert graphs.captures == 1
    step([0, 1, 2])  # the largest capacity passes 256: a new key (decode capacity 512)
    assert graphs.captures == 2
    step([1, 2])  # B's KV grows to 512 here, new buffers: same key
    step([2, 0, 1])  # another composition, no padded row: same key
    step([2, 0])
    assert states[1].capacity == 512 and graphs.captures == 2, graphs.captures
print("ok")
"""


def test_shared_offset_tables_serve_new_rows_and_kv_growth_with_one_graph_under_the_interpreter(interpreted):
    """With every per-row part batched, the graph key is (bucket, decode capacity): rows joining and
    leaving and a KV buffer growing (new addresses) replay the same recorded step, which still gives
    every row what its own eager step gives."""
    interpreted(SHARED_TABLES, os.path.dirname(__file__))


EAGER_BATCHED = r"""
import random, sys, torch
sys.path.insert(0, sys.argv[2])
from test_batch_graphs import _eager_row, _model, _prefilled
from superlinear.adapters.hybrid import batch
from superlinear.kernels.superlinear.attention import api
seed = int(sys.argv[1])
lm = _model("superlinear-exp", seed, dtype=torch.bfloat16)
_, states, copies = _prefilled(lm, (1, 40, 255), seed, max_len=600)
api.ACCELERATED_PREFILL["cpu"] = api.ACCELERATED_PREFILL["cuda"]  # the eager rows decode through Triton
calls = []
real = batch.triton_decode_rows
batch.triton_decode_rows = lambda *a, **k: calls.append(len(a[2])) or real(*a, **k)
rng = random.Random(seed)
with torch.inference_mode():
    for _ in range(2):
        tokens = [rng.randrange(lm.config.vocab_size) for _ in states]
        got = batch.decode_step(lm, states, tokens)
        # Each row alone through the same kernels: a bf16 comparison with the prefill kernels' path (lm
        # forward) swings when a last-bit difference flips a token's MoE routing (0.47 seen for one seed).
        want = [batch.decode_step(lm, [copy], [token])[0].float() for copy, token in zip(copies, tokens)]
        for b, row in enumerate(want):
            err = float((got[b].float() - row).norm() / row.norm())
            assert err < 1e-3, (b, err)  # 0.0 in every seed tried
attention_layers = sum(block.kind == "*" for block in lm.layers)
# Each step: one batched decode of all rows per layer, then (the comparison) one per layer for each row alone.
assert calls == ([3] * attention_layers + [1] * (3 * attention_layers)) * 2, calls
print("ok")
"""


def test_the_eager_batched_step_decodes_all_rows_in_one_call_under_the_interpreter(interpreted):
    """`batch.decode_step` on the Triton kernels (bf16): one batched Superlinear decode per attention layer
    for rows at positions 1, 40 and 255 (the last slot of its buffer), each row as its own eager step."""
    interpreted(EAGER_BATCHED, os.path.dirname(__file__))
