"""Every hook superlinear offers, in one typed file.

Hooks use the `register(...)` callback style: the host calls the hook with a `register` function and
each plugin calls it once per thing it provides. docs/plugins.md documents each hook; a test keeps the
two in sync.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import attrs
import pluggy

from superlinear.core.ports import ModelLoader, Retriever, StopRuleFactory

__all__ = [
    "PROJECT_NAME",
    "ENTRY_POINT_GROUP",
    "hookspec",
    "hookimpl",
    "ReplCommand",
    "RetrieverFactory",
    "ModelLoader",
    "AddParser",
    "ReplHandler",
    "RegisterStopRule",
    "RegisterRetriever",
    "RegisterModelFamily",
    "RegisterCliCommand",
    "RegisterReplCommand",
    "RegisterHttpRoute",
]

PROJECT_NAME = "superlinear"
ENTRY_POINT_GROUP = "superlinear"

# Markers are inert decorators (pluggy's documented idiom), not state built at import.
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

RetrieverFactory = Callable[..., Retriever]
AddParser = Callable[[argparse._SubParsersAction], None]
ReplHandler = Callable[..., Any]

RegisterStopRule = Callable[[str, StopRuleFactory], None]
RegisterRetriever = Callable[[str, RetrieverFactory], None]
RegisterModelFamily = Callable[[str, ModelLoader], None]
RegisterCliCommand = Callable[[str, AddParser], None]
RegisterReplCommand = Callable[..., None]
RegisterHttpRoute = Callable[[str, object], None]


@attrs.frozen
class ReplCommand:
    """A REPL slash command as collected from `superlinear_repl_commands`."""

    handler: ReplHandler
    help: str = ""


@hookspec
def superlinear_stop_rules(register: RegisterStopRule) -> None:
    """Register stop rules: `register(name, factory)`, factory(SamplingParams) -> StopRule | None."""


@hookspec
def superlinear_retrievers(register: RegisterRetriever) -> None:
    """Register retrievers for document Q&A: `register(name, factory)`, factory(**options) -> Retriever."""


@hookspec
def superlinear_model_families(register: RegisterModelFamily) -> None:
    """Register model loaders: `register(model_type, loader)`, keyed by config.json's `model_type`."""


@hookspec
def superlinear_cli_commands(register: RegisterCliCommand) -> None:
    """Register `spl` commands: `register(name, add_parser)`, add_parser(subparsers) adds the command."""


@hookspec
def superlinear_repl_commands(register: RegisterReplCommand) -> None:
    """Register REPL slash commands: `register(name, handler, help)`."""


@hookspec
def superlinear_http_routes(register: RegisterHttpRoute) -> None:
    """Register HTTP routes: `register(path, resource)`, a Falcon-style resource object for `path`."""
