"""Random-weights checkpoint directories: refused without SPL_ALLOW_RANDOM_WEIGHTS=1, loaded with it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from superlinear.adapters.hybrid.config import HybridConfig
from superlinear.adapters.hybrid.loader import CheckpointError
from superlinear.adapters.hybrid.random_weights import ALLOW_ENV, MARKER, write_marker
from superlinear.adapters.hybrid.testing import random_model, tiny_config, write_random_checkpoint
from superlinear.adapters.tokenizer import HFTokenizer
from superlinear.adapters.torch_model import DEFAULT_MODEL_DIR, TorchModel

ROOT = Path(__file__).resolve().parents[2]


def _random_dir(path: Path, seed: int = 5) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(tiny_config()), encoding="utf-8")
    write_marker(path, seed)
    return path


def test_a_random_weights_directory_is_refused_without_the_env_var(tmp_path, monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    directory = _random_dir(tmp_path / "m")
    with pytest.raises(CheckpointError, match=ALLOW_ENV):
        TorchModel.from_dir(directory)
    monkeypatch.setenv(ALLOW_ENV, "yes")  # only "1" allows it
    with pytest.raises(CheckpointError, match=ALLOW_ENV):
        TorchModel.from_dir(directory)


def test_with_the_env_var_it_loads_the_seeded_random_model_with_a_random_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv(ALLOW_ENV, "1")
    model = TorchModel.from_dir(_random_dir(tmp_path / "a", seed=5), dtype="bfloat16")
    expected = random_model(HybridConfig.from_dict(tiny_config()), device="cpu", dtype=torch.bfloat16, seed=5)
    got = model.lm.state_dict()
    for name, tensor in expected.state_dict().items():
        assert torch.equal(got[name], tensor), name
        assert got[name].dtype == tensor.dtype, name
    weights = model.info.fingerprint["weights_sha256"]
    assert weights.startswith("random:")
    other = TorchModel.from_dir(_random_dir(tmp_path / "b", seed=6), dtype="bfloat16")
    assert other.info.fingerprint["weights_sha256"] not in (weights, "")
    assert not torch.equal(other.lm.lm_head.weight, model.lm.lm_head.weight)
    real = write_random_checkpoint(tmp_path / "real", tiny_config(), seed=5)
    assert not TorchModel.from_dir(real).info.fingerprint["weights_sha256"].startswith("random:")


def test_a_marker_beside_real_weights_or_a_malformed_marker_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(ALLOW_ENV, "1")
    both = write_random_checkpoint(tmp_path / "both", tiny_config(), seed=1)
    write_marker(both, 1)
    with pytest.raises(CheckpointError, match="both"):
        TorchModel.from_dir(both)
    bad = _random_dir(tmp_path / "bad")
    (bad / MARKER).write_text(json.dumps({"format": "superlinear-random-weights", "seed": "7"}))
    with pytest.raises(CheckpointError, match="not a random-weights marker"):
        TorchModel.from_dir(bad)
    (bad / MARKER).write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a random-weights marker"):
        TorchModel.from_dir(bad)


def _gpu_serve():
    spec = importlib.util.spec_from_file_location("gpu_serve", ROOT / "benchmarks" / "gpu_serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_directory_pads_the_tokenizer_to_the_config_vocab(tmp_path, monkeypatch):
    monkeypatch.setenv(ALLOW_ENV, "1")
    directory = _gpu_serve().write_model_dir(tmp_path / "m", "narrow", seed=2, max_len=5000)
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    padded, default = HFTokenizer.from_dir(directory), HFTokenizer.from_dir(DEFAULT_MODEL_DIR)
    assert padded.vocab_size == config["vocab_size"] == 4096 > default.vocab_size
    text = "The river bends twice; 12 people <|im_end|> read."
    assert padded.encode(text) == default.encode(text)
    assert padded.decode([default.vocab_size, 4095]) == f" <r{default.vocab_size}> <r4095>"
    model = TorchModel.from_dir(directory)
    assert model.info.vocab_size == 4096 and model.info.max_seq_len >= 5000
    assert model.info.fingerprint["weights_sha256"].startswith("random:")
