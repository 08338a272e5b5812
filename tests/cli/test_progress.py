"""Progress shows on terminals only."""

from __future__ import annotations

import io
import time

from superlinear.frontends.cli.progress import byte_bar, spinner


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_the_ingest_bar_draws_on_a_terminal_and_stays_quiet_on_a_pipe():
    tty, pipe = FakeTerminal(), io.StringIO()
    for stream in (tty, pipe):
        with byte_bar(4096, "ingest", enabled=True, stream=stream) as bar:
            bar.update(4096)
    assert "ingest:" in tty.getvalue() and "/4.00k" in tty.getvalue()
    assert pipe.getvalue() == ""
    quiet = FakeTerminal()
    with byte_bar(10, "ingest", enabled=False, stream=quiet) as bar:
        bar.update(10)
    assert quiet.getvalue() == ""


def test_the_spinner_shows_elapsed_time_on_a_terminal_and_clears_its_line():
    tty = FakeTerminal()
    with spinner("saving", stream=tty, interval=0.01):
        time.sleep(0.1)
    assert "saving" in tty.getvalue() and tty.getvalue().endswith("\r\x1b[K")
    pipe = io.StringIO()
    with spinner("saving", stream=pipe):
        pass
    assert pipe.getvalue() == ""


def test_the_live_thinking_line_fits_wide_characters_in_its_columns():
    from superlinear.frontends.cli.terminal import cell_width, fit_tail

    assert [cell_width(c) for c in "a風\u0301"] == [1, 2, 0]
    assert fit_tail("abc風見町", 5) == "見町" and fit_tail("abc風見町", 7) == "c風見町"
    assert fit_tail("abc", 10) == "abc"


def test_no_echo_is_a_no_op_without_a_terminal():
    from superlinear.frontends.cli.terminal import no_echo

    with no_echo(io.StringIO()):
        pass
