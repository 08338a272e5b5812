"""`spl ls` and `spl rm <id...>`: list and delete sessions and snapshots."""

from __future__ import annotations

import argparse
import sys

from ..infra.connection import add_connection_args, client_from_args
from ..infra.locks import holder_of
from ..infra.output import confirm, print_json
from .inventory import Item, delete_item, listing_text, resolve

__all__ = ["add_ls_parser", "add_rm_parser", "cmd_ls", "cmd_rm", "delete_many", "report_deletions"]


def add_ls_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ls", help="list sessions and snapshots")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_args(p)
    p.set_defaults(func=cmd_ls)


def add_rm_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rm", help="delete sessions or snapshots by id")
    p.add_argument("ids", nargs="+", metavar="ID", help="session or snapshot ids")
    p.add_argument("-y", "--yes", action="store_true", help="don't ask before deleting several items")
    p.add_argument("--force", action="store_true", help="also delete sessions open in a REPL")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_args(p)
    p.set_defaults(func=cmd_rm)


def cmd_ls(a: argparse.Namespace) -> int:
    client = client_from_args(a)
    sessions, snapshots = client.sessions(), client.snapshots()
    if a.json:
        print_json({"sessions": sessions, "snapshots": snapshots})
    else:
        print(listing_text(sessions, snapshots))
    return 0


def _classify(client, ids: list[str], force: bool, kinds: tuple[str, ...]) -> tuple[list[Item], list[str], list[str]]:
    """Split ids into deletable items, unknown ids, and sessions open in a REPL (kept unless forced)."""
    found, missing, busy = [], [], []
    for item_id in dict.fromkeys(ids):
        item = resolve(client, item_id, kinds)
        if item is None:
            missing.append(item_id)
        elif item.kind == "session" and not force and holder_of(item_id):
            busy.append(item_id)
        else:
            found.append(item)
    return found, missing, busy


def delete_many(client, ids: list[str], *, yes: bool, force: bool = False, ask=confirm,
                kinds: tuple[str, ...] = ("session", "snapshot")) -> dict:
    """Delete the named items, asking first when there are several; return what happened."""
    found, missing, busy = _classify(client, ids, force, kinds)
    result = {"deleted": [], "missing": missing, "open_in_repl": busy, "aborted": False}
    if len(found) > 1 and not yes:
        counts = ((sum(i.kind == k for i in found), k) for k in ("session", "snapshot"))
        summary = ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for n, k in counts if n)
        if not ask(f"delete {len(found)} items ({summary})?"):
            result["aborted"] = True
            return result
    for item in found:
        delete_item(client, item)
        result["deleted"].append({"id": item.id, "kind": item.kind})
    return result


def report_deletions(result: dict, write=print, warn=None, what: str = "session or snapshot") -> bool:
    """Print what delete_many did; return True when everything asked for was deleted."""
    warn = warn or (lambda text: print(text, file=sys.stderr))
    if result["aborted"]:
        warn("aborted; nothing deleted")
    for item in result["deleted"]:
        write(f"deleted {item['kind']} {item['id']}")
    for item_id in result["missing"]:
        warn(f"error: no {what} named {item_id!r}")
    for item_id in result["open_in_repl"]:
        warn(f"error: session {item_id} is open in a REPL (pid {holder_of(item_id)}); "
             "leave it first or pass --force")
    return not (result["aborted"] or result["missing"] or result["open_in_repl"])


def cmd_rm(a: argparse.Namespace) -> int:
    result = delete_many(client_from_args(a), a.ids, yes=a.yes, force=a.force)
    if a.json:
        print_json(result)
        ok = not (result["aborted"] or result["missing"] or result["open_in_repl"])
    else:
        ok = report_deletions(result)
    return 0 if ok else 1
