"""Parsing HF config.json into HybridConfig: both model types, both layer-pattern forms, clear errors."""

from __future__ import annotations

import json
import math

import pytest

from superlinear.adapters.hybrid.config import HybridConfig, parse_config_text
from superlinear.adapters.hybrid.testing import tiny_config


def test_the_tiny_superlinear_config_parses_with_its_kernel_parameters():
    cfg = HybridConfig.from_dict(tiny_config("superlinear-exp"))
    assert cfg.layer_kinds == tuple("MEM*E-M*E")
    assert cfg.mamba_inner == 128 and cfg.conv_dim == 128 + 2 * 2 * 16
    p = cfg.superlinear
    assert (p.sw_index, p.num_spans, p.backward_factor, p.forward_factor) == (1, 2, 3.0, 1.0)
    # search power 0.5 is read as the exact integer form n = 2.
    assert (p.search_power, p.inv_search_power_int, p.span_power) == (None, 2, 0.5)


def test_a_nemotron_h_config_has_dense_attention():
    assert HybridConfig.from_dict(tiny_config("nemotron_h")).superlinear is None


def test_a_non_integer_inverse_search_power_is_kept_as_a_float():
    cfg = HybridConfig.from_dict(tiny_config(span_attention_search_power=0.55))
    assert cfg.superlinear.search_power == 0.55 and cfg.superlinear.inv_search_power_int is None


def test_layers_block_type_with_legacy_names_gives_the_same_pattern():
    raw = tiny_config()
    del raw["hybrid_override_pattern"]
    raw["layers_block_type"] = [
        "mamba",
        "moe",
        "linear_attention",
        "attention",
        "moe",
        "mlp",
        "mamba",
        "full_attention",
        "moe",
    ]
    assert HybridConfig.from_dict(raw).layer_kinds == tuple("MEM*E-M*E")


def test_bare_and_tagged_infinity_are_both_accepted():
    raw = tiny_config()
    bare = json.dumps(raw)
    assert "Infinity" in bare
    tagged = bare.replace("Infinity", '{"__float__": "Infinity"}')
    for text in (bare, tagged):
        parsed = parse_config_text(text)
        assert math.isinf(parsed["time_step_limit"][1])
        # (0, inf) is the inert limit: no clamp.
        assert HybridConfig.from_dict(parsed).time_step_limit is None


def test_a_finite_time_step_limit_is_kept():
    cfg = HybridConfig.from_dict(tiny_config(time_step_limit=[0.001, 0.5]))
    assert cfg.time_step_limit == (0.001, 0.5)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model_type": "llama"}, "unsupported model_type 'llama'"),
        ({"hybrid_override_pattern": "MEM*E-M*X"}, "unknown layer kinds ['X']"),
        ({"num_hidden_layers": 8}, "has 9 layers but num_hidden_layers is 8"),
        ({"hidden_size": 0}, "'hidden_size' must be a positive integer"),
        ({"num_key_value_heads": 3}, "multiple of num_key_value_heads"),
        ({"span_attention_num_spans": 0}, "span_attention_num_spans' must be an integer >= 1"),
        ({"span_attention_sw_index": None}, "span_attention_sw_index"),
        ({"span_attention_backward_factor": -1}, "span_attention_backward_factor' must be a number"),
        ({"span_attention_search_power": 1.0}, "span_attention_search_power' must be a number in (0.0, 1.0)"),
        ({"span_attention_inv_search_power_int": 7}, "inv_search_power_int' must be an int in 2..6"),
        ({"moe_latent_size": 16}, "moe_latent_size"),
    ],
)
def test_a_bad_config_raises_a_message_naming_the_key(overrides, message):
    raw = tiny_config("superlinear-exp")
    raw.update(overrides)
    with pytest.raises(ValueError) as err:
        HybridConfig.from_dict(raw)
    assert message in str(err.value)


def test_an_unknown_legacy_block_name_is_an_error():
    raw = tiny_config()
    del raw["hybrid_override_pattern"]
    raw["layers_block_type"] = ["mamba"] * 8 + ["conv"]
    with pytest.raises(ValueError, match=r"unknown layer kinds \['conv'\]"):
        HybridConfig.from_dict(raw)
