"""Sampling defaults a model directory declares in `generation_config.json`, as transformers reads them."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["default_temperature"]


def default_temperature(directory: str | Path) -> float:
    """The temperature to use when a request names none: 0 (greedy) for `do_sample: false`, else the
    file's `temperature`; 1.0 when the file or the fields are absent."""
    path = Path(directory) / "generation_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return 1.0
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object")
    if config.get("do_sample") is False:
        return 0.0
    temperature = config.get("temperature", 1.0)
    if not isinstance(temperature, int | float) or isinstance(temperature, bool) or temperature < 0:
        raise ValueError(f"{path}: temperature must be a non-negative number, got {temperature!r}")
    return float(temperature)
