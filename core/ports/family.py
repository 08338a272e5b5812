"""What a model family loads from a checkpoint directory: the model, its tokenizer, its generation defaults."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .model import ModelPort
from .tokenizer import TokenizerPort

__all__ = ["GenerationDefaults", "LoadedModel", "ModelLoader"]


@attrs.frozen
class GenerationDefaults:
    """What the checkpoint asks for when a request leaves it open (its ``generation_config.json``)."""

    # 0 means greedy (a checkpoint that declares ``do_sample: false``).
    temperature: float = 1.0


@attrs.frozen
class LoadedModel:
    """A loaded checkpoint: the model port, the tokenizer port and the generation defaults."""

    model: ModelPort
    tokenizer: TokenizerPort
    defaults: GenerationDefaults = attrs.field(factory=GenerationDefaults)


# A family's loader: (checkpoint directory, **options such as device, dtype, chunk_size) -> LoadedModel.
ModelLoader = Callable[..., LoadedModel]
