"""The Nemotron-H / superlinear-exp hybrid model family: config, layers, state and checkpoint loading."""

from .config import HybridConfig, parse_config_text, read_config
from .loader import DEFAULT_Q1_ALIASES, CheckpointError, LoadReport, load_model, weights_fingerprint
from .model import HybridLM
from .state import HybridState, StateCheckpoint

__all__ = [
    "HybridConfig",
    "parse_config_text",
    "read_config",
    "HybridLM",
    "HybridState",
    "StateCheckpoint",
    "load_model",
    "LoadReport",
    "CheckpointError",
    "DEFAULT_Q1_ALIASES",
    "weights_fingerprint",
]
