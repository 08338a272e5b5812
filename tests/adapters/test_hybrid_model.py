"""The tiny hybrid model: chunked prefill, decode, Superlinear vs dense, parity with transformers."""

from __future__ import annotations

import pytest
import torch

from superlinear.adapters.hybrid.testing import feed as run
from superlinear.adapters.hybrid.testing import load_checkpoint as load
from superlinear.adapters.hybrid.testing import random_ids as prompt


@pytest.fixture(scope="module")
def dense(dense_dir):
    return load(dense_dir)


@pytest.fixture(scope="module")
def superlinear(superlinear_dir):
    return load(superlinear_dir)


@pytest.mark.parametrize("model_name", ["dense", "superlinear"])
def test_chunked_prefill_gives_the_same_logits_whatever_the_chunk_sizes(model_name, request):
    model = request.getfixturevalue(model_name)
    ids = prompt(70)
    full, _ = run(model, ids)
    for chunks in ([16, 16, 16, 16, 6], [1, 30, 3, 36], [69, 1]):
        chunked, _ = run(model, ids, chunks)
        torch.testing.assert_close(chunked, full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("model_name", ["dense", "superlinear"])
def test_prefill_then_token_by_token_decode_equals_a_full_prefill(model_name, request):
    model = request.getfixturevalue(model_name)
    ids = prompt(48, seed=1)
    full, _ = run(model, ids)
    stepped, _ = run(model, ids, [40] + [1] * 8)
    torch.testing.assert_close(stepped, full, atol=1e-4, rtol=1e-4)


def test_the_last_only_logits_are_the_last_row_and_become_the_state_logits(dense):
    ids = prompt(20, seed=2)
    full, state = run(dense, ids)
    torch.testing.assert_close(state.logits, full[-1])
    assert state.cursor == 20 and torch.isfinite(full).all()


def test_superlinear_with_a_window_over_the_whole_prompt_equals_dense_attention(superlinear_dir, dense):
    # sw_index 15 gives a window of 16**2 - 1 = 255 keys: every query sees its whole prefix, Q1 is moot.
    wide = load(superlinear_dir, span_attention_sw_index=15)
    ids = prompt(90, seed=3)
    torch.testing.assert_close(run(wide, ids)[0], run(dense, ids)[0], atol=1e-4, rtol=1e-4)


def test_superlinear_with_a_short_window_differs_from_dense_attention(superlinear, dense):
    # The tiny config's window is 3 keys, so the sparse model must not silently fall back to dense.
    ids = prompt(60, seed=4)
    assert (run(superlinear, ids)[0] - run(dense, ids)[0]).abs().max() > 1e-2


@pytest.mark.slow
def test_logits_equal_transformers_nemotron_h_on_the_tiny_checkpoint(tmp_path, hybrid_weights, monkeypatch):
    """Parity with transformers' NemotronHForCausalLM, the test-time oracle (needs transformers >= 5)."""
    modeling = pytest.importorskip(
        "transformers.models.nemotron_h.modeling_nemotron_h", reason="transformers has no nemotron_h model"
    )
    from superlinear.adapters.hybrid.testing import tiny_config, write_checkpoint

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # transformers' PyTorch path clamps dt below at time_step_min; the mamba_ssm kernels (and we) clamp only
    # by time_step_limit. time_step_min = 0 makes the two agree.
    raw = tiny_config("nemotron_h", time_step_min=0.0)
    weights = {k: v for k, v in hybrid_weights.items() if "q1_proj" not in k}
    write_checkpoint(tmp_path, raw, weights)
    reference = modeling.NemotronHForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    ids = prompt(50, seed=5)
    with torch.inference_mode():
        expected = reference(ids[None]).logits[0].float()
    ours, _ = run(load(tmp_path), ids, [31, 19])
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)


@torch.inference_mode()
def test_the_moe_equals_a_per_token_loop_over_the_chosen_experts(dense):
    moe = dense.layers[1].mixer
    hidden = torch.randn(1, 33, 64, generator=torch.Generator().manual_seed(6))
    expected = []
    for x in hidden[0]:
        scores = torch.sigmoid(moe.gate.weight @ x)
        chosen = torch.topk(scores + moe.gate.e_score_correction_bias, 2).indices
        weights = scores[chosen] / scores[chosen].sum() * 2.5
        out = moe.shared_experts.down_proj.weight @ torch.relu(moe.shared_experts.up_proj.weight @ x) ** 2
        for e, w in zip(chosen.tolist(), weights, strict=True):
            out = out + w * (moe.experts.down_proj[e] @ torch.relu(moe.experts.up_proj[e] @ x) ** 2)
        expected.append(out)
    torch.testing.assert_close(moe(hidden)[0], torch.stack(expected), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_greedy_decoding_follows_transformers_generate_token_for_token(tmp_path, hybrid_weights, monkeypatch):
    """Prefill then decode against transformers' cached generation: same tokens, same logits each step."""
    modeling = pytest.importorskip(
        "transformers.models.nemotron_h.modeling_nemotron_h", reason="transformers has no nemotron_h model"
    )
    from superlinear.adapters.hybrid.state import HybridState
    from superlinear.adapters.hybrid.testing import tiny_config, write_checkpoint

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # time_step_min = 0 for the same reason as in the logits parity test above.
    write_checkpoint(
        tmp_path,
        tiny_config("nemotron_h", time_step_min=0.0),
        {k: v for k, v in hybrid_weights.items() if "q1_proj" not in k},
    )
    reference = modeling.NemotronHForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    ids, steps = prompt(30, seed=9), 10
    with torch.inference_mode():
        expected = reference.generate(
            ids[None],
            max_new_tokens=steps,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            eos_token_id=None,
            pad_token_id=0,
        )
    model = load(tmp_path)
    state = HybridState.empty(model.config, 64, device="cpu", dtype=torch.float32)
    tokens, logits = [], []
    with torch.inference_mode():
        model(ids[None], state)
        for _ in range(steps):
            logits.append(state.logits.clone())
            tokens.append(int(state.logits.argmax()))
            model(torch.tensor([tokens[-1:]]), state)
    assert tokens == expected.sequences[0, 30:].tolist()
    torch.testing.assert_close(torch.stack(logits), torch.stack(expected.logits)[:, 0], atol=1e-4, rtol=1e-4)
