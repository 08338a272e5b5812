"""`/add`: read documents and send each into the workspace's session as a framed user message.

Each document is one turn with a one-token answer and thinking off, streamed so that Ctrl-C closes the
connection and the server drops the half-ingested document. Every document is recorded in the workspace
as soon as its turn completes, so an interrupted ingest keeps what got in.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..infra.client import ApiError, Client
from ..infra.progress import byte_bar, prefill_watch
from ..infra.workspace import Source
from .files import Document, NotText, TooManyFiles, expand_paths, read_document
from .framing import frame_document

__all__ = ["add_documents", "parse_add_args", "AddArgs"]

DEFAULT_MAX_FILES = 200
# Used only to refuse early what cannot fit; real tokenizers average more than this many chars per token.
_MAX_CHARS_PER_TOKEN = 4


class AddArgs:
    """The parsed arguments of /add."""

    def __init__(self, paths: list[str], save: bool, max_files: int):
        self.paths, self.save, self.max_files = paths, save, max_files


def parse_add_args(arg: str) -> AddArgs:
    """Parse `/add <paths...> [-s] [--max-files N]`; raise ValueError with a usage message."""
    import shlex

    words = shlex.split(arg)
    paths, save, max_files = [], False, DEFAULT_MAX_FILES
    it = iter(words)
    for word in it:
        if word in ("-s", "--save"):
            save = True
        elif word == "--max-files":
            value = next(it, "")
            if not value.isdigit() or int(value) < 1:
                raise ValueError("--max-files takes a positive number")
            max_files = int(value)
        else:
            paths.append(word)
    if not paths:
        raise ValueError("usage: /add <paths...> [-s] [--max-files N]  (files, folders or globs)")
    return AddArgs(paths, save, max_files)


def _read_all(repl, paths: list[Path]) -> list[Document]:
    docs = []
    for path in paths:
        try:
            doc = read_document(path)
        except NotText as exc:
            repl.write(f"refused {exc}\n")
            continue
        except OSError as exc:
            repl.write(f"refused {path}: {exc.strerror or exc}\n")
            continue
        if repl.workspace.has_digest(doc.sha256) or any(d.sha256 == doc.sha256 for d in docs):
            repl.write(f"skipped {path}: already added\n")
            continue
        docs.append(doc)
    return docs


def _fits(repl, docs: list[Document]) -> bool:
    info = repl.client.get("v1", "sessions", repl.session_id)
    room = info.get("max_seq_len", 0) - info.get("cached_tokens", 0)
    least = sum(len(d.text) for d in docs) // _MAX_CHARS_PER_TOKEN
    if least > room:
        repl.write(f"refused: these {len(docs)} documents need at least {least} tokens, but the session has "
                   f"room for {room}; add fewer files\n")
        return False
    return True


def _send(repl, doc: Document) -> None:
    body = {"session_id": repl.session_id, "max_tokens": 1, "chat_template_kwargs": {"enable_thinking": False},
            "messages": [{"role": "user", "content": frame_document(repl.workspace.nonce, doc.path, doc.text)}]}
    watcher = Client(repl.client.base_url, api_key=repl.client.api_key, timeout=5.0)
    progress = lambda: watcher.get("v1", "sessions", repl.session_id).get("prefill")  # noqa: E731
    stream = repl.client.stream_chat(body)
    try:
        with prefill_watch(progress, Path(doc.path).name, enabled=repl.live):
            for _ in stream:
                pass
    finally:
        stream.close()


def _ingest(repl, docs: list[Document]) -> int:
    """Send the documents one by one; return how many got in."""
    total = sum(d.bytes for d in docs)
    added = 0
    with byte_bar(total, "ingest", enabled=total > 256 * 1024 or len(docs) > 10) as advance:
        for doc in docs:
            try:
                _send(repl, doc)
            except ApiError as exc:
                repl.write(f"stopped at {doc.path}: {exc}\n")
                break
            except KeyboardInterrupt:
                repl.write(f"\n(ingest interrupted at {doc.path}; the documents before it are kept)\n")
                break
            source = Source(doc.path, doc.bytes, doc.sha256, time.time())
            repl.change_workspace(lambda ws, s=source: ws.sources.append(s))
            added += 1
            advance(doc.bytes)
    return added


def add_documents(repl, arg: str) -> None:
    """Run /add: expand, read, check, ingest, and with -s save a base snapshot."""
    try:
        args = parse_add_args(arg)
        paths, problems = expand_paths(args.paths, args.max_files)
    except (ValueError, TooManyFiles) as exc:
        repl.write(f"{exc}\n")
        return
    for problem in problems:
        repl.write(f"{problem}\n")
    docs = _read_all(repl, paths)
    if not docs or not _fits(repl, docs):
        repl.write("nothing added\n" if not docs else "")
        return
    added = _ingest(repl, docs)
    repl.index.invalidate()
    ws = repl.workspace
    repl.write(f"added files={added} bytes={sum(d.bytes for d in docs[:added])} sources={len(ws.sources)}\n")
    if args.save and added:
        out = repl.client.post("v1", "sessions", repl.session_id, "save",
                               body={"title": f"docs:{ws.name} base"}, timeout=3600)
        repl.change_workspace(lambda w: setattr(w, "base_snapshot_id", out["snapshot_id"]))
        repl.write(f"saved base_snapshot_id={out['snapshot_id']}\n")
