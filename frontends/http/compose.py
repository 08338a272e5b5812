"""The composition root: the one place that wires adapters, storage and plugins into the core and the app."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs
import falcon
import pluggy

from ...adapters import HFTokenizer, default_model_dir, default_temperature, load_model_from_dir, resolve_model_dir
from ...adapters.grammar import LLGuidanceGrammars
from ...adapters.memory import default_kv_budget
from ...core import ChatRequest, Engine, SessionService
from ...core.ports import RandomIds, StopRule, SystemClock
from ...core.prefix_cache import PrefixCache
from ...plugins import build_plugin_manager, collect
from ...storage import FilesystemSnapshotStore, default_snapshot_root
from .app import AppOptions, create_app
from .body import DEFAULT_MAX_BODY_BYTES
from .limits import Limits
from .services import ServiceHolder, Services
from .toolcalls import split_tool_calls

__all__ = ["Settings", "build_services", "build_app", "stop_rule_source"]

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
    # Bytes of session state the memory manager may keep on the device; None: what fits after the weights.
    kv_budget: int | None = None
    max_prompt_tokens: int | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # States kept for stateless requests that resend a conversation (0: no prefix cache).
    prefix_cache: int = 8

    @property
    def limits(self) -> Limits:
        return Limits(self.max_body_bytes)


StopRules = Callable[[ChatRequest], Sequence[StopRule]]


def stop_rule_source(pm: pluggy.PluginManager) -> StopRules:
    """Return the per-request stop-rule maker over every registered factory (built-in and third-party)."""
    factories = list(collect(pm, "superlinear_stop_rules").values())

    def rules(request: ChatRequest) -> list[StopRule]:
        made = (factory(request.sampling) for factory in factories)
        return [rule for rule in made if rule is not None]

    return rules


def build_services(settings: Settings, stop_rules: StopRules, families: Mapping[str, Callable]) -> Services:
    """Load the model and tokenizer, open the snapshot store and start the engine thread."""
    path = default_model_dir() if settings.model is None else resolve_model_dir(settings.model)
    log.info("loading model from %s on %s (%s)", path, settings.device, settings.dtype)
    model = load_model_from_dir(path, families, device=settings.device, dtype=settings.dtype,
                                chunk_size=settings.chunk_size)
    tok = HFTokenizer.from_dir(path)
    root = Path(settings.snapshot_dir) if settings.snapshot_dir else default_snapshot_root(dict(os.environ))
    budget = settings.kv_budget if settings.kv_budget is not None else default_kv_budget(settings.device)
    # Offloaded sessions live only as long as this process: a private temp dir, removed at shutdown.
    spill_dir = tempfile.mkdtemp(prefix="spl-spill-")
    sessions = SessionService(
        model=model,
        tok=tok,
        engine=Engine().start(),
        store=FilesystemSnapshotStore(root),
        clock=SystemClock(),
        ids=RandomIds(),
        stop_rules=stop_rules,
        entropy=lambda: secrets.randbits(63),
        default_max_seq_len=settings.max_seq_len or model.info.max_seq_len,
        spill=FilesystemSnapshotStore(spill_dir),
        kv_budget=budget,
        reply_parser=split_tool_calls,
        max_prompt_tokens=settings.max_prompt_tokens,
        grammars=LLGuidanceGrammars(tok, model.info.vocab_size),
        prefix_cache=PrefixCache(model, settings.prefix_cache) if settings.prefix_cache else None,
    )
    log.info("model %s ready; snapshots in %s; KV budget %.2f GiB%s", model.info.name, root, budget / 2**30,
             "" if settings.kv_budget is not None else " (free memory after the weights, less headroom)")
    on_close = [lambda: shutil.rmtree(spill_dir, ignore_errors=True)]
    return Services(sessions=sessions, model_name=model.info.name, default_max_tokens=settings.max_tokens,
                    default_temperature=default_temperature(path), on_close=on_close)


def build_app(settings: Settings, *, background: bool = True) -> tuple[falcon.App, ServiceHolder]:
    """Build the plugin manager once (stop rules and HTTP routes), the service holder and the WSGI app.

    `load_plugins=False` skips third-party entry points only; built-in plugins always register.
    """
    pm = build_plugin_manager(load_entrypoints=settings.load_plugins)
    rules = stop_rule_source(pm)
    families = collect(pm, "superlinear_model_families")
    holder = ServiceHolder(lambda: build_services(settings, rules, families), background=background)
    options = AppOptions(api_key=settings.api_key, limits=settings.limits, load_plugins=settings.load_plugins)
    return create_app(holder, options, pm), holder
