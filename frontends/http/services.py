"""What the resources need, and the holder that builds it in the background and closes it at shutdown."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import attrs

from superlinear.core import SessionService

from .errors import Unavailable
from .responses import Health, RankStatus

__all__ = ["Services", "ServiceHolder", "Get"]

log = logging.getLogger(__name__)


@attrs.define(eq=False)
class Services:
    """The loaded model's session service and the defaults of this server."""

    sessions: SessionService
    model_name: str
    default_max_tokens: int = 512
    # From the model's generation_config.json: used when a request names no temperature.
    default_temperature: float = 1.0
    # Run after the engine stops (for example, removing the offload directory).
    on_close: list[Callable[[], None]] = attrs.Factory(list)
    # Run after new work is refused and before the engine stops (keeping sessions for the next start).
    before_stop: list[Callable[[], object]] = attrs.Factory(list)
    # torch's intra-op CPU threads on the engine thread (shown by /health).
    torch_threads: int | None = None


Get = Callable[[], Services]


class ServiceHolder:
    """Build the services on a thread; until they exist (and after close) requests get 503 with Retry-After."""

    def __init__(self, build: Callable[[], Services], *, background: bool = True):
        self._build = build
        self._services: Services | None = None
        self._error: str | None = None
        self._closed = False
        self._ready = threading.Event()
        self._close_lock = threading.Lock()
        if background:
            threading.Thread(target=self._load, name="superlinear-load", daemon=True).start()
        else:
            self._load()

    def _load(self) -> None:
        try:
            self._services = self._build()
        except Exception as exc:  # noqa: BLE001 - reported by /health and every request
            log.exception("loading the model failed")
            self._error = f"{type(exc).__name__}: {exc}"
        finally:
            self._ready.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until loading ended (well or not); return whether it did in time."""
        return self._ready.wait(timeout)

    def get(self) -> Services:
        """Return the services, or raise Unavailable (503) while loading, after a failed load or a close."""
        if self._closed:
            raise Unavailable("the server is shutting down")
        if self._services is not None:
            return self._services
        if self._error:
            raise Unavailable(f"the model failed to load: {self._error}")
        raise Unavailable("the model is still loading")

    def peek(self) -> Services | None:
        """Return the services if loaded, without raising."""
        return None if self._closed else self._services

    def sessions(self) -> SessionService | None:
        """Return the session service if loaded (for metrics)."""
        svc = self.peek()
        return svc.sessions if svc is not None else None

    def status(self) -> Health:
        """Describe readiness for /health, as the Health body class."""
        svc = self.peek()
        if self._closed:
            return Health(status="stopping", error=None)
        if svc is None:
            return Health(status="error" if self._error else "loading", error=self._error)
        health = Health(status="ok", model=svc.model_name, sessions=len(svc.sessions.list()),
                        torch_threads=svc.torch_threads)
        # A model sharded over ranks (--tensor-parallel) reports each of them.
        ranks = getattr(svc.sessions.model, "ranks_status", None)
        return health if ranks is None else _with_ranks(health, ranks)

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new work and stop the engine: running turns are cancelled and their sessions restored."""
        with self._close_lock:  # a second caller (the worker's exit) waits until the first has finished
            if self._closed:
                return
            self._closed = True
            svc = self._services
            if svc is not None:
                self._stop(svc, timeout)

    def _stop(self, svc: Services, timeout: float) -> None:
        for hook in svc.before_stop:
            try:
                hook()
            except Exception:  # noqa: BLE001 - the engine must still stop
                log.exception("a shutdown hook failed")
        log.info("stopping the engine; in-flight turns are cancelled")
        svc.sessions.engine.stop(timeout)
        for hook in svc.on_close:
            hook()


def _with_ranks(health: Health, ranks_status: Callable[[], list[dict]]) -> Health:
    """`health` with every rank's row; an error naming the stopped ones. A row that is not a RankStatus (a
    field the model reports that the class does not declare) is logged and its rows left out, never a 500."""
    try:
        rows = ranks_status()
    except Exception as exc:  # noqa: BLE001 - the liveness probe answers what it knows
        log.exception("/health: the ranks' status could not be read")
        return attrs.evolve(health, status="error", error=f"the ranks' status could not be read: {exc}")
    stopped = [row.get("rank") for row in rows if not row.get("alive")]
    if stopped:
        health = attrs.evolve(health, status="error", error=f"rank(s) {stopped} of the sharded model stopped")
    try:
        return attrs.evolve(health, ranks=tuple(RankStatus(**row) for row in rows))
    except TypeError:
        log.exception("/health: a rank's row does not fit RankStatus; the ranks are left out")
        return health
