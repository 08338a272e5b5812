"""Built-in plugins: features of superlinear itself, registered through the same hooks as third-party ones."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["BUILTIN_PLUGIN_MODULES", "builtin_plugins"]

# (plugin name, module relative to this package); modules are imported only when a manager is built.
BUILTIN_PLUGIN_MODULES: tuple[tuple[str, str], ...] = (
    ("superlinear.stop_rules", ".stop_rules"),
    ("superlinear.hybrid_family", ".hybrid_family"),
    ("superlinear.pull", ".pull"),
    ("superlinear.bm25", ".bm25"),
)


def builtin_plugins() -> list[tuple[str, ModuleType]]:
    """Import and return the built-in plugin modules with the names they register under."""
    return [(name, importlib.import_module(module, __name__)) for name, module in BUILTIN_PLUGIN_MODULES]
