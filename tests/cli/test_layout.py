"""The CLI package's rooms: no import cycles (function-level imports included) and one plugin manager."""

from __future__ import annotations

import grimp

CLI = "superlinear.frontends.cli"


def _graph():
    # grimp reads every import statement, those inside functions too: a cycle cannot hide behind one.
    return grimp.build_graph("superlinear.frontends", "superlinear.plugins", cache_dir=None)


def _cycle(graph, modules: set[str]) -> list[str] | None:
    """Return one import cycle among `modules` (as a path that ends where it starts), or None."""
    done: set[str] = set()
    for start in sorted(modules):
        stack, path, on_path = [(start, iter(sorted(graph.find_modules_directly_imported_by(start) & modules)))], \
            [start], {start}
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                return path[path.index(child):] + [child]
            elif child not in done:
                stack.append((child, iter(sorted(graph.find_modules_directly_imported_by(child) & modules))))
                path.append(child)
                on_path.add(child)
    return None


def test_no_module_of_the_cli_takes_part_in_an_import_cycle():
    graph = _graph()
    # The package itself is left out: importing any submodule runs it first, and it re-exports main and Repl.
    modules = {m for m in graph.find_descendants(CLI)} - {CLI}
    assert len(modules) > 30
    assert _cycle(graph, modules) is None, " -> ".join(_cycle(graph, modules))


def test_the_cycle_finder_finds_a_cycle():
    class Graph:
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

        def find_modules_directly_imported_by(self, m):
            return self.edges.get(m, set())

    assert _cycle(Graph(), {"a", "b", "c", "d"}) == ["a", "b", "c", "a"]
    Graph.edges["c"] = set()
    assert _cycle(Graph(), {"a", "b", "c", "d"}) is None


def test_the_plugin_manager_is_built_in_one_place_and_made_only_by_main():
    graph = _graph()
    assert graph.find_modules_that_directly_import(f"{CLI}.registry") == {f"{CLI}.main"}
    builders = {m for m in graph.find_descendants(CLI)
                for d in graph.get_import_details(importer=m, imported="superlinear.plugins")
                if "build_plugin_manager" in d["line_contents"]}
    assert builders == {f"{CLI}.registry"}
