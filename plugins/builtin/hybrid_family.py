"""Built-in model family: the Nemotron-H / superlinear-exp hybrid, loaded by `TorchModel.from_dir`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from superlinear.core.ports import LoadedModel

from ..hookspecs import RegisterModelFamily, hookimpl

__all__ = ["HYBRID_MODEL_TYPES", "load_hybrid", "superlinear_model_families"]

# The config.json model_types the hybrid adapter reads (adapters.hybrid.config.MODEL_TYPES; a test keeps
# the two equal). Spelled out here so building a plugin manager does not import torch.
HYBRID_MODEL_TYPES = ("nemotron_h", "superlinear-exp")


def load_hybrid(model_dir: str | Path, tensor_parallel: int = 1, **options: Any) -> LoadedModel:
    """Load a hybrid checkpoint directory: its `TorchModel` (`options` go to `TorchModel.from_dir`), or with
    `tensor_parallel` > 1 the model sharded over that many ranks (`launch_sharded_model`: device, dtype and
    chunk_size only), its `HFTokenizer` and its generation defaults.

    Options: device ("cpu", "cuda", ...), dtype ("float32", "bfloat16", "float16"), chunk_size, name,
    q1_aliases.
    """
    # Imported here so that building a plugin manager does not import torch.
    from superlinear.adapters.generation import generation_defaults
    from superlinear.adapters.tokenizer import HFTokenizer
    from superlinear.adapters.torch_model import TorchModel

    if tensor_parallel > 1:
        from superlinear.adapters.distributed.port import launch_sharded_model

        model = launch_sharded_model(model_dir, tensor_parallel, **options)
    else:
        model = TorchModel.from_dir(model_dir, **options)
    return LoadedModel(model, HFTokenizer.from_dir(model_dir), generation_defaults(model_dir))


@hookimpl
def superlinear_model_families(register: RegisterModelFamily) -> None:
    """Register the hybrid loader under each model_type it reads."""
    for model_type in HYBRID_MODEL_TYPES:
        register(model_type, load_hybrid)
