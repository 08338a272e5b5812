"""Bad arguments raise ValueError naming the argument; the expensive checks follow the environment."""

import pytest
import torch

from superlinear.kernels import (
    SuperlinearParams,
    decode_span_attention_staged_gqa,
    fused_prefill_with_swtriton_gqa,
    superlinear_attention,
)
from superlinear.kernels.common.env import asserts_enabled, force_sparse_meta

B, HQ, HKV, L, D = 2, 4, 2, 24, 8


def good_arguments() -> dict:
    q1, q2 = torch.randn(2, B, HQ, L, D).unbind(0)
    k, v = torch.randn(2, B, HKV, L, D).unbind(0)
    return {"Q1": q1, "Q2": q2, "K": k, "V": v, "cache_position": torch.arange(L), "attention_mask": None}


TENSOR_CASES = [
    ("Q1", lambda a: a["Q1"][0], "Q1"),
    ("Q2", lambda a: a["Q2"].tolist(), "Q2"),
    ("Q1", lambda a: a["Q1"][:, :, :-1], "Q1"),
    ("V", lambda a: a["V"][:, :1], "V"),
    ("K", lambda a: torch.randn(1, HKV, L, D), "K batch"),
    ("V", lambda a: torch.randn(B, HKV, L, D + 1), "V shape"),
    ("K", lambda a: torch.randn(B, HKV, L, D + 1), "K"),
    ("K", lambda a: torch.randn(B, 3, L, D), "K has 3 KV heads"),
    ("V", lambda a: torch.randn(B, 3, L, D), "V shape"),
    ("Q1", lambda a: a["Q1"].to(torch.int32), "Q1"),
    ("K", lambda a: a["K"].double(), "K has dtype"),
    ("cache_position", lambda a: torch.arange(L - 1), "cache_position"),
    ("cache_position", lambda a: torch.arange(L)[None], "cache_position"),
    ("cache_position", lambda a: torch.arange(L).float(), "cache_position"),
    ("cache_position", lambda a: torch.arange(L) - 1, "cache_position"),
    ("cache_position", lambda a: torch.arange(L) + 1, "cache_position"),
    ("cache_position", lambda a: [0] * L, "cache_position"),
    ("attention_mask", lambda a: torch.ones(B, L + 1), "attention_mask"),
    ("attention_mask", lambda a: torch.ones(L), "attention_mask"),
]


@pytest.mark.parametrize("name, corrupt, match", TENSOR_CASES)
def test_bad_tensors_are_rejected_by_name(name, corrupt, match, seed_example):
    arguments = good_arguments()
    arguments[name] = corrupt(arguments)
    with pytest.raises(ValueError, match=match):
        superlinear_attention(**arguments, params=seed_example)


def test_a_head_dim_over_256_is_rejected(seed_example):
    q = torch.randn(1, 1, 2, 257)
    with pytest.raises(ValueError, match="Q2 head dim D=257"):
        superlinear_attention(q, q, q, q, torch.arange(2), params=seed_example)


PARAM_CASES = [
    ({"sw_index": -1}, "sw_index"),
    ({"sw_index": 1.5}, "sw_index"),
    ({"num_spans": 0}, "num_spans"),
    ({"num_spans": True}, "num_spans"),
    ({"backward_factor": -1.0}, "backward_factor"),
    ({"backward_factor": float("nan")}, "backward_factor"),
    ({"forward_factor": -0.5}, "forward_factor"),
    ({"search_power": 0.0}, "search_power"),
    ({"search_power": 1.0}, "search_power"),
    ({"search_power": -0.5}, "search_power"),
    ({"search_power": 0.0001}, "search_power"),
    ({"span_power": 1.5}, "span_power"),
    ({"span_power": 0.9999}, "span_power"),
    ({"inv_search_power_int": 1}, "inv_search_power_int"),
    ({"inv_search_power_int": 7}, "inv_search_power_int"),
    ({"inv_search_power_int": 2.0}, "inv_search_power_int"),
    ({"search_power": None, "inv_search_power_int": None}, "search_power or inv_search_power_int"),
]


@pytest.mark.parametrize("change, match", PARAM_CASES)
def test_bad_parameters_are_rejected_by_name(change, match):
    fields = {"sw_index": 3, "num_spans": 3, "backward_factor": 3.0, "forward_factor": 1.0, **change}
    with pytest.raises(ValueError, match=match):
        SuperlinearParams(**fields).validate()
    with pytest.raises(ValueError, match=match):
        fused_prefill_with_swtriton_gqa(*good_arguments().values(), **fields)


