"""`spl session ls|info <id>`: the server's sessions in detail."""

from __future__ import annotations

import argparse

from ..infra.client import ApiError
from ..infra.connection import add_connection_args, client_from_args
from ..infra.locks import holder_of
from ..infra.output import age, human_bytes, prefill_text, print_json, session_rows
from .inventory import note_for, session_notes

__all__ = ["add_session_parser", "not_found_hint"]


def add_session_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("session", help="list sessions or show one")
    ss = p.add_subparsers(dest="session_cmd", required=True)
    ls = ss.add_parser("ls", help="list sessions (detailed)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    add_connection_args(ls)
    ls.set_defaults(func=cmd_session_ls)
    info = ss.add_parser("info", help="show one session")
    info.add_argument("session_id", metavar="ID")
    info.add_argument("--json", action="store_true", help="print JSON")
    add_connection_args(info)
    info.set_defaults(func=cmd_session_info)


def not_found_hint(exc: ApiError, kind: str, item_id: str) -> ApiError:
    """Turn a 404 into a message naming the id and how to list what exists."""
    if exc.status == 404:
        return ApiError(f"no {kind} named {item_id!r} (`spl {kind} ls` lists them)", 404, "not_found")
    return exc


def cmd_session_ls(a: argparse.Namespace) -> int:
    sessions = client_from_args(a).sessions()
    if a.json:
        print_json(sessions)
    elif sessions:
        notes = session_notes()
        print(session_rows(sessions, lambda sid: note_for(notes, sid)))
    else:
        print("no sessions")
    return 0


def cmd_session_info(a: argparse.Namespace) -> int:
    try:
        info = client_from_args(a).get("v1", "sessions", a.session_id)
    except ApiError as exc:
        raise not_found_hint(exc, "session", a.session_id) from None
    if a.json:
        print_json(info)
        return 0
    pid = holder_of(a.session_id)
    print(f"session      {info['session_id']}\n"
          f"tokens       {info.get('cached_tokens', 0)} of {info.get('max_seq_len')}\n"
          f"messages     {info.get('message_count', 0)}\n"
          f"kv           {human_bytes(info.get('kv_bytes'))} ({'resident' if info.get('resident', True) else 'offloaded'})\n"
          f"created      {age(info.get('created_at'))}\n"
          f"last used    {age(info.get('last_used_at'))}\n"
          f"busy         {'yes' if info.get('busy') else 'no'}\n"
          f"prefill      {prefill_text(info.get('prefill'))}"
          + (f"\nopen in     REPL pid {pid}" if pid else ""))
    return 0
