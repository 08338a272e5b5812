"""Tables and sizes as commands print them."""

from __future__ import annotations

from wcwidth import wcswidth

from superlinear.frontends.cli.infra.output import human_bytes, table


def test_a_table_aligns_columns_by_terminal_cells_and_never_cuts_a_cell():
    long_id = "session-" + "x" * 300
    out = table(("ID", "TITLE", "N"), [(long_id, "風見町", 1), ("b", "[bold]not markup[/]", 12345)])
    lines = out.splitlines()
    assert lines[1].startswith(long_id + "  ")  # a 308-character id is printed whole, not wrapped
    assert "[bold]not markup[/]" in lines[2]  # brackets are text, not rich markup
    # Every row's third column starts at the same terminal cell, though 風見町 takes 6 cells for 3 characters.
    starts = [wcswidth(line[:line.rindex(" ") + 1]) for line in lines]
    assert len(set(starts)) == 1, out
    assert all(line == line.rstrip() for line in lines) and lines[0].split() == ["ID", "TITLE", "N"]


def test_sizes_are_decimal_and_say_so():
    assert human_bytes(None) == "-"
    assert human_bytes(999) == "999 bytes"
    assert human_bytes(1_234_567) == "1.2 MB"
    assert human_bytes(8 * 10**9) == "8.0 GB"
