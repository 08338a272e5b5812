"""Tiny configurations and random checkpoints in the on-disk HF layout, for tests and the default model."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .config import HybridConfig, parse_config_text
from .loader import load_model, param_dtype
from .model import HybridLM
from .state import HybridState

__all__ = [
    "tiny_config",
    "nano_30b_config",
    "nano_30b_narrow_config",
    "random_model",
    "random_weights",
    "write_checkpoint",
    "write_random_checkpoint",
    "load_checkpoint",
    "feed",
    "random_ids",
]


# The tiny test model of MODELS.md; no 2-D weight is square, so a swapped mapping cannot load silently.
_TINY: dict[str, Any] = {
    "architectures": ["NemotronHForCausalLM"],
    "vocab_size": 512,
    "hidden_size": 64,
    "hybrid_override_pattern": "MEM*E-M*E",
    "num_hidden_layers": 9,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "mamba_num_heads": 8,
    "mamba_head_dim": 16,
    "ssm_state_size": 16,
    "n_groups": 2,
    "conv_kernel": 4,
    "chunk_size": 16,
    "n_routed_experts": 8,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 32,
    "moe_shared_expert_intermediate_size": 48,
    "intermediate_size": 96,
    "routed_scaling_factor": 2.5,
    "norm_topk_prob": True,
    "layer_norm_epsilon": 1e-5,
    "use_conv_bias": True,
    "use_bias": False,
    "mamba_proj_bias": False,
    "time_step_limit": [0.0, math.inf],
    "eos_token_id": 1,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
}


def tiny_config(model_type: str = "superlinear-exp", **overrides: Any) -> dict[str, Any]:
    """Return the ~1.4 MB test configuration of MODELS.md as an HF config dict (no square 2-D weight)."""
    raw = {"model_type": model_type, **copy.deepcopy(_TINY)}
    if model_type == "superlinear-exp":
        raw.update(
            span_attention_sw_index=1,
            span_attention_num_spans=2,
            span_attention_backward_factor=3.0,
            span_attention_forward_factor=1.0,
            span_attention_search_power=0.5,
            span_attention_span_power=0.5,
        )
    raw.update(overrides)
    return raw


# NVIDIA-Nemotron-3-Nano-30B-A3B shapes (MODELS.md); 52 layers: 23 Mamba, 23 MoE, 6 attention.
_NANO_30B: dict[str, Any] = {
    "vocab_size": 131072,
    "hidden_size": 2688,
    "hybrid_override_pattern": "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME",
    "num_hidden_layers": 52,
    "num_attention_heads": 32,
    "num_key_value_heads": 2,
    "head_dim": 128,
    "mamba_num_heads": 64,
    "mamba_head_dim": 64,
    "ssm_state_size": 128,
    "n_groups": 8,
    "conv_kernel": 4,
    "chunk_size": 128,
    "n_routed_experts": 128,
    "num_experts_per_tok": 6,
    "moe_intermediate_size": 1856,
    "moe_shared_expert_intermediate_size": 3712,
    "intermediate_size": 1856,
    "routed_scaling_factor": 2.5,
    "norm_topk_prob": True,
    "layer_norm_epsilon": 1e-5,
    "use_conv_bias": True,
    "time_step_limit": [0.0, math.inf],
    "max_position_embeddings": 262144,
    "tie_word_embeddings": False,
}
# superlinear-exp-v0.1's recommended attention settings (model card): window 2032.
_SUPERLINEAR_EXP = {
    "span_attention_sw_index": 65,
    "span_attention_num_spans": 3,
    "span_attention_backward_factor": 3.0,
    "span_attention_forward_factor": 1.0,
    "span_attention_search_power": 0.55,
    "span_attention_span_power": 0.55,
}


def nano_30b_config(model_type: str = "superlinear-exp", **overrides: Any) -> dict[str, Any]:
    """Return the full-size Nemotron-3-Nano-30B-A3B shape as an HF config dict (superlinear-exp settings)."""
    raw = {"model_type": model_type, **copy.deepcopy(_NANO_30B)}
    if model_type == "superlinear-exp":
        raw.update(_SUPERLINEAR_EXP)
    raw.update(overrides)
    return raw


# The full pattern and attention settings at small widths: the nano30b code path, cheap enough for a CPU.
NARROW_WIDTHS = {
    "vocab_size": 1024,
    "hidden_size": 96,
    "num_attention_heads": 4,
    "head_dim": 32,
    "mamba_num_heads": 8,
    "mamba_head_dim": 16,
    "ssm_state_size": 16,
    "n_groups": 2,
    "n_routed_experts": 16,
    "moe_intermediate_size": 48,
    "moe_shared_expert_intermediate_size": 64,
}


def nano_30b_narrow_config(model_type: str = "superlinear-exp", **overrides: Any) -> dict[str, Any]:
    """The nano30b layer pattern and attention settings at the small widths of `NARROW_WIDTHS`."""
    return nano_30b_config(model_type, **{**NARROW_WIDTHS, **overrides})


def random_model(
    cfg: HybridConfig, *, device: torch.device | str, dtype: torch.dtype = torch.bfloat16, seed: int = 0
) -> HybridLM:
    """Build the model for `cfg` with random weights created directly on `device` (no checkpoint).

    Weights follow `random_weights`' distributions and the loader's dtype policy (router, A_log, dt_bias,
    D and norms in fp32), and each tensor is drawn in place, so peak memory is the model itself.
    """
    with torch.device("meta"):
        model = HybridLM(cfg)
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    tensors = {
        name: _random_param(name, tuple(p.shape), gen, device, param_dtype(name, dtype))
        for name, p in model.named_parameters()
    }
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def _random_param(
    name: str, shape: tuple[int, ...], gen: torch.Generator, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """One parameter of `random_model`, chosen by its name's suffix."""

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(shape, generator=gen, device=device, dtype=torch.float32) * (high - low) + low

    def normal(std: float) -> torch.Tensor:
        return torch.randn(shape, generator=gen, device=device, dtype=dtype).mul_(std)

    if name.endswith("A_log"):
        return uniform(1.0, 16.0).log_().to(dtype)
    if name.endswith("dt_bias"):
        dt = uniform(math.log(0.01), math.log(0.3)).exp_()
        # Inverse softplus, so softplus(dt_bias) = dt.
        return (dt + torch.log(-torch.expm1(-dt))).to(dtype)
    if name.endswith((".D", "norm.weight", "norm_f.weight")):
        return uniform(0.5, 1.5).to(dtype)
    if name.endswith("e_score_correction_bias"):
        return uniform(-0.1, 0.1).to(dtype)
    if name.endswith("embeddings.weight"):
        return normal(1.0)
    if name.endswith("conv1d.weight"):
        return normal(shape[-1] ** -0.5)
    if name.endswith("conv1d.bias"):
        return normal(0.1)
    if name.endswith(".bias"):
        return torch.zeros(shape, device=device, dtype=dtype)
    # Linear weights, stacked experts included: fan-in scaling keeps activations of order one.
    return normal(shape[-1] ** -0.5)


