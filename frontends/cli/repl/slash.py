"""The built-in slash commands both REPLs share: /help /ls /rm /save /load /head /tail /history /stats
/think /new /exit. Each handler is `handler(repl, arg)`; see repl.py."""

from __future__ import annotations

from ..commands.inventory import listing_text
from ..commands.manage import delete_many, report_deletions
from ..infra.output import human_bytes
from .base import for_repls, new_session_id
from .turn import printable

__all__ = ["BUILTIN_COMMANDS"]


def _count(arg: str, default: int) -> int | None:
    """Parse the optional count argument of /head, /tail and /history."""
    if not arg:
        return default
    return int(arg) if arg.isdigit() and int(arg) > 0 else None


def cmd_help(repl, arg: str) -> None:
    width = max(len(name) for name in repl.commands)
    lines = [f"  {name.ljust(width)}  {cmd.help}" for name, cmd in repl.commands.items()]
    repl.write("commands:\n" + "\n".join(lines) + "\nanything else is sent to the model (start it with // to "
               "send a leading /); Ctrl-C cancels a turn; Esc Enter adds a line; Ctrl-D or /exit leaves\n")


def cmd_ls(repl, arg: str) -> None:
    repl.write(listing_text(repl.client.sessions(), repl.client.snapshots()) + "\n")


def cmd_rm(repl, arg: str) -> None:
    ids = arg.split()
    if not ids:
        old = repl.session_id
        repl.client.delete("v1", "sessions", old)
        repl.write(f"deleted session {old}\n")
        repl.start_over()
        return
    current = repl.session_id
    # This REPL's own lock must not count as "open in another REPL".
    result = delete_many(repl.client, ids, yes=False, force=current in ids, ask=repl.confirm)
    report_deletions(result, write=lambda t: repl.write(t + "\n"), warn=lambda t: repl.write(t + "\n"))
    if any(d["id"] == current and d["kind"] == "session" for d in result["deleted"]):
        repl.start_over()


def cmd_save(repl, arg: str) -> None:
    body = {"title": arg or None}
    out = repl.client.post("v1", "sessions", repl.session_id, "save", body=body, timeout=3600)
    repl.on_saved(out["snapshot_id"])
    repl.write(f"saved snapshot_id={out['snapshot_id']} tokens={out.get('tokens')} "
               f"size={human_bytes(out.get('bytes'))}\n")


def cmd_load(repl, arg: str) -> None:
    if not arg or " " in arg:
        repl.write("usage: /load <snapshot_id>\n")
        return
    sid = new_session_id(repl.session_prefix())
    out = repl.client.post("v1", "snapshots", arg, "load", body={"session_id": sid}, timeout=3600)
    repl.attach(out["session_id"])
    repl.on_loaded(arg)
    repl.write(f"loaded snapshot {arg} into session {out['session_id']} ({out.get('tokens')} tokens)\n")


def _show_messages(repl, messages: list[dict], first_index: int) -> None:
    if not messages:
        repl.write("no messages yet\n")
    for i, m in enumerate(messages, start=first_index):
        text = m.get("content") or ""
        if not text and m.get("reasoning_content"):
            text = "(thinking only) " + m["reasoning_content"]
        more = f" ... ({len(text) - 400} more chars)" if len(text) > 400 else ""
        repl.write(f"[{i}] {m.get('role')}: {printable(text[:400])}{more}\n")


def _messages_command(repl, arg: str, tail: bool) -> None:
    n = _count(arg, 5)
    if n is None:
        repl.write(f"usage: /{'tail' if tail else 'head'} [n]  (n a positive number)\n")
        return
    messages = repl.client.get("v1", "sessions", repl.session_id, "history")["messages"]
    start = max(0, len(messages) - n) if tail else 0
    _show_messages(repl, messages[start:start + n], start + 1)


def cmd_head(repl, arg: str) -> None:
    _messages_command(repl, arg, tail=False)


def cmd_tail(repl, arg: str) -> None:
    _messages_command(repl, arg, tail=True)


def cmd_history(repl, arg: str) -> None:
    n = _count(arg, 20)
    if n is None:
        repl.write("usage: /history [n]\n")
        return
    entries = _history_entries(repl.history)
    for i, entry in enumerate(entries[-n:], start=max(1, len(entries) - n + 1)):
        repl.write(f"{i:>4}  {entry}\n")
    if not entries:
        repl.write("no input history yet\n")


def _history_entries(history) -> list[str]:
    """Return every stored input line, oldest first.

    get_strings() only knows what prompt_toolkit has loaded so far (it loads files in the background), so
    read the store itself; prompt_toolkit stores yield the newest entry first.
    """
    if history is None:
        return []
    return list(history.load_history_strings())[::-1]


def cmd_stats(repl, arg: str) -> None:
    info = repl.client.get("v1", "sessions", repl.session_id)
    last = repl.stats.line() if repl.stats else "no turn yet"
    repl.write(f"last turn: {last}\nsession {repl.session_id}: {info.get('cached_tokens', 0)} tokens cached "
               f"of {info.get('max_seq_len')}, {info.get('message_count', 0)} messages, "
               f"kv {human_bytes(info.get('kv_bytes'))}\n")


def cmd_think(repl, arg: str) -> None:
    if arg in ("on", "off"):
        repl.expand_thinking = arg == "on"
        repl.write(f"thinking is now {'expanded' if repl.expand_thinking else 'collapsed'}\n")
    elif arg == "show":
        text = repl.last.reasoning if repl.last else ""
        repl.write((repl.dim(printable(text)) if text else "no thinking in the last turn") + "\n")
    else:
        repl.write("usage: /think on|off|show  (expand thinking while it streams, collapse it, or show the "
                   "last turn's)\n")


@for_repls("chat")
def cmd_new(repl, arg: str) -> None:
    sid = repl.fresh_session()
    repl.write(f"new session {sid}\n")


def cmd_exit(repl, arg: str) -> bool:
    return False


BUILTIN_COMMANDS = (
    ("help", cmd_help, "show the commands"),
    ("ls", cmd_ls, "list sessions and snapshots"),
    ("rm", cmd_rm, "[id...]  delete sessions/snapshots; no id: delete this session and start fresh"),
    ("save", cmd_save, "[title]  save this session as a snapshot"),
    ("load", cmd_load, "<snap>  load a snapshot into a new session and switch to it"),
    ("head", cmd_head, "[n]  show the first n messages (5)"),
    ("tail", cmd_tail, "[n]  show the last n messages (5)"),
    ("history", cmd_history, "[n]  show the last n lines you typed (20)"),
    ("stats", cmd_stats, "show the last turn's metrics and the session's size"),
    ("think", cmd_think, "on|off|show  expand or collapse thinking, or show the last turn's"),
    ("new", cmd_new, "start a new session"),
    ("exit", cmd_exit, "leave (the session stays on the server)"),
    ("quit", cmd_exit, "leave, like /exit"),
)
