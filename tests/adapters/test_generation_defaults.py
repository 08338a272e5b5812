"""Sampling defaults from a model directory's generation_config.json."""

import json

import pytest

from superlinear.adapters import default_model_dir, default_temperature


def _dir(tmp_path, config):
    (tmp_path / "generation_config.json").write_text(json.dumps(config))
    return tmp_path


def test_do_sample_false_means_greedy(tmp_path):
    assert default_temperature(_dir(tmp_path, {"do_sample": False, "temperature": 0.7})) == 0.0


def test_the_declared_temperature_is_used_when_sampling(tmp_path):
    assert default_temperature(_dir(tmp_path, {"do_sample": True, "temperature": 0.6})) == 0.6


def test_without_the_file_or_the_field_the_default_is_one(tmp_path):
    assert default_temperature(tmp_path) == 1.0
    assert default_temperature(_dir(tmp_path, {"eos_token_id": 1})) == 1.0


@pytest.mark.parametrize("bad", [-1, "hot", True, None])
def test_a_bad_temperature_is_an_error_naming_the_file(tmp_path, bad):
    with pytest.raises(ValueError, match="generation_config.json"):
        default_temperature(_dir(tmp_path, {"temperature": bad}))


def test_the_shipped_default_model_decodes_greedily():
    assert default_temperature(default_model_dir()) == 0.0
