"""`spl snapshot ls|info|save|load|rm|import`: snapshots of sessions on the server's disk."""

from __future__ import annotations

import argparse
import os
import sys
import time

from ..infra.client import ApiError
from ..infra.connection import add_connection_args, client_from_args
from ..infra.output import age, confirm, human_bytes, print_json, snapshot_rows
from ..infra.progress import spinner
from .manage import delete_many, report_deletions
from .session import not_found_hint

__all__ = ["add_snapshot_parser"]


def _sub(ss, name: str, help_text: str, func) -> argparse.ArgumentParser:
    p = ss.add_parser(name, help=help_text)
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_args(p)
    p.set_defaults(func=func)
    return p


def add_snapshot_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("snapshot", help="list, save, load or delete snapshots")
    ss = p.add_subparsers(dest="snapshot_cmd", required=True)
    _sub(ss, "ls", "list snapshots (detailed)", cmd_snapshot_ls)
    _sub(ss, "info", "show one snapshot's manifest", cmd_snapshot_info).add_argument("snapshot_id", metavar="SNAP")
    save = _sub(ss, "save", "save a session as a snapshot", cmd_snapshot_save)
    save.add_argument("--session", required=True, help="the session to save")
    save.add_argument("--title", default=None)
    save.add_argument("--description", default=None)
    save.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    load = _sub(ss, "load", "load a snapshot into a session", cmd_snapshot_load)
    load.add_argument("snapshot_id", metavar="SNAP")
    load.add_argument("--session", default=None, help="target session id (default: a new one)")
    load.add_argument("--force", action="store_true", help="replace the target session if it exists")
    imp = _sub(ss, "import", "import a snapshot directory saved by the published superlinear server",
               cmd_snapshot_import)
    imp.add_argument("directory", metavar="DIR",
                     help="the directory holding manifest.json and cache.pt (read by the server: same machine)")
    rm = _sub(ss, "rm", "delete snapshots", cmd_snapshot_rm)
    rm.add_argument("ids", nargs="*", metavar="SNAP")
    rm.add_argument("--all", action="store_true", help="delete every snapshot")
    rm.add_argument("-y", "--yes", action="store_true", help="don't ask first")


def cmd_snapshot_ls(a: argparse.Namespace) -> int:
    snaps = client_from_args(a).snapshots()
    if a.json:
        print_json(snaps)
    else:
        print(snapshot_rows(snaps) if snaps else "no snapshots")
    return 0


def cmd_snapshot_info(a: argparse.Namespace) -> int:
    try:
        manifest = client_from_args(a).get("v1", "snapshots", a.snapshot_id)
    except ApiError as exc:
        raise not_found_hint(exc, "snapshot", a.snapshot_id) from None
    if a.json:
        print_json(manifest)
    else:
        print(manifest_lines(manifest))
    return 0


def manifest_lines(manifest: dict) -> str:
    """Render a manifest for people, as `ls` does: sizes, dates with their age, '-' for nothing."""
    def show(key: str, value) -> str:
        if value is None or value == "" or value == []:
            return "-"
        if key == "bytes":
            return f"{human_bytes(value)} ({value:,} bytes)"
        if key == "created_at":
            when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(value))
            return f"{when} ({age(value)})"
        if key == "tags":
            return ", ".join(map(str, value))
        if key == "compatible":
            return "yes" if value else "NO (made by another model or format)"
        return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)

    keys = ("snapshot_id", "title", "description", "tags", "tokens", "message_count", "bytes", "created_at",
            "compatible")
    labels = {"snapshot_id": "snapshot", "message_count": "messages", "bytes": "size", "created_at": "created"}
    return "\n".join(f"{labels.get(k, k):<12} {show(k, manifest[k])}" for k in keys if k in manifest)


def cmd_snapshot_save(a: argparse.Namespace) -> int:
    body = {"title": a.title, "description": a.description, "tags": a.tag}
    try:
        with spinner(f"saving session {a.session}"):
            out = client_from_args(a, timeout=3600).post("v1", "sessions", a.session, "save", body=body)
    except ApiError as exc:
        raise not_found_hint(exc, "session", a.session) from None
    if a.json:
        print_json(out)
    else:
        print(f"saved snapshot {out['snapshot_id']} ({out.get('tokens')} tokens, "
              f"{human_bytes(out.get('bytes'))}, {out.get('seconds', 0):.2f}s)")
    return 0


def cmd_snapshot_load(a: argparse.Namespace) -> int:
    body = {"session_id": a.session, "force": a.force} if a.session else {"force": a.force}
    try:
        with spinner(f"loading snapshot {a.snapshot_id}"):
            out = client_from_args(a, timeout=3600).post("v1", "snapshots", a.snapshot_id, "load", body=body)
    except ApiError as exc:
        if exc.status == 409 and a.session and not a.force and "exist" in str(exc):
            raise ApiError(f"{exc} (pass --force to replace session {a.session})", 409, exc.code) from None
        raise not_found_hint(exc, "snapshot", a.snapshot_id) from None
    if a.json:
        print_json(out)
    else:
        print(f"loaded snapshot {a.snapshot_id} into session {out['session_id']} ({out.get('tokens')} tokens, "
              f"{human_bytes(out.get('bytes'))}, {out.get('seconds', 0):.2f}s)")
    return 0


def cmd_snapshot_import(a: argparse.Namespace) -> int:
    """Ask the server (which holds the model the snapshot is checked against) to import DIR."""
    path = os.path.abspath(os.path.expanduser(a.directory))
    with spinner(f"importing {path}"):
        out = client_from_args(a, timeout=3600).post("v1", "snapshots", "import", body={"path": path})
    if a.json:
        print_json(out)
    else:
        print(f"imported snapshot {out['snapshot_id']} ({out.get('tokens')} tokens, {out.get('messages')} "
              f"messages, {human_bytes(out.get('bytes'))}); load it with: spl snapshot load {out['snapshot_id']}")
    return 0


def cmd_snapshot_rm(a: argparse.Namespace) -> int:
    client = client_from_args(a)
    if a.all == bool(a.ids):
        print("error: name snapshots to delete, or pass --all (not both)", file=sys.stderr)
        return 2
    ids = [s["snapshot_id"] for s in client.snapshots()] if a.all else a.ids
    if a.all and not ids:
        print_json({"deleted": [], "missing": []}) if a.json else print("no snapshots")
        return 0
    if a.all and not a.yes and not confirm(f"delete all {len(ids)} snapshots?"):
        print("aborted; nothing deleted", file=sys.stderr)
        return 1
    result = delete_many(client, ids, yes=a.yes or a.all, kinds=("snapshot",))
    if a.json:
        print_json(result)
        return 0 if not (result["missing"] or result["aborted"]) else 1
    return 0 if report_deletions(result, what="snapshot") else 1

