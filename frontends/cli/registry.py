"""The CLI's plugin manager: built-in commands, third-party plugins, and what they register.

`main` builds it once per run and attaches it to the parsed arguments (`args.plugin_manager`); commands
read what they need from there (`repl.base.plugins_registered`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from superlinear.plugins import build_plugin_manager

from . import builtin

__all__ = ["make_plugin_manager"]


def make_plugin_manager(extra_plugins: Iterable[object] = (), load_entrypoints: bool | None = None):
    """Build a plugin manager with the CLI's built-in commands, entry points and `extra_plugins`.

    Entry points are skipped when $SPL_NO_PLUGINS is set; a plugin that fails to load is reported and
    skipped, so one broken package does not take the whole CLI down.
    """
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
