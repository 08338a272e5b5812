"""The hexagon's dependency rules, checked by import-linter on the installed package."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_layer_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed (it comes with the dev extra)")
    result = subprocess.run([exe, str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


PACKAGES = ("core", "kernels", "adapters", "storage", "plugins", "frontends")


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted; [] when acyclic."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = stack[stack.index(node):]
                    del stack[stack.index(node):]
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in stack:
                low[node] = min(low[node], index[child])
    return found


def test_no_module_takes_part_in_an_import_cycle():
    grimp = pytest.importorskip("grimp")  # comes with import-linter
    # Every import statement counts: those inside functions and under TYPE_CHECKING too, so a cycle cannot
    # hide behind either. Packages count as modules (an __init__ that re-exports is an edge).
    graph = grimp.build_graph(*(f"superlinear.{p}" for p in PACKAGES), cache_dir=None,
                              exclude_type_checking_imports=False)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & graph.modules for m in graph.modules}
    assert len(edges) > 150
    assert _cycles(edges) == []


def test_the_cycle_finder_finds_every_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}
    assert sorted(_cycles(edges)) == [["a", "b", "c"], ["d", "e"]]
    edges["c"] = set()
    edges["e"] = set()
    assert _cycles(edges) == []


def _relative_imports_leaving_their_package(root: Path) -> list[str]:
    """`file:line` of each relative import whose target lies outside the file's own top-level package."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            depth = len(path.relative_to(root).parts) - 1  # folders between the root and the file
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                # Level L climbs L - 1 packages from the file's package, `depth` deep: past the top at L > depth.
                if isinstance(node, ast.ImportFrom) and node.level > depth:
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_imports_across_top_level_packages_are_absolute():
    # `from ..core.errors import X` in adapters/ becomes `from superlinear.core.errors import X`; relative
    # imports stay within one package, so a reader (and grep) can follow every import.
    assert _relative_imports_leaving_their_package(ROOT) == []
