"""Pick a model family's loader by the `model_type` of a checkpoint's config.json.

Families are registered through the `superlinear_model_families` hook (the built-in hybrid family is one
of them); this module only dispatches, so a plugin's family loads exactly like a built-in one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from superlinear.core.ports.family import LoadedModel, ModelLoader

from .hybrid.config import parse_config_text

__all__ = ["UnknownModelFamily", "read_model_type", "load_model_from_dir"]


class UnknownModelFamily(ValueError):
    """config.json names a `model_type` that no registered family loads, or names none."""


def read_model_type(model_dir: str | Path) -> str:
    """Return the `model_type` in `model_dir`/config.json; raise UnknownModelFamily when it has none."""
    path = Path(model_dir) / "config.json"
    try:
        raw = parse_config_text(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UnknownModelFamily(f"{path} does not exist, so the model family is unknown") from exc
    except json.JSONDecodeError as exc:
        raise UnknownModelFamily(f"{path} is not valid JSON: {exc}") from exc
    model_type = raw.get("model_type") if isinstance(raw, dict) else None
    if not isinstance(model_type, str) or not model_type:
        raise UnknownModelFamily(f"{path} has no 'model_type', so the model family is unknown")
    return model_type


def load_model_from_dir(
    model_dir: str | Path, families: Mapping[str, ModelLoader], **options: Any
) -> LoadedModel:
    """Load the checkpoint in `model_dir` with the loader registered for its `model_type`.

    `families` maps model_type -> loader, as collected from the `superlinear_model_families` hook;
    `options` (device, dtype, chunk_size, name, ...) go to the loader as keywords. Returns the loader's
    `LoadedModel` (model port, tokenizer port, generation defaults). Raises UnknownModelFamily naming the
    type and the known ones when no family matches, TypeError when a loader returns something else.
    """
    model_dir = Path(model_dir)
    model_type = read_model_type(model_dir)
    loader = families.get(model_type)
    if loader is None:
        known = ", ".join(sorted(families)) or "none"
        raise UnknownModelFamily(
            f"model_type {model_type!r} of {model_dir} is not supported (known: {known}); "
            "a plugin can add it "
            "through the superlinear_model_families hook"
        )
    loaded = loader(model_dir, **options)
    if not isinstance(loaded, LoadedModel):
        raise TypeError(
            f"the loader of model_type {model_type!r} returned {type(loaded).__name__}, not a LoadedModel"
        )
    return loaded
