"""Driven-side adapters: the hybrid model family, the tokenizer and chat template, the embedded model."""

from pathlib import Path

from .tokenizer import HFTokenizer
from .torch_model import TorchModel

__all__ = ["HFTokenizer", "TorchModel", "default_model_dir"]


def default_model_dir() -> Path:
    """Return the directory of the embedded default model shipped inside the package."""
    return Path(__file__).resolve().parent / "default_model"
