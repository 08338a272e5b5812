"""The hybrid model's configuration, parsed from an HF `config.json` (Nemotron-H or superlinear-exp)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from superlinear.kernels import SuperlinearParams

__all__ = [
    "HybridConfig",
    "MODEL_TYPES",
    "LAYER_KINDS",
    "parse_config_text",
    "read_config",
]

MODEL_TYPES = ("nemotron_h", "superlinear-exp")
# One letter per mixer: Mamba-2, MoE, attention, dense MLP.
LAYER_KINDS = ("M", "E", "*", "-")
_KIND_NAMES = {
    "mamba": "M",
    "linear_attention": "M",
    "moe": "E",
    "attention": "*",
    "full_attention": "*",
    "mlp": "-",
}


@attrs.frozen
class HybridConfig:
    """Every size and switch the hybrid model needs; `superlinear` is None for dense attention."""

    model_type: str
    layer_kinds: tuple[str, ...]
    vocab_size: int
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    mamba_num_heads: int
    mamba_head_dim: int
    ssm_state_size: int
    n_groups: int
    conv_kernel: int
    chunk_size: int
    n_routed_experts: int
    num_experts_per_tok: int
    moe_intermediate_size: int
    moe_shared_expert_intermediate_size: int
    intermediate_size: int
    routed_scaling_factor: float
    norm_topk_prob: bool
    layer_norm_epsilon: float
    time_step_limit: tuple[float, float] | None
    use_conv_bias: bool
    mamba_bias: bool
    attention_bias: bool
    mlp_bias: bool
    eos_token_ids: tuple[int, ...]
    max_position_embeddings: int
    superlinear: SuperlinearParams | None = None

    @property
    def num_layers(self) -> int:
        return len(self.layer_kinds)

    @property
    def mamba_inner(self) -> int:
        """Channels of the Mamba value path, `I = heads * head_dim`."""
        return self.mamba_num_heads * self.mamba_head_dim

    @property
    def conv_dim(self) -> int:
        """Channels through the causal conv: x, B and C."""
        return self.mamba_inner + 2 * self.n_groups * self.ssm_state_size

    @property
    def is_superlinear(self) -> bool:
        return self.superlinear is not None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> HybridConfig:
        """Parse and validate an HF config dict; raise ValueError naming the offending key."""
        model_type = raw.get("model_type")
        if model_type not in MODEL_TYPES:
            raise ValueError(f"unsupported model_type {model_type!r}; expected one of {MODEL_TYPES}")
        _reject_unsupported(raw)
        kinds = _layer_kinds(raw)
        cfg = cls(
            model_type=model_type,
            layer_kinds=kinds,
            **_sizes(raw, kinds),
            time_step_limit=_time_step_limit(raw.get("time_step_limit")),
            use_conv_bias=bool(raw.get("use_conv_bias", True)),
            mamba_bias=bool(raw.get("use_bias", False) or raw.get("mamba_proj_bias", False)),
            attention_bias=bool(raw.get("attention_bias", False)),
            mlp_bias=bool(raw.get("mlp_bias", False)),
            eos_token_ids=_eos_ids(raw.get("eos_token_id")),
            superlinear=SuperlinearParams.from_config(raw) if model_type == "superlinear-exp" else None,
        )
        _check_divisibility(cfg)
        return cfg


def parse_config_text(text: str) -> dict[str, Any]:
    """Parse config JSON that may hold bare `Infinity`/`NaN` or transformers' `{"__float__": ...}` tags."""

    def untag(obj: dict[str, Any]) -> Any:
        if set(obj) == {"__float__"}:
            return float(obj["__float__"])
        return obj

    # Python's json accepts bare Infinity/NaN already; the hook undoes the tagged form.
    return json.loads(text, object_hook=untag)