def test_other_bad_call_arguments_are_rejected_by_name(seed_example):
    arguments = good_arguments()
    with pytest.raises(ValueError, match="params"):
        superlinear_attention(**arguments, params={"sw_index": 3})
    with pytest.raises(ValueError, match="block_q"):
        superlinear_attention(**arguments, params=seed_example, block_q=0)
    q1, q2, k, v = (arguments[n] for n in ("Q1", "Q2", "K", "V"))
    with pytest.raises(ValueError, match="cache_position"):
        decode_span_attention_staged_gqa(q1[:, :, :2], q2[:, :, :2], k, v, torch.tensor([3, 4]))
    with pytest.raises(ValueError, match="enable_gqa"):
        decode_span_attention_staged_gqa(q1[:, :, :1], q2[:, :, :1], k, v, torch.tensor([3]), enable_gqa=False)


def test_valid_edge_cases_run(seed_example):
    arguments = good_arguments()
    empty = superlinear_attention(**{**arguments, "Q1": arguments["Q1"][:, :, :0], "Q2": arguments["Q2"][:, :, :0],
                                     "cache_position": torch.arange(0)}, params=seed_example)
    assert empty.shape == (B, HQ, 0, D)
    # Unknown keyword arguments of the published kernels are tuning knobs and are ignored.
    out = fused_prefill_with_swtriton_gqa(*arguments.values(), BLOCK_M=64, num_warps=4)
    assert out.shape == (B, HQ, L, D) and torch.isfinite(out).all()


def test_the_environment_switches_are_read_at_call_time(monkeypatch):
    monkeypatch.delenv("SPAN_ATTENTION_ENABLE_ASSERTS", raising=False)
    monkeypatch.delenv("SPAN_ATTENTION_FORCE_SPARSE_META", raising=False)
    assert not asserts_enabled() and not force_sparse_meta()
    monkeypatch.setenv("SPAN_ATTENTION_ENABLE_ASSERTS", "1")
    monkeypatch.setenv("SPAN_ATTENTION_FORCE_SPARSE_META", "true")
    assert asserts_enabled() and force_sparse_meta()
    monkeypatch.setenv("SPAN_ATTENTION_ENABLE_ASSERTS", "0")
    assert not asserts_enabled()


def test_asserts_reject_unordered_positions_that_are_otherwise_allowed(monkeypatch, seed_example):
    arguments = good_arguments()
    arguments["cache_position"] = torch.arange(L).flip(0)
    monkeypatch.delenv("SPAN_ATTENTION_ENABLE_ASSERTS", raising=False)
    superlinear_attention(**arguments, params=seed_example)
    monkeypatch.setenv("SPAN_ATTENTION_ENABLE_ASSERTS", "1")
    with pytest.raises(ValueError, match="cache_position must be strictly increasing"):
        superlinear_attention(**arguments, params=seed_example)


def test_asserts_reject_parameters_that_break_coverage(monkeypatch):
    broken = SuperlinearParams(sw_index=1, num_spans=1, backward_factor=0.0, forward_factor=0.0)
    arguments = good_arguments()
    monkeypatch.delenv("SPAN_ATTENTION_ENABLE_ASSERTS", raising=False)
    superlinear_attention(**arguments, params=broken)
    monkeypatch.setenv("SPAN_ATTENTION_ENABLE_ASSERTS", "1")
    with pytest.raises(ValueError, match="break random context access"):
        superlinear_attention(**arguments, params=broken)


def test_asserts_pass_a_valid_call_unchanged(monkeypatch, released, make_inputs, assert_close):
    Q1, Q2, K, V = make_inputs(1, 2, 1, 2300, 8)
    rows = torch.arange(2200, 2300)
    monkeypatch.delenv("SPAN_ATTENTION_ENABLE_ASSERTS", raising=False)
    plain = superlinear_attention(Q1[:, :, rows], Q2[:, :, rows], K, V, rows, params=released)
    monkeypatch.setenv("SPAN_ATTENTION_ENABLE_ASSERTS", "1")
    checked = superlinear_attention(Q1[:, :, rows], Q2[:, :, rows], K, V, rows, params=released)
    assert_close(checked, plain, max_abs=0.0, rel_rms=0.0)
