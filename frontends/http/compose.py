"""The composition root: the one place that wires adapters, storage and plugins into the core."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import attrs

from ...adapters import HFTokenizer, TorchModel, default_model_dir
from ...core import Engine, SessionService
from ...core.ports import RandomIds, SystemClock
from ...plugins.manager import build_plugin_manager, collect
from ...storage import FilesystemSnapshotStore, default_snapshot_root
from .resources import Services

__all__ = ["Settings", "build_services"]

log = logging.getLogger(__name__)


@attrs.frozen
class Settings:
    """Server settings, parsed from flags and environment by the entry point."""

    model: str | None = None
    host: str = "127.0.0.1"
    port: int = 8787
    chunk_size: int = 8192
    dtype: str = "float32"
    device: str = "cpu"
    max_seq_len: int | None = None
    max_tokens: int = 512
    threads: int = 8
    api_key: str | None = None
    snapshot_dir: str | None = None
    load_plugins: bool = True


def _model_dir(spec: str | None) -> Path:
    if spec is None:
        return default_model_dir()
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    raise FileNotFoundError(f"model {spec!r} is not a local directory (hub downloads come with the model adapters)")


def _stop_rule_source(settings: Settings):
    pm = build_plugin_manager(load_entrypoints=settings.load_plugins)
    factories = list(collect(pm, "superlinear_stop_rules").values())

    def rules(request):
        made = (factory(request.sampling) for factory in factories)
        return [rule for rule in made if rule is not None]

    return rules


def build_services(settings: Settings) -> Services:
    """Load the model and tokenizer, open the snapshot store and start the engine thread."""
    path = _model_dir(settings.model)
    log.info("loading model from %s on %s (%s)", path, settings.device, settings.dtype)
    model = TorchModel.from_dir(path, device=settings.device, dtype=settings.dtype, chunk_size=settings.chunk_size)
    tok = HFTokenizer.from_dir(path)
    root = Path(settings.snapshot_dir) if settings.snapshot_dir else default_snapshot_root(dict(os.environ))
    sessions = SessionService(
        model=model,
        tok=tok,
        engine=Engine().start(),
        store=FilesystemSnapshotStore(root),
        clock=SystemClock(),
        ids=RandomIds(),
        stop_rules=_stop_rule_source(settings),
        entropy=lambda: secrets.randbits(63),
        default_max_seq_len=settings.max_seq_len or model.info.max_seq_len,
    )
    log.info("model %s ready; snapshots in %s", model.info.name, root)
    return Services(sessions=sessions, model_name=model.info.name, default_max_tokens=settings.max_tokens)