def read_config(path: str | Path) -> HybridConfig:
    """Read `config.json` from a model directory (or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    return HybridConfig.from_dict(parse_config_text(path.read_text(encoding="utf-8")))


# Size keys grouped by the layer kind that needs them; keys of kinds a model lacks may be absent.
_SIZE_KEYS = {
    "": ("vocab_size", "hidden_size"),
    "*": ("num_attention_heads", "num_key_value_heads", "head_dim"),
    "M": ("mamba_num_heads", "mamba_head_dim", "ssm_state_size", "n_groups", "conv_kernel", "chunk_size"),
    "E": (
        "n_routed_experts",
        "num_experts_per_tok",
        "moe_intermediate_size",
        "moe_shared_expert_intermediate_size",
    ),
    "-": ("intermediate_size",),
}
# Older Nemotron-H configs spell some Mamba keys with a `mamba_` prefix.
_ALIASES = {"n_groups": "mamba_n_groups", "conv_kernel": "mamba_d_conv", "chunk_size": "mamba_chunk_size"}


def _size(raw: Mapping[str, Any], key: str, required: bool) -> int:
    value = raw.get(key, raw.get(_ALIASES.get(key, key)))
    if key == "num_key_value_heads" and value is None:
        value = raw.get("num_attention_heads")
    if key == "head_dim" and value is None and raw.get("num_attention_heads"):
        value = raw.get("hidden_size", 0) // raw["num_attention_heads"]
    if value is None and not required:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"config key {key!r} must be a positive integer, got {value!r}")
    return value


def _sizes(raw: Mapping[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    for kind, keys in _SIZE_KEYS.items():
        for key in keys:
            sizes[key] = _size(raw, key, required=kind == "" or kind in kinds)
    sizes["max_position_embeddings"] = int(raw.get("max_position_embeddings") or 4096)
    sizes["routed_scaling_factor"] = float(raw.get("routed_scaling_factor", 1.0))
    sizes["norm_topk_prob"] = bool(raw.get("norm_topk_prob", True))
    sizes["layer_norm_epsilon"] = float(raw.get("layer_norm_epsilon", 1e-5))
    if sizes["num_experts_per_tok"] > sizes["n_routed_experts"]:
        raise ValueError("config key 'num_experts_per_tok' exceeds 'n_routed_experts'")
    return sizes


def _layer_kinds(raw: Mapping[str, Any]) -> tuple[str, ...]:
    pattern = raw.get("hybrid_override_pattern")
    blocks = raw.get("layers_block_type", raw.get("layer_types"))
    if pattern is not None:
        kinds = tuple(pattern)
        bad = sorted({k for k in kinds if k not in LAYER_KINDS})
        source = "hybrid_override_pattern"
    elif blocks is not None:
        kinds = tuple(_KIND_NAMES.get(name, name) for name in blocks)
        bad = sorted({name for name in blocks if name not in _KIND_NAMES})
        source = "layers_block_type"
    else:
        raise ValueError("config has neither 'hybrid_override_pattern' nor 'layers_block_type'")
    if bad:
        raise ValueError(
            f"{source} has unknown layer kinds {bad}; known: {LAYER_KINDS} / {sorted(_KIND_NAMES)}"
        )
    if not kinds:
        raise ValueError(f"{source} is empty")
    declared = raw.get("num_hidden_layers")
    if declared is not None and declared != len(kinds):
        raise ValueError(f"{source} has {len(kinds)} layers but num_hidden_layers is {declared}")
    return kinds


def _time_step_limit(value: Any) -> tuple[float, float] | None:
    """Return the dt clamp, or None when the config sets none (or the inert (0, inf))."""
    if value is None:
        return None
    low, high = (float(v) for v in value)
    if low < 0 or high <= low:
        raise ValueError(f"config key 'time_step_limit' must be (low >= 0, high > low), got {value!r}")
    if low == 0.0 and math.isinf(high):
        return None
    return (low, high)


def _eos_ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    ids = (value,) if isinstance(value, int) else tuple(value)
    if not all(isinstance(i, int) and i >= 0 for i in ids):
        raise ValueError(f"config key 'eos_token_id' must be ints, got {value!r}")
    return ids


def _reject_unsupported(raw: Mapping[str, Any]) -> None:
    # These variants change the routing or the expert shapes; fail loudly rather than compute a wrong model.
    if raw.get("moe_latent_size") is not None:
        raise ValueError("config key 'moe_latent_size' (latent MoE projections) is not supported")
    if raw.get("n_group", 1) != 1 or raw.get("topk_group", 1) != 1:
        raise ValueError("grouped expert routing ('n_group'/'topk_group' != 1) is not supported")
    if raw.get("tie_word_embeddings", False):
        raise ValueError("config key 'tie_word_embeddings' must be false: the hybrid lm_head is untied")
    act = raw.get("mlp_hidden_act", "relu2")
    if act != "relu2":
        raise ValueError(f"config key 'mlp_hidden_act' must be 'relu2', got {act!r}")


def _check_divisibility(cfg: HybridConfig) -> None:
    if cfg.num_attention_heads % cfg.num_key_value_heads:
        raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
    if cfg.mamba_num_heads % cfg.n_groups:
        raise ValueError("mamba_num_heads must be a multiple of n_groups")
