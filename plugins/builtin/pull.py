"""Built-in `spl pull <repo>`: download a model from the Hugging Face hub without starting a server."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from ..hookspecs import RegisterCliCommand, hookimpl

__all__ = ["add_pull_parser", "cmd_pull", "superlinear_cli_commands"]


def add_pull_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `pull` to the `spl` subcommands; its handler is `cmd_pull`."""
    p = subparsers.add_parser(
        "pull",
        help="download a model from the Hugging Face hub into the local cache",
        description="Fetch a model's config, tokenizer, chat template and safetensors weights into the "
        "Hugging Face cache (or --cache-dir), so a server can load it later, offline too.",
    )
    p.add_argument("repo", help="hub repo id, e.g. concavity-ai/superlinear-exp-v0.1")
    p.add_argument("--revision", default=None, help="branch, tag or commit (default: main)")
    p.add_argument("--cache-dir", default=None, help="cache directory (default: the Hugging Face cache)")
    p.set_defaults(func=cmd_pull)


def cmd_pull(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Resolve `args.repo` into the cache and print the local directory; return the exit status."""
    from superlinear.adapters.hub import ModelSourceError, resolve_model_dir

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        # Under HF_HUB_OFFLINE=1 this only finds a cached copy, and otherwise says how to get one.
        path = resolve_model_dir(args.repo, revision=args.revision, cache_dir=args.cache_dir)
    except ModelSourceError as exc:
        print(f"error: {exc}", file=err)
        return 1
    print(path, file=out)
    return 0


@hookimpl
def superlinear_cli_commands(register: RegisterCliCommand) -> None:
    """Register `spl pull`."""
    register("pull", add_pull_parser)
