"""What a model directory's `generation_config.json` declares, read as transformers reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from superlinear.core.ports.family import GenerationDefaults

__all__ = ["generation_config", "default_temperature", "eos_token_ids", "generation_defaults"]


def generation_config(directory: str | Path) -> dict[str, Any]:
    """The file's JSON object, or an empty one when the directory has no such file."""
    path = Path(directory) / "generation_config.json"
    if not path.is_file():
        return {}
    config = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return config


def eos_token_ids(directory: str | Path) -> list[int]:
    """The declared end-of-sequence ids (`eos_token_id`: an int or a list); none when absent."""
    eos = generation_config(directory).get("eos_token_id")
    if eos is None:
        return []
    return [int(eos)] if isinstance(eos, int) else [int(i) for i in eos]


def default_temperature(directory: str | Path) -> float:
    """The temperature to use when a request names none: 0 (greedy) for `do_sample: false`, else the
    file's `temperature`; 1.0 when the file or the fields are absent."""
    config = generation_config(directory)
    if config.get("do_sample") is False:
        return 0.0
    temperature = config.get("temperature", 1.0)
    if not isinstance(temperature, int | float) or isinstance(temperature, bool) or temperature < 0:
        path = Path(directory) / "generation_config.json"
        raise ValueError(f"{path}: temperature must be a non-negative number, got {temperature!r}")
    return float(temperature)


def generation_defaults(directory: str | Path) -> GenerationDefaults:
    """The defaults the directory's `generation_config.json` declares (see `default_temperature`)."""
    return GenerationDefaults(temperature=default_temperature(directory))
