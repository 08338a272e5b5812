"""The CLI package's rooms: one plugin manager (import cycles are checked for every package in tests/test_layers.py)."""

from __future__ import annotations

import grimp

CLI = "superlinear.frontends.cli"


def _graph():
    # grimp reads every import statement, those inside functions too: a cycle cannot hide behind one.
    return grimp.build_graph("superlinear.frontends", "superlinear.plugins", cache_dir=None)


def test_the_plugin_manager_is_built_in_one_place_and_made_only_by_main():
    graph = _graph()
    assert graph.find_modules_that_directly_import(f"{CLI}.registry") == {f"{CLI}.main"}
    builders = {m for m in graph.find_descendants(CLI)
                for d in graph.get_import_details(importer=m, imported="superlinear.plugins")
                if "build_plugin_manager" in d["line_contents"]}
    assert builders == {f"{CLI}.registry"}
