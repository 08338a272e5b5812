"""Build a plugin manager and gather what plugins register through the `register(...)` hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pluggy

from . import hookspecs
from .builtin import builtin_plugins

__all__ = ["DuplicateRegistration", "build_plugin_manager", "collect"]


class DuplicateRegistration(ValueError):
    """Two plugins registered the same name through one hook."""


def build_plugin_manager(
    *, load_entrypoints: bool = True, extra_plugins: Iterable[object] = ()
) -> pluggy.PluginManager:
    """Return a fresh manager with the hookspecs, the built-in plugins, entry points and `extra_plugins`."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name, plugin in builtin_plugins():
        pm.register(plugin, name=name)
    if load_entrypoints:
        pm.load_setuptools_entrypoints(hookspecs.ENTRY_POINT_GROUP)
    for plugin in extra_plugins:
        pm.register(plugin)
    # Fails on a hook implementation whose name matches no hookspec (usually a typo).
    pm.check_pending()
    return pm


def _single(thing: Any) -> Any:
    return thing


# How each hook's `register(name, ...)` arguments after the name become the collected value.
_VALUE_BUILDERS: dict[str, Callable[..., Any]] = {
    "superlinear_repl_commands": hookspecs.ReplCommand,
}


def collect(pm: pluggy.PluginManager, hook_name: str) -> dict[str, Any]:
    """Call `hook_name` with a register callback and return what plugins registered, by name.

    Raises DuplicateRegistration when two registrations use the same name, and AttributeError for a
    hook that does not exist.
    """
    hook = getattr(pm.hook, hook_name)
    build = _VALUE_BUILDERS.get(hook_name, _single)
    found: dict[str, Any] = {}

    def register(name: str, *args: Any, **kwargs: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{hook_name}: a registered name must be a non-empty string, got {name!r}")
        value = build(*args, **kwargs)
        if name in found:
            raise DuplicateRegistration(
                f"{hook_name}: {name!r} is registered twice "
                f"(by {_origin(found[name])} and by {_origin(value)})"
            )
        found[name] = value

    hook(register=register)
    return found


def _origin(value: Any) -> str:
    """Name the module a registered thing comes from, to point at the clashing plugins."""
    target = getattr(value, "handler", value)
    module = getattr(target, "__module__", None) or type(target).__module__
    return f"{getattr(target, '__qualname__', type(target).__qualname__)} in {module}"
