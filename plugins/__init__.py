"""Plugins: the hookspecs, the manager that loads plugins, and the built-in plugins."""

from .hookspecs import ENTRY_POINT_GROUP, ReplCommand, hookimpl, hookspec
from .manager import DuplicateRegistration, build_plugin_manager, collect

__all__ = [
    "ENTRY_POINT_GROUP",
    "DuplicateRegistration",
    "ReplCommand",
    "build_plugin_manager",
    "collect",
    "hookimpl",
    "hookspec",
]
