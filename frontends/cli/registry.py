"""The CLI's plugin manager: built-in commands, third-party plugins, and what they register."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from typing import Any

from ...plugins import build_plugin_manager, collect

__all__ = ["make_plugin_manager", "plugin_manager_of", "registered_repl_commands", "registered_retrievers"]


def make_plugin_manager(extra_plugins: Iterable[object] = (), load_entrypoints: bool | None = None):
    """Build a plugin manager with the CLI's built-in commands, entry points and `extra_plugins`.

    Entry points are skipped when $SPL_NO_PLUGINS is set; a plugin that fails to load is reported and
    skipped, so one broken package does not take the whole CLI down.
    """
    from . import builtin

    plugins = [builtin, *extra_plugins]
    if load_entrypoints is None:
        load_entrypoints = not os.environ.get("SPL_NO_PLUGINS")
    try:
        return build_plugin_manager(load_entrypoints=load_entrypoints, extra_plugins=plugins)
    except Exception as exc:  # noqa: BLE001 - any failure inside a third-party plugin
        if not load_entrypoints:
            raise
        print(f"warning: a plugin failed to load and plugins are skipped ({type(exc).__name__}: {exc}); "
              "set SPL_NO_PLUGINS=1 to silence this", file=sys.stderr)
        return build_plugin_manager(load_entrypoints=False, extra_plugins=plugins)


def plugin_manager_of(args: argparse.Namespace):
    """Return the manager main() attached to the parsed arguments, or build one (direct calls, tests)."""
    pm = getattr(args, "plugin_manager", None)
    if pm is None:
        pm = make_plugin_manager(load_entrypoints=False)
        args.plugin_manager = pm
    return pm


def registered_repl_commands(args: argparse.Namespace) -> dict[str, Any]:
    """Return every registered slash command, by name."""
    return collect(plugin_manager_of(args), "superlinear_repl_commands")


def registered_retrievers(args: argparse.Namespace) -> dict[str, Any]:
    """Return every registered retriever factory, by name."""
    return collect(plugin_manager_of(args), "superlinear_retrievers")
