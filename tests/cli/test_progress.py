"""Progress shows on terminals only."""

from __future__ import annotations

import io
import time

from superlinear.frontends.cli.infra.progress import byte_bar, spinner


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_the_ingest_bar_draws_on_a_terminal_and_stays_quiet_on_a_pipe():
    tty, pipe = FakeTerminal(), io.StringIO()
    for stream in (tty, pipe):
        with byte_bar(8192, "ingest", enabled=True, stream=stream) as advance:
            advance(4096)
            time.sleep(0.2)
    assert "ingest:" in tty.getvalue() and "4.0/8.0 KiB" in tty.getvalue() and "50%" in tty.getvalue()
    assert pipe.getvalue() == ""
    quiet = FakeTerminal()
    with byte_bar(10, "ingest", enabled=False, stream=quiet) as advance:
        advance(10)
    assert quiet.getvalue() == ""


def test_the_spinner_shows_elapsed_time_on_a_terminal_and_clears_its_line():
    tty = FakeTerminal()
    with spinner("saving", stream=tty, interval=0.01):
        time.sleep(0.1)
    drawn = tty.getvalue()
    assert "saving" in drawn and "0:00:00" in drawn  # the label and the elapsed time
    assert drawn.endswith("\r\x1b[1A\x1b[2K"), repr(drawn[-40:])  # back up to the spinner's line and clear it
    pipe = io.StringIO()
    with spinner("saving", stream=pipe):
        pass
    assert pipe.getvalue() == ""


def test_the_live_thinking_line_fits_wide_characters_in_its_columns():
    from superlinear.frontends.cli.infra.terminal import cell_width, fit_tail

    assert [cell_width(c) for c in "a風\u0301"] == [1, 2, 0]
    assert cell_width("\u200b") == 0 and cell_width("\U0001F600") == 2  # zero-width space, an emoji
    assert fit_tail("abc風見町", 5) == "見町" and fit_tail("abc風見町", 7) == "c風見町"
    assert fit_tail("abc", 10) == "abc"


def test_no_echo_is_a_no_op_without_a_terminal():
    from superlinear.frontends.cli.infra.terminal import no_echo

    with no_echo(io.StringIO()):
        pass


def test_the_prefill_bar_counts_tokens_and_chunks_from_the_session_info():
    from superlinear.frontends.cli.infra.progress import prefill_watch

    reports = iter([None, {"done": 0, "total": 46000, "chunks_done": 0, "chunks_total": 6},
                    {"done": 16384, "total": 46000, "chunks_done": 2, "chunks_total": 6,
                     "tokens_per_second": 512.4, "seconds_left": 58.0}])
    seen = []

    def read():
        item = next(reports, None)
        seen.append(item)
        if item is None and len(seen) > 3:
            raise ConnectionError("the server went away")  # a failing poll is skipped, not raised
        return item

    tty, pipe = FakeTerminal(), io.StringIO()
    with prefill_watch(read, "notes.md", enabled=True, interval=0.01, stream=tty):
        while len(seen) < 6:
            time.sleep(0.01)
    out = tty.getvalue()
    assert "notes.md:" in out and "16,384/46,000 tok" in out and "36%" in out
    assert "512 tok/s, 58s left, chunk 2/6" in out
    with prefill_watch(read, "notes.md", enabled=True, interval=0.01, stream=pipe):
        time.sleep(0.05)
    assert pipe.getvalue() == ""


def test_prefill_text_humanises_the_progress_field():
    from superlinear.frontends.cli.infra.output import prefill_text

    assert prefill_text(None) == "-"
    text = prefill_text({"done": 12288, "total": 46000, "chunks_done": 3, "chunks_total": 6,
                         "tokens_per_second": 512.4, "seconds_left": 65.8})
    assert text == "12,288 / 46,000 tokens (27%), chunk 3/6, 512 tok/s, 66s left"
