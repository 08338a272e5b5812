"""Driven-side adapters: hybrid model family, tokenizer and chat template, model sources, embedded model."""

from pathlib import Path

from .families import UnknownModelFamily, load_model_from_dir
from .generation import default_temperature
from .hub import ModelNotCached, ModelSourceError, resolve_model_dir
from .tokenizer import HFTokenizer
from .torch_model import TorchModel

__all__ = [
    "HFTokenizer",
    "TorchModel",
    "default_model_dir",
    "default_temperature",
    "resolve_model_dir",
    "load_model_from_dir",
    "ModelSourceError",
    "ModelNotCached",
    "UnknownModelFamily",
]


def default_model_dir() -> Path:
    """Return the directory of the embedded default model shipped inside the package."""
    return Path(__file__).resolve().parent / "default_model"
