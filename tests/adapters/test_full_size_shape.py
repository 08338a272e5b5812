"""The full-size shape: its config matches MODELS.md, random models build on a device, the script runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from superlinear.adapters.hybrid.config import HybridConfig
from superlinear.adapters.hybrid.model import HybridLM
from superlinear.adapters.hybrid.testing import feed, nano_30b_config, random_ids, random_model, tiny_config

ROOT = Path(__file__).resolve().parents[2]


def test_the_nano_30b_config_has_the_published_shape():
    cfg = HybridConfig.from_dict(nano_30b_config())
    kinds = cfg.layer_kinds
    assert (len(kinds), kinds.count("M"), kinds.count("E"), kinds.count("*")) == (52, 23, 23, 6)
    assert cfg.superlinear.window == 2032 and cfg.superlinear.num_spans == 3
    with torch.device("meta"):
        params = sum(p.numel() for p in HybridLM(cfg).parameters())
    assert round(params / 1e9, 1) == 31.6


def test_a_random_model_keeps_the_loader_dtypes_and_is_reproducible():
    cfg = HybridConfig.from_dict(tiny_config())
    model = random_model(cfg, device="cpu", dtype=torch.bfloat16, seed=3)
    mamba, moe = model.layers[0].mixer, model.layers[1].mixer
    assert mamba.in_proj.weight.dtype == moe.experts.up_proj.dtype == torch.bfloat16
    assert (
        mamba.A_log.dtype
        == mamba.dt_bias.dtype
        == moe.gate.weight.dtype
        == model.norm_f.weight.dtype
        == torch.float32
    )
    assert float(moe.gate.e_score_correction_bias.abs().max()) > 0 and float(mamba.norm.weight.std()) > 0.1
    ids = random_ids(20)
    logits, _ = feed(model, ids)
    assert torch.isfinite(logits).all() and logits.std() > 0.1
    again, _ = feed(random_model(cfg, device="cpu", dtype=torch.bfloat16, seed=3), ids)
    other, _ = feed(random_model(cfg, device="cpu", dtype=torch.bfloat16, seed=4), ids)
    assert torch.equal(logits, again) and not torch.equal(logits, other)


def test_the_benchmark_script_runs_its_code_path_at_tiny_size(tmp_path):
    out = tmp_path / "result.json"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "full_size_shape.py"),
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--context",
        "40",
        "--chunk",
        "16",
        "--decode",
        "3",
        "--out",
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=240)
    record = json.loads(out.read_text())
    assert record["prefill_tokens"] == 40 and [c["tokens"] for c in record["prefill_chunks"]] == [16, 16, 8]
    assert record["decode_tokens"] == 3 and record["logits_finite"] and "error" not in record
