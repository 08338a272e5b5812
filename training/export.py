"""Write a training checkpoint out as the package's default model directory.

    python training/export.py CHECKPOINT [--out adapters/default_model] [--dtype bfloat16]

Writes ``config.json`` (the checkpoint's own, else ``train.MODEL_CONFIG``), ``generation_config.json`` and ``model.safetensors``
under the checkpoint's names prefixed with ``backbone.`` (stacked experts, as the loader reads them). The
weights are stored in bf16 by default to keep the package small; the loader casts them to whatever dtype
the server runs in (fp32 on CPU by default). The tokenizer files come from ``tools/build_tokenizer.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from train import ENDOFTEXT_ID, IM_END_ID, model_config  # noqa: E402

from superlinear.adapters.hybrid.loader import param_dtype  # noqa: E402

GENERATION_CONFIG = {
    "eos_token_id": [IM_END_ID, ENDOFTEXT_ID],
    "pad_token_id": ENDOFTEXT_ID,
    # The tiny model's answers are exact strings (names, digits); sampling would only add mistakes.
    "do_sample": False,
    "temperature": 0.0,
}


def export(checkpoint: Path, out: Path, dtype: torch.dtype) -> None:
    state = torch.load(checkpoint / "model.pt", map_location="cpu")
    tensors = {}
    for name, tensor in state.items():
        on_disk = name if name.startswith("lm_head.") else f"backbone.{name}"
        # The tensors the loader holds in fp32 (router, A_log, dt_bias, D, norms) are stored in fp32 too.
        tensors[on_disk] = tensor.to(param_dtype(name, dtype)).contiguous()
    out.mkdir(parents=True, exist_ok=True)
    config = {**model_config(checkpoint), "torch_dtype": str(dtype).removeprefix("torch.")}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2) + "\n")
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=HERE.parent / "adapters" / "default_model")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    args = parser.parse_args(argv)
    export(args.checkpoint, args.out, getattr(torch, args.dtype))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
