"""Build the embedded default model's weights and configuration.

A tiny superlinear-exp hybrid (pattern `M*EM*-`, hidden 128, about 1 M parameters) with deterministic random
weights from a fixed seed, so `spl server start` works with no network and no GPU. It writes
`config.json`, `generation_config.json` and `model.safetensors` into the output directory (by default
`adapters/default_model/`); nothing else. Running it again reproduces the same bytes.

    python tools/build_default_model.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from superlinear.adapters.hybrid.testing import random_weights, write_checkpoint

SEED = 20250101
OUTPUT_FILES = ("config.json", "generation_config.json", "model.safetensors")
# Special ids fixed by the default tokenizer (tools/build_tokenizer.py).
ENDOFTEXT_ID, IM_END_ID = 0, 1

CONFIG = {
    "_name_or_path": "superlinear-tiny-random",
    "architectures": ["NemotronHForCausalLM"],
    "model_type": "superlinear-exp",
    "vocab_size": 1024,
    "hidden_size": 128,
    "hybrid_override_pattern": "M*EM*-",
    "num_hidden_layers": 6,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "attention_bias": False,
    "mamba_num_heads": 4,
    "mamba_head_dim": 32,
    "ssm_state_size": 16,
    "n_groups": 2,
    "conv_kernel": 4,
    "chunk_size": 64,
    "use_conv_bias": True,
    "use_bias": False,
    "mamba_proj_bias": False,
    "mamba_hidden_act": "silu",
    "time_step_limit": [0.0, float("inf")],
    "n_routed_experts": 8,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 128,
    "moe_shared_expert_intermediate_size": 128,
    "routed_scaling_factor": 2.5,
    "norm_topk_prob": True,
    "n_group": 1,
    "topk_group": 1,
    "intermediate_size": 256,
    "mlp_hidden_act": "relu2",
    "mlp_bias": False,
    "layer_norm_epsilon": 1e-5,
    "tie_word_embeddings": False,
    "max_position_embeddings": 131072,
    "pad_token_id": ENDOFTEXT_ID,
    "eos_token_id": IM_END_ID,
    "span_attention_sw_index": 7,
    "span_attention_num_spans": 3,
    "span_attention_backward_factor": 3.0,
    "span_attention_forward_factor": 1.0,
    "span_attention_search_power": 0.5,
    "span_attention_span_power": 0.5,
    "torch_dtype": "float32",
}

GENERATION_CONFIG = {
    "eos_token_id": [IM_END_ID, ENDOFTEXT_ID],
    "pad_token_id": ENDOFTEXT_ID,
    "do_sample": True,
    "temperature": 1.0,
    "top_p": 1.0,
}


def build(out: Path) -> None:
    """Write the three files of the default model into `out`."""
    write_checkpoint(out, CONFIG, random_weights(CONFIG, SEED))
    text = json.dumps(GENERATION_CONFIG, indent=2) + "\n"
    (out / "generation_config.json").write_text(text, encoding="utf-8")
    # safetensors creates its file owner-only; package data must be readable by everyone.
    for name in OUTPUT_FILES:
        (out / name).chmod(0o644)


def main() -> None:
    default_out = Path(__file__).resolve().parent.parent / "adapters" / "default_model"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default_out, help="output directory")
    args = parser.parse_args()
    build(args.out)
    for name in OUTPUT_FILES:
        print(f"{args.out / name}: {(args.out / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
