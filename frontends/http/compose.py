"""The composition root: the one place that wires adapters, storage and plugins into the core and the app."""

from __future__ import annotations

import functools
import logging
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs
import falcon
import pluggy

from superlinear.adapters import default_model_dir, load_model_from_dir, resolve_model_dir
from superlinear.adapters.cpu_threads import set_torch_threads
from superlinear.adapters.grammar import LLGuidanceGrammars
from superlinear.adapters.memory import default_kv_budget
from superlinear.adapters.placement import resolve_placement
from superlinear.core import ChatRequest, Engine, SessionService
from superlinear.core.ports import RandomIds, StopRule, SystemClock
from superlinear.core.prefix_cache import PrefixCache
from superlinear.plugins import build_plugin_manager, collect
from superlinear.storage import FilesystemSnapshotStore, default_snapshot_root
from superlinear.storage.spill import SpillDir, default_spill_root

from .app import AppOptions, create_app
from .body import DEFAULT_MAX_BODY_BYTES
from .limits import Limits
from .origin import is_loopback_name
from .persist import AutosaveSpill, persist_sessions, restore_sessions
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
    # Prompt tokens per engine step: bounds how long other streams and management calls wait for a prefill.
    prefill_budget: int = 128
    dtype: str | None = None  # None: bfloat16 on CUDA, float32 on CPU (adapters.placement)
    device: str | None = None  # None: cuda if present, else cpu
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
    # torch's intra-op CPU threads in the engine (see adapters/cpu_threads.py for the default).
    torch_threads: int = 1
    # Save live sessions at a graceful stop and load them back at the next start (frontends/http/persist.py).
    keep_sessions: bool = True
    # Host names allowed in Host/Origin besides loopback ones (--allow-host); "*" allows any.
    allowed_hosts: tuple[str, ...] = ()
    # Ranks the model is sharded over (context-parallel attention, expert-parallel MoE); 1: no sharding.
    tensor_parallel: int = 1

    @property
    def host_check(self) -> tuple[str, ...] | None:
        """The allow-list to enforce: always on a loopback bind, elsewhere only when one was given."""
        if self.allowed_hosts or is_loopback_name(self.host):
            return self.allowed_hosts
        return None

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
    device, dtype = resolve_placement(settings.device, settings.dtype)
    settings = attrs.evolve(settings, device=device, dtype=dtype)
    set_torch_threads(settings.torch_threads)
    log.info("loading model from %s on %s (%s)", path, settings.device, settings.dtype)
    # The option reaches the family's loader only when asked for, so a plugin family that cannot shard
    # fails by name only then.
    sharded = {"tensor_parallel": settings.tensor_parallel} if settings.tensor_parallel > 1 else {}
    loaded = load_model_from_dir(path, families, device=settings.device, dtype=settings.dtype,
                                 chunk_size=settings.chunk_size, **sharded)
    model, tok = loaded.model, loaded.tokenizer
    root = Path(settings.snapshot_dir) if settings.snapshot_dir else default_snapshot_root(dict(os.environ))
    budget = settings.kv_budget if settings.kv_budget is not None else default_kv_budget(settings.device)
    engine = Engine(prefill_budget=settings.prefill_budget).start()
    # torch keeps the count per OS thread: set it where the model runs, too.
    threads = engine.call(lambda: set_torch_threads(settings.torch_threads))
    # Offloaded sessions live only as long as this process: a private directory, removed at shutdown and
    # swept at the next start after a crash.
    spill = SpillDir(default_spill_root(dict(os.environ)))
    store = FilesystemSnapshotStore(root)
    sessions = SessionService(
        model=model,
        tok=tok,
        engine=engine,
        store=store,
        clock=SystemClock(),
        ids=RandomIds(),
        stop_rules=stop_rules,
        entropy=lambda: secrets.randbits(63),
        default_max_seq_len=settings.max_seq_len or model.info.max_seq_len,
        # Also serves the autosaves of sessions kept at the last stop until their first use (persist.py).
        spill=AutosaveSpill(FilesystemSnapshotStore(spill.path), store),
        kv_budget=budget,
        # Tool calls are read in the format the loaded chat template writes them.
        reply_parser=functools.partial(split_tool_calls, fmt=getattr(tok, "tool_call_format", "json")),
        max_prompt_tokens=settings.max_prompt_tokens,
        grammars=LLGuidanceGrammars(tok, model.info.vocab_size),
        prefix_cache=PrefixCache(model, settings.prefix_cache) if settings.prefix_cache else None,
        prefill_chunk=settings.chunk_size,
    )
    if settings.keep_sessions:
        restore_sessions(sessions)
    log.info("model %s ready; snapshots in %s; KV budget %.2f GiB%s; %d torch thread(s)", model.info.name, root,
             budget / 2**30, "" if settings.kv_budget is not None else " (free memory after the weights, less headroom)",
             threads)
    on_close = [spill.close, *([model.close] if hasattr(model, "close") else [])]
    return Services(sessions=sessions, model_name=model.info.name, default_max_tokens=settings.max_tokens,
                    default_temperature=loaded.defaults.temperature, on_close=on_close,
                    torch_threads=threads,
                    before_stop=[lambda: persist_sessions(sessions)] if settings.keep_sessions else [])


def build_app(settings: Settings, *, background: bool = True) -> tuple[falcon.App, ServiceHolder]:
    """Build the plugin manager once (stop rules and HTTP routes), the service holder and the WSGI app.

    `load_plugins=False` skips third-party entry points only; built-in plugins always register.
    """
    pm = build_plugin_manager(load_entrypoints=settings.load_plugins)
    rules = stop_rule_source(pm)
    families = collect(pm, "superlinear_model_families")
    holder = ServiceHolder(lambda: build_services(settings, rules, families), background=background)
    options = AppOptions(api_key=settings.api_key, limits=settings.limits, load_plugins=settings.load_plugins,
                         allowed_hosts=settings.host_check)
    return create_app(holder, options, pm), holder
