"""The Falcon app factory: middleware, error handlers and the routes that plugins (built-in first) register."""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import falcon
import pluggy

from superlinear.plugins import build_plugin_manager, collect

from .body import DEFAULT_MAX_BODY_BYTES
from .chat import client_gone_handler
from .disconnect import ClientGone
from .errors import install_error_handlers
from .limits import Limits
from .metrics import Metrics
from .middleware import ApiKey, BodyLimit, RequestTimer
from .origin import HostGuard
from .path_ids import PathIds
from .routes import BuiltinRoutes, mount
from .services import ServiceHolder

__all__ = ["create_app", "AppOptions"]


@attrs.frozen
class AppOptions:
    """What the app needs beyond the services: security, limits and where plugins come from."""

    api_key: str | None = None
    limits: Limits = Limits(max_body_bytes=DEFAULT_MAX_BODY_BYTES)
    load_plugins: bool = True
    extra_plugins: tuple = ()
    # Host names allowed in Host and Origin besides loopback ones; None: no check (a server on a public bind).
    allowed_hosts: tuple[str, ...] | None = None


def _plugin_manager(options: AppOptions, builtin: BuiltinRoutes) -> pluggy.PluginManager:
    extra: Iterable[object] = (builtin, *options.extra_plugins)
    return build_plugin_manager(load_entrypoints=options.load_plugins, extra_plugins=extra)


def create_app(holder: ServiceHolder, options: AppOptions | None = None,
               pm: pluggy.PluginManager | None = None) -> falcon.App:
    """Return the WSGI app; a given plugin manager must not have the built-in routes registered yet."""
    options = options or AppOptions()
    metrics = Metrics(holder.sessions)
    builtin = BuiltinRoutes(holder.get, holder.status, metrics, options.limits, bool(options.api_key))
    if pm is None:
        pm = _plugin_manager(options, builtin)
    else:
        pm.register(builtin, name="superlinear.http_routes")
    middleware: list = [RequestTimer(metrics), BodyLimit(options.limits.max_body_bytes)]
    if options.allowed_hosts is not None:
        middleware.insert(1, HostGuard(options.allowed_hosts))
    if options.api_key:
        middleware.append(ApiKey(options.api_key))
    middleware.append(PathIds())
    app = falcon.App(middleware=middleware)
    install_error_handlers(app)
    app.add_error_handler(ClientGone, client_gone_handler)
    # collect() refuses two registrations of one path, so a plugin cannot silently replace a built-in route.
    mount(app, collect(pm, "superlinear_http_routes"))
    return app
