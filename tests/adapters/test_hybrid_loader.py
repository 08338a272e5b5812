"""Loading checkpoints: name rules, shards, stacked experts, and clear errors for every mismatch."""

from __future__ import annotations

import logging

import pytest
import torch

from superlinear.adapters.hybrid.config import HybridConfig
from superlinear.adapters.hybrid.loader import CheckpointError, load_model
from superlinear.adapters.hybrid.testing import (
    feed,
    load_checkpoint,
    random_ids,
    tiny_config,
    write_checkpoint,
)


def write(tmp_path, weights, model_type="superlinear-exp", shards=1):
    return write_checkpoint(tmp_path, tiny_config(model_type), weights, shards=shards)


def load_error(directory, model_type="superlinear-exp", **kwargs) -> str:
    with pytest.raises(CheckpointError) as err:
        load_model(directory, HybridConfig.from_dict(tiny_config(model_type)), **kwargs)
    return str(err.value)


@pytest.fixture(scope="module")
def reference_logits(superlinear_dir):
    return feed(load_checkpoint(superlinear_dir), random_ids(24, seed=20))[0]


def test_a_missing_tensor_is_named(tmp_path, hybrid_weights):
    weights = {k: v for k, v in hybrid_weights.items() if k != "backbone.layers.2.mixer.A_log"}
    assert "missing tensor 'layers.2.mixer.A_log' (shape (8,))" in load_error(write(tmp_path, weights))


def test_an_unexpected_tensor_is_named(tmp_path, hybrid_weights):
    weights = {**hybrid_weights, "backbone.layers.0.mixer.extra.weight": torch.zeros(3, 4)}
    assert "unexpected tensor 'backbone.layers.0.mixer.extra.weight' (shape (3, 4))" in load_error(
        write(tmp_path, weights)
    )


def test_a_wrong_shape_is_named_with_both_shapes(tmp_path, hybrid_weights):
    weights = dict(hybrid_weights)
    weights["backbone.layers.5.mixer.up_proj.weight"] = weights["backbone.layers.5.mixer.up_proj.weight"].T
    message = load_error(write(tmp_path, weights))
    assert "'backbone.layers.5.mixer.up_proj.weight' has shape (64, 96), expected (96, 64)" in message


def test_a_missing_expert_is_named(tmp_path, hybrid_weights):
    weights = {
        k: v for k, v in hybrid_weights.items() if k != "backbone.layers.4.mixer.experts.3.down_proj.weight"
    }
    assert "experts [3] missing for 'layers.4.mixer.experts.down_proj'" in load_error(
        write(tmp_path, weights)
    )


def test_an_unknown_model_type_is_refused_before_loading(tmp_path, hybrid_weights):
    directory = write_checkpoint(tmp_path, tiny_config("mamba2"), hybrid_weights)
    with pytest.raises(ValueError, match="unsupported model_type 'mamba2'"):
        load_checkpoint(directory)


def test_two_search_query_candidates_are_ambiguous(tmp_path, hybrid_weights):
    q1 = hybrid_weights["backbone.layers.3.mixer.q1_proj.weight"]
    weights = {**hybrid_weights, "backbone.layers.3.mixer.q_search_proj.weight": q1.clone()}
    message = load_error(write(tmp_path, weights))
    assert "ambiguous search-query (Q1) weight in layer 3" in message and "q_search_proj" in message


def test_a_missing_search_query_names_the_aliases_and_hints_at_a_tensor_of_the_right_shape(
    tmp_path, hybrid_weights
):
    weights = {k.replace("q1_proj", "q_route_proj"): v for k, v in hybrid_weights.items()}
    message = load_error(write(tmp_path, weights))
    assert "no search-query (Q1) weight for layer 3" in message
    assert "q1_proj,q_search_proj" in message and "backbone.layers.3.mixer.q_route_proj.weight" in message
    model, report = load_model(tmp_path, HybridConfig.from_dict(tiny_config()), q1_aliases=("q_route_proj",))
    assert report.q1_sources == {
        3: "backbone.layers.3.mixer.q_route_proj.weight",
        7: "backbone.layers.7.mixer.q_route_proj.weight",
    }


def test_a_search_query_alias_in_a_dense_model_is_unexpected(tmp_path, hybrid_weights):
    message = load_error(write(tmp_path, hybrid_weights, "nemotron_h"), "nemotron_h")
    assert "unexpected tensor 'backbone.layers.3.mixer.q1_proj.weight'" in message


def test_a_search_query_alias_is_resolved_by_name_and_reported(
    tmp_path, hybrid_weights, reference_logits, caplog
):
    weights = {k.replace("q1_proj", "search_q_proj"): v for k, v in hybrid_weights.items()}
    with caplog.at_level(logging.INFO, logger="superlinear.adapters.hybrid.loader"):
        model = load_checkpoint(write(tmp_path, weights))
    assert "search_q_proj" in caplog.text and "tensors mapped" in caplog.text
    torch.testing.assert_close(feed(model, random_ids(24, seed=20))[0], reference_logits, atol=0, rtol=0)


def test_a_two_shard_checkpoint_loads_the_same_model(tmp_path, hybrid_weights, reference_logits):
    directory = write(tmp_path, hybrid_weights, shards=2)
    assert len(list(directory.glob("model-*.safetensors"))) == 2
    assert not (directory / "model.safetensors").exists()
    logits = feed(load_checkpoint(directory), random_ids(24, seed=20))[0]
    torch.testing.assert_close(logits, reference_logits, atol=0, rtol=0)


def test_model_prefix_stacked_experts_and_mtp_tensors_load_the_same_model(
    tmp_path, hybrid_weights, reference_logits
):
    weights = {
        "model." + k.removeprefix("backbone."): v for k, v in hybrid_weights.items() if ".experts." not in k
    }
    for layer in (1, 4, 8):
        for proj in ("up_proj", "down_proj"):
            stacked = [
                hybrid_weights[f"backbone.layers.{layer}.mixer.experts.{e}.{proj}.weight"] for e in range(8)
            ]
            weights[f"model.layers.{layer}.mixer.experts.{proj}"] = torch.stack(stacked)
    weights["mtp.layers.0.mixer.q_proj.weight"] = torch.zeros(5, 5)
    model, report = load_model(write(tmp_path, weights), HybridConfig.from_dict(tiny_config()))
    assert report.ignored == 1
    torch.testing.assert_close(feed(model, random_ids(24, seed=20))[0], reference_logits, atol=0, rtol=0)


def test_bfloat16_loading_keeps_precision_critical_tensors_in_fp32(superlinear_dir):
    model, report = load_model(superlinear_dir, HybridConfig.from_dict(tiny_config()), dtype=torch.bfloat16)
    mamba, moe = model.layers[0].mixer, model.layers[1].mixer
    assert mamba.in_proj.weight.dtype == torch.bfloat16 and moe.experts.up_proj.dtype == torch.bfloat16
    for tensor in (
        mamba.A_log,
        mamba.D,
        mamba.dt_bias,
        mamba.norm.weight,
        moe.gate.weight,
        model.norm_f.weight,
    ):
        assert tensor.dtype == torch.float32
    assert report.dtypes["bfloat16"] > 0 and report.dtypes["float32"] > 0
    assert torch.isfinite(feed(model, random_ids(10))[0]).all()


def test_a_directory_without_weights_is_an_error(tmp_path):
    write_checkpoint(tmp_path, tiny_config(), {})
    (tmp_path / "model.safetensors").unlink()
    assert "no model.safetensors or model.safetensors.index.json" in load_error(tmp_path)