def random_weights(
    config: Mapping[str, Any], seed: int, *, q1_name: str = "q1_proj"
) -> dict[str, torch.Tensor]:
    """Deterministic random fp32 weights under on-disk names (`backbone.*`, one tensor per expert).

    Norm weights and router correction biases are random, not constant, so a mapping mistake shows up;
    A_log and dt_bias sit in the usual ranges so outputs stay finite.
    """
    cfg = HybridConfig.from_dict(config)
    gen = torch.Generator().manual_seed(seed)
    out = {
        "backbone.embeddings.weight": _normal(gen, (cfg.vocab_size, cfg.hidden_size), 1.0),
        "backbone.norm_f.weight": _uniform(gen, (cfg.hidden_size,), 0.5, 1.5),
        "lm_head.weight": _linear(gen, cfg.vocab_size, cfg.hidden_size),
    }
    for i, kind in enumerate(cfg.layer_kinds):
        prefix = f"backbone.layers.{i}."
        out[prefix + "norm.weight"] = _uniform(gen, (cfg.hidden_size,), 0.5, 1.5)
        mixer = _MIXERS[kind](cfg, gen, q1_name)
        out.update({prefix + "mixer." + name: t for name, t in mixer.items()})
    return out


def write_checkpoint(
    directory: str | Path, config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], *, shards: int = 1
) -> Path:
    """Write `config.json` and the tensors as `model.safetensors`, or as `shards` files plus an index."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    names = sorted(tensors)
    if shards <= 1:
        save_file({n: tensors[n].contiguous() for n in names}, str(directory / "model.safetensors"))
        return directory
    weight_map: dict[str, str] = {}
    per_shard = math.ceil(len(names) / shards)
    for s in range(shards):
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = names[s * per_shard : (s + 1) * per_shard]
        save_file({n: tensors[n].contiguous() for n in part}, str(directory / file))
        weight_map.update(dict.fromkeys(part, file))
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())}}
    index["weight_map"] = weight_map
    (directory / "model.safetensors.index.json").write_text(
        json.dumps(index, indent=2) + "\n", encoding="utf-8"
    )
    return directory


def write_random_checkpoint(
    directory: str | Path, config: Mapping[str, Any], seed: int, *, shards: int = 1, q1_name: str = "q1_proj"
) -> Path:
    """Write a complete random checkpoint for `config` into `directory`; return the directory."""
    return write_checkpoint(directory, config, random_weights(config, seed, q1_name=q1_name), shards=shards)


def load_checkpoint(directory: str | Path, **overrides: Any) -> HybridLM:
    """Load a checkpoint in fp32 on CPU, with `overrides` applied on top of its config.json."""
    raw = parse_config_text((Path(directory) / "config.json").read_text(encoding="utf-8"))
    raw.update(overrides)
    model, _ = load_model(directory, HybridConfig.from_dict(raw))
    return model


def feed(
    model: HybridLM,
    ids: torch.Tensor,
    chunks: Sequence[int] | None = None,
    state: HybridState | None = None,
) -> tuple[torch.Tensor, HybridState]:
    """Run `ids` [L] through `model` in pieces of the given sizes; return (logits [L, V], state)."""
    state = state or HybridState.empty(model.config, 100_000, device=model.device, dtype=model.dtype)
    sizes = list(chunks) if chunks else [ids.numel()]
    if sum(sizes) != ids.numel():
        raise ValueError(f"chunk sizes {sizes} don't add up to {ids.numel()} tokens")
    outs, start = [], 0
    with torch.inference_mode():
        for size in sizes:
            outs.append(model(ids[None, start : start + size], state, last_only=False))
            start += size
    return torch.cat(outs), state


def random_ids(length: int, seed: int = 0, vocab: int = 512) -> torch.Tensor:
    """Deterministic random token ids [length]."""
    return torch.randint(0, vocab, (length,), generator=torch.Generator().manual_seed(seed))


def _normal(gen: torch.Generator, shape: tuple[int, ...], std: float) -> torch.Tensor:
    return torch.randn(shape, generator=gen) * std


def _uniform(gen: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
    return torch.rand(shape, generator=gen) * (high - low) + low


def _linear(gen: torch.Generator, out_features: int, in_features: int) -> torch.Tensor:
    return _normal(gen, (out_features, in_features), in_features**-0.5)


def _mamba(cfg: HybridConfig, gen: torch.Generator, _q1: str) -> dict[str, torch.Tensor]:
    heads = cfg.mamba_num_heads
    dt = torch.exp(_uniform(gen, (heads,), math.log(0.01), math.log(0.3)))
    weights = {
        "in_proj.weight": _linear(gen, cfg.mamba_inner + cfg.conv_dim + heads, cfg.hidden_size),
        "conv1d.weight": _normal(gen, (cfg.conv_dim, 1, cfg.conv_kernel), cfg.conv_kernel**-0.5),
        "A_log": torch.log(_uniform(gen, (heads,), 1.0, 16.0)),
        "D": _uniform(gen, (heads,), 0.5, 1.5),
        # Inverse softplus, so softplus(dt_bias) = dt.
        "dt_bias": dt + torch.log(-torch.expm1(-dt)),
        "norm.weight": _uniform(gen, (cfg.mamba_inner,), 0.5, 1.5),
        "out_proj.weight": _linear(gen, cfg.hidden_size, cfg.mamba_inner),
    }
    if cfg.use_conv_bias:
        weights["conv1d.bias"] = _normal(gen, (cfg.conv_dim,), 0.1)
    return weights


def _attention(cfg: HybridConfig, gen: torch.Generator, q1_name: str) -> dict[str, torch.Tensor]:
    q_size, kv_size = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim
    weights = {
        "q_proj.weight": _linear(gen, q_size, cfg.hidden_size),
        "k_proj.weight": _linear(gen, kv_size, cfg.hidden_size),
        "v_proj.weight": _linear(gen, kv_size, cfg.hidden_size),
        "o_proj.weight": _linear(gen, cfg.hidden_size, q_size),
    }
    if cfg.is_superlinear:
        weights[f"{q1_name}.weight"] = _linear(gen, q_size, cfg.hidden_size)
    return weights


def _moe(cfg: HybridConfig, gen: torch.Generator, _q1: str) -> dict[str, torch.Tensor]:
    weights = {
        "gate.weight": _linear(gen, cfg.n_routed_experts, cfg.hidden_size),
        "gate.e_score_correction_bias": _uniform(gen, (cfg.n_routed_experts,), -0.1, 0.1),
    }
    for e in range(cfg.n_routed_experts):
        weights[f"experts.{e}.up_proj.weight"] = _linear(gen, cfg.moe_intermediate_size, cfg.hidden_size)
        weights[f"experts.{e}.down_proj.weight"] = _linear(gen, cfg.hidden_size, cfg.moe_intermediate_size)
    shared = cfg.moe_shared_expert_intermediate_size
    weights["shared_experts.up_proj.weight"] = _linear(gen, shared, cfg.hidden_size)
    weights["shared_experts.down_proj.weight"] = _linear(gen, cfg.hidden_size, shared)
    return weights


def _mlp(cfg: HybridConfig, gen: torch.Generator, _q1: str) -> dict[str, torch.Tensor]:
    return {
        "up_proj.weight": _linear(gen, cfg.intermediate_size, cfg.hidden_size),
        "down_proj.weight": _linear(gen, cfg.hidden_size, cfg.intermediate_size),
    }


_MIXERS = {"M": _mamba, "*": _attention, "E": _moe, "-": _mlp}
