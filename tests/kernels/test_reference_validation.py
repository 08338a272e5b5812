"""Bad arguments raise ValueError naming the argument; the expensive checks follow the environment."""

import pytest
import torch

from superlinear.kernels import (
    SuperlinearParams,
    decode_span_attention_staged_gqa,
    fused_prefill_with_swtriton_gqa,
    superlinear_attention,
)
from superlinear.kernels.common.env import asserts_enabled

B, HQ, HKV, L, D = 2, 4, 2, 24, 8


def good_arguments() -> dict:
    q1, q2 = torch.randn(2, B, HQ, L, D).unbind(0)
    k, v = torch.randn(2, B, HKV, L, D).unbind(0)
    return {"Q1": q1, "Q2": q2, "K": k, "V": v, "cache_position": torch.arange(L), "attention_mask": None}


def kv(heads: int = HKV, batch: int = B, dim: int = D) -> dict:
    return {"K": torch.randn(batch, heads, L, dim), "V": torch.randn(batch, heads, L, dim)}


TENSOR_CASES = [
    (lambda a: {"Q1": a["Q1"][0]}, "Q1 must be 4-D"),
    (lambda a: {"Q2": a["Q2"].tolist()}, "Q2 must be a torch.Tensor"),
    (lambda a: {"Q1": a["Q1"][:, :, :-1]}, "Q1 shape"),
    (lambda a: {"Q1": a["Q1"].to(torch.int32)}, "Q1 must be a float tensor"),
    (lambda a: {"V": a["V"][:, :1]}, "V shape"),
    (lambda a: {"K": a["K"].double()}, "K has dtype"),
    (lambda a: kv(batch=1), "K batch size"),
    (lambda a: kv(dim=D + 1), "K head dim"),
    (lambda a: kv(heads=3), "K has 3 KV heads"),
    (lambda a: {"Q1": a["Q1"].to("meta")}, "Q1 is on meta"),
    (lambda a: kv(heads=0), "K has 0 KV heads"),
    (lambda a: {"cache_position": torch.ones(L, dtype=torch.bool)}, "cache_position must hold integers"),
    (lambda a: {"cache_position": torch.arange(L - 1)}, "cache_position has"),
    (lambda a: {"cache_position": torch.arange(L)[None]}, "cache_position must be 1-D"),
    (lambda a: {"cache_position": torch.arange(L).float()}, "cache_position must hold integers"),
    (lambda a: {"cache_position": torch.arange(L) - 1}, "cache_position must be >= 0"),
    (lambda a: {"cache_position": torch.arange(L) + 1}, "cache_position 24 is beyond the keys"),
    (lambda a: {"cache_position": [0] * L}, "cache_position must be a torch.Tensor"),
    (lambda a: {"attention_mask": torch.ones(B, L + 1)}, "attention_mask must have shape"),
    (lambda a: {"attention_mask": torch.ones(L)}, "attention_mask must have shape"),
    (lambda a: {"attention_mask": [1] * L}, "attention_mask must be a torch.Tensor"),
]


@pytest.mark.parametrize("corrupt, match", TENSOR_CASES)
def test_bad_tensors_are_rejected_by_name(corrupt, match, seed_example):
    arguments = good_arguments()
    arguments.update(corrupt(arguments))
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
    ({"backward_factor": "3"}, "backward_factor"),
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
        decode_span_attention_staged_gqa(
            q1[:, :, :1], q2[:, :, :1], k, v, torch.tensor([3]), enable_gqa=False
        )


def test_valid_edge_cases_run(seed_example):
    arguments = good_arguments()
    empty = superlinear_attention(
        **{
            **arguments,
            "Q1": arguments["Q1"][:, :, :0],
            "Q2": arguments["Q2"][:, :, :0],
            "cache_position": torch.arange(0),
        },
        params=seed_example,
    )
    assert empty.shape == (B, HQ, 0, D)
    # Published tuning knobs are accepted; a keyword the published signature lacks is a TypeError.
    out = fused_prefill_with_swtriton_gqa(*arguments.values(), block_k=32, search_block_q=64)
    assert out.shape == (B, HQ, L, D) and torch.isfinite(out).all()
    with pytest.raises(TypeError, match="BLOCK_M"):
        fused_prefill_with_swtriton_gqa(*arguments.values(), BLOCK_M=64)


def test_the_environment_switches_are_read_at_call_time(monkeypatch):
    monkeypatch.delenv("SPAN_ATTENTION_ENABLE_ASSERTS", raising=False)
    assert not asserts_enabled()
    monkeypatch.setenv("SPAN_ATTENTION_ENABLE_ASSERTS", "true")
    assert asserts_enabled()
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


def test_create_validates_and_rejects_unknown_fields():
    fields = {"sw_index": 3, "num_spans": 3, "backward_factor": 3.0, "forward_factor": 1.0}
    assert SuperlinearParams.create(**fields) == SuperlinearParams(**fields)
    with pytest.raises(ValueError, match="num_spans"):
        SuperlinearParams.create(**{**fields, "num_spans": 0})
    with pytest.raises(TypeError, match="window"):
        SuperlinearParams.create(**fields, window=3)


def test_a_valid_value_does_not_vouch_for_an_equal_one_of_another_type():
    # 2.0 == 2 and True == 1, so a validation cache keyed by value alone would accept these.
    fields = {"sw_index": 3, "num_spans": 1, "backward_factor": 3.0, "forward_factor": 1.0}
    SuperlinearParams(**fields, inv_search_power_int=2).validate()
    with pytest.raises(ValueError, match="inv_search_power_int"):
        SuperlinearParams(**fields, inv_search_power_int=2.0).validate()
    with pytest.raises(ValueError, match="num_spans"):
        SuperlinearParams(**{**fields, "num_spans": True}).validate()


def test_from_config_reads_the_prefixed_keys_and_names_the_bad_one():
    raw = {"span_attention_sw_index": 3, "span_attention_num_spans": 2, "span_attention_backward_factor": 3.0}
    raw |= {"span_attention_forward_factor": 1, "span_attention_search_power": 0.5}
    params = SuperlinearParams.from_config(raw)
    assert params == SuperlinearParams(3, 2, 3.0, 1.0, search_power=None, inv_search_power_int=2)
    with pytest.raises(ValueError, match="'span_attention_num_spans' must be an integer"):
        SuperlinearParams.from_config({**raw, "span_attention_num_spans": 0})


def test_the_fingerprint_names_every_field_in_the_format_snapshots_store():
    # Snapshots store this text and refuse a state made under other parameters: the format must not drift.
    params = SuperlinearParams(65, 3, 3.0, 1.0, search_power=0.55, span_power=0.55, inv_search_power_int=None)
    assert params.fingerprint == (
        "superlinear(sw_index=65,num_spans=3,backward=3.0,forward=1.0,search_power=0.55,"
        "inv_search_power_int=None,span_power=0.55)"
    )
    assert SuperlinearParams(65, 4, 3.0, 1.0).fingerprint != SuperlinearParams(65, 3, 3.0, 1.0).fingerprint
