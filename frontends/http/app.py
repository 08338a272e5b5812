"""The Falcon app factory. It takes a loader for the services, so the model can load in the background."""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable

import falcon

from .errors import Unavailable, install_error_handlers
from .resources import Health, Services, add_routes

__all__ = ["create_app", "ServiceHolder"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024


class ServiceHolder:
    """Build the services on a thread; until they exist, requests get 503 with Retry-After."""

    def __init__(self, build: Callable[[], Services], *, background: bool = True):
        self._build = build
        self._services: Services | None = None
        self._error: str | None = None
        self._ready = threading.Event()
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
        return self._ready.wait(timeout)

    def get(self) -> Services:
        if self._services is not None:
            return self._services
        if self._error:
            raise Unavailable(f"the model failed to load: {self._error}")
        raise Unavailable("the model is still loading")

    def peek(self) -> Services | None:
        return self._services

    def status(self) -> dict:
        svc = self._services
        if svc is None:
            return {"status": "error" if self._error else "loading", "error": self._error}
        return {"status": "ok", "model": svc.model_name, "sessions": len(svc.sessions.list())}


class _BodyLimit:
    def process_request(self, req, resp):
        if req.content_length and req.content_length > MAX_BODY_BYTES:
            raise falcon.HTTPContentTooLarge(
                title="request_too_large", description=f"request bodies are limited to {MAX_BODY_BYTES} bytes"
            )


class _ApiKey:
    """Require `Authorization: Bearer <key>` on every route but /health."""

    def __init__(self, key: str):
        self._key = key

    def process_request(self, req, resp):
        if req.path == "/health":
            return
        given = req.get_header("Authorization") or ""
        if not hmac.compare_digest(given.encode(), f"Bearer {self._key}".encode()):
            raise falcon.HTTPUnauthorized(title="invalid_api_key", description="a valid API key is required")


def create_app(holder: ServiceHolder, api_key: str | None = None) -> falcon.App:
    """Return the WSGI app serving the OpenAI-compatible API."""
    middleware = [_BodyLimit()] + ([_ApiKey(api_key)] if api_key else [])
    app = falcon.App(middleware=middleware)
    install_error_handlers(app)
    add_routes(app, holder.get, Health(holder.peek, holder.status))
    return app
