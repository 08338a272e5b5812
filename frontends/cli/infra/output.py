"""How commands print: aligned tables, sizes, ages, JSON, and yes/no confirmation.

Tables and sizes come from rich: cell widths count wide characters as two columns, and sizes are in
decimal units (1 kB = 1000 bytes) named as such.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.filesize import decimal
from rich.table import Table

__all__ = ["table", "human_bytes", "age", "print_json", "confirm", "session_rows", "snapshot_rows",
           "prefill_text"]


def human_bytes(n: int | float | None) -> str:
    """Render a byte count in decimal units: 1.2 MB, 512 bytes; "-" when unknown."""
    if n is None:
        return "-"
    return decimal(int(n))


def age(ts: float | None, now: float | None = None) -> str:
    """Render a timestamp as how long ago it was (42s, 5m, 3h, 2d)."""
    if not ts:
        return "-"
    secs = max(0.0, (now if now is not None else time.time()) - ts)
    for limit, unit, div in ((60, "s", 1), (3600, "m", 60), (86400, "h", 3600)):
        if secs < limit:
            return f"{secs / div:.0f}{unit} ago"
    return f"{secs / 86400:.0f}d ago"


def prefill_text(prefill: dict | None) -> str:
    """Render a session's prefill progress: 12,288 / 46,000 tokens (27%), chunk 3/6, 512 tok/s, 66s left."""
    if not prefill:
        return "-"
    done, total = prefill.get("done", 0), prefill.get("total", 0)
    pct = f" ({100 * done / total:.0f}%)" if total else ""
    rate = prefill.get("tokens_per_second") or 0
    left = prefill.get("seconds_left")
    return (f"{done:,} / {total:,} tokens{pct}, chunk {prefill.get('chunks_done', 0)}/{prefill.get('chunks_total', 0)}"
            + (f", {rate:,.0f} tok/s" if rate else "") + (f", {left:.0f}s left" if left is not None else ""))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render rows as a left-aligned plain-text table with a header line, never wrapped or cut.

    Cells are taken as plain text (no rich markup), so ids and paths with brackets print as they are.
    """
    grid = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 2, 0, 0), header_style=None)
    for header in headers:
        grid.add_column(str(header), no_wrap=True, overflow="ignore")
    for row in rows:
        grid.add_row(*(str(cell) for cell in row))
    buffer = io.StringIO()
    # A wide virtual console: the table takes its natural width; a pipe gets no colour or control codes.
    Console(file=buffer, width=1 << 16, color_system=None, markup=False, highlight=False, emoji=False,
            soft_wrap=True).print(grid)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def session_rows(sessions: Sequence[dict], note: Callable[[str], str] = lambda sid: "") -> str:
    """Render session infos as a table."""
    rows = [(s["session_id"], s.get("cached_tokens", 0), s.get("message_count", 0), human_bytes(s.get("kv_bytes")),
             "yes" if s.get("resident", True) else "offloaded", age(s.get("last_used_at")), note(s["session_id"]))
            for s in sessions]
    return table(("SESSION", "TOKENS", "MESSAGES", "KV", "RESIDENT", "LAST USED", "NOTE"), rows)


def snapshot_rows(snapshots: Sequence[dict]) -> str:
    """Render snapshot summaries as a table."""
    rows = [(s["snapshot_id"], s.get("title") or "-", s.get("tokens", 0), human_bytes(s.get("bytes")),
             age(s.get("created_at")), "yes" if s.get("compatible", True) else "NO")
            for s in snapshots]
    return table(("SNAPSHOT", "TITLE", "TOKENS", "SIZE", "CREATED", "COMPATIBLE"), rows)


def print_json(data: object) -> None:
    """Print `data` as indented JSON on stdout."""
    print(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))


def _ask(question: str) -> str:
    # The question goes to stderr so that stdout stays clean for --json.
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline()


def confirm(question: str, read: Callable[[str], str] = _ask) -> bool:
    """Ask a yes/no question; anything but y/yes (including end of input) is no."""
    try:
        answer = read(f"{question} [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")
