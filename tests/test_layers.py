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


def _imports_in_cycles(graph) -> list[tuple[str, str]]:
    """Every direct import (importer, imported) that lies on a cycle: the imported module leads back."""
    return sorted((m, n) for m in graph.modules for n in graph.find_modules_directly_imported_by(m)
                  if graph.chain_exists(importer=n, imported=m))


def test_no_module_takes_part_in_an_import_cycle():
    grimp = pytest.importorskip("grimp")  # comes with import-linter
    # Every import statement counts: those inside functions and under TYPE_CHECKING too, so a cycle cannot
    # hide behind either. Packages count as modules (an __init__ that re-exports is an edge).
    graph = grimp.build_graph(*(f"superlinear.{p}" for p in PACKAGES), cache_dir=None,
                              exclude_type_checking_imports=False)
    assert len(graph.modules) > 150
    assert _imports_in_cycles(graph) == []


def test_the_cycle_check_finds_every_import_on_a_cycle():
    grimp = pytest.importorskip("grimp")
    graph = grimp.ImportGraph()
    for importer, imported in [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a"), ("d", "e"), ("e", "d"), ("f", "a")]:
        graph.add_import(importer=importer, imported=imported)
    assert _imports_in_cycles(graph) == [("a", "b"), ("b", "c"), ("c", "a"), ("d", "e"), ("e", "d")]
    graph.remove_import(importer="c", imported="a")
    graph.remove_import(importer="e", imported="d")
    assert _imports_in_cycles(graph) == []


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
