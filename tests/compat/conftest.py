"""The published ``superlinear`` 0.1.0 wheel, downloaded once and read as source (never imported).

``published_wheel()`` returns the wheel's path, downloading it with pip into ``~/.cache/superlinear-tests``
on first use (None when the package index cannot be reached). ``PublishedSource`` resolves a public name
of a published module to the ``ast`` of the function that really defines its signature: names re-exported
from other modules are followed, and ``def f(*args, **kwargs): return g(*args, **kwargs)`` forwarders
are followed to ``g``.
"""

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "superlinear-tests" / "published"
REQUIREMENT = "superlinear==0.1.0"


def published_wheel() -> Path | None:
    """Return the cached published wheel, downloading it first if needed; None if that fails."""
    found = sorted(CACHE.glob("superlinear-0.1.0-*.whl"))
    if found:
        return found[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", REQUIREMENT, "-d", str(CACHE)]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=180)
    except (subprocess.SubprocessError, OSError):
        return None
    found = sorted(CACHE.glob("superlinear-0.1.0-*.whl"))
    return found[0] if found else None


class PublishedSource:
    """The Python sources of the published wheel, by dotted module name."""

    def __init__(self, wheel: Path):
        with zipfile.ZipFile(wheel) as archive:
            self.files = {
                name[:-3].replace("/", ".").removesuffix(".__init__"): archive.read(name).decode()
                for name in archive.namelist()
                if name.endswith(".py")
            }
        self.packages = {
            name[:-12].replace("/", ".")
            for name in zipfile.ZipFile(wheel).namelist()
            if name.endswith("/__init__.py")
        }
        self._trees: dict[str, ast.Module] = {}

    def tree(self, module: str) -> ast.Module:
        """Return the parsed module."""
        if module not in self._trees:
            self._trees[module] = ast.parse(self.files[module])
        return self._trees[module]

    def all_names(self, module: str) -> list[str]:
        """Return the module's ``__all__``."""
        for node in self.tree(module).body:
            if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "__all__" for t in node.targets
            ):
                return list(ast.literal_eval(node.value))
        raise LookupError(f"{module} has no __all__")

    def definition(self, module: str, name: str) -> tuple[str, ast.AST]:
        """Return (module, node) of the def or class that ``name`` in ``module`` finally stands for."""
        tree = self.tree(module)
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                target = _forward_target(node)
                return self.definition(*self._where(module, target, node)) if target else (module, node)
        return self._imported(module, tree.body, name)

    def constant(self, module: str, name: str):
        """Return the value of a module-level constant (following imports)."""
        tree = self.tree(module)
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
                return ast.literal_eval(node.value)
        source, original = self._import_of(module, tree.body, name)
        return self.constant(source, original)

    def _where(self, module: str, target: str, function: ast.FunctionDef) -> tuple[str, str]:
        # A forwarder may import its target inside the body (``from ._impl import f as _impl``).
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if (alias.asname or alias.name) == target:
                        return self._resolve(module, node), alias.name
        return module, target

    def _imported(self, module, body, name):
        source, original = self._import_of(module, body, name)
        return self.definition(source, original)

    def _import_of(self, module, body, name) -> tuple[str, str]:
        for node in body:
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        return self._resolve(module, node), alias.name
        raise LookupError(f"{name} not found in {module}")

    def _resolve(self, module: str, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module
        package = module if module in self.packages else module.rsplit(".", 1)[0]
        for _ in range(node.level - 1):
            package = package.rsplit(".", 1)[0]
        return f"{package}.{node.module}" if node.module else package


def _forward_target(node: ast.AST) -> str | None:
    """The callee of a pure ``*args, **kwargs`` forwarder, else None."""
    if not isinstance(node, ast.FunctionDef):
        return None
    args = node.args
    if args.args or args.kwonlyargs or args.posonlyargs or not (args.vararg and args.kwarg):
        return None
    for statement in node.body:
        if isinstance(statement, ast.Return) and isinstance(statement.value, ast.Call):
            func = statement.value.func
            if isinstance(func, ast.Name):
                return func.id
    return None


@pytest.fixture(scope="session")
def published_source() -> PublishedSource:
    """The published wheel's sources; the test is skipped (saying why) when the index is unreachable."""
    wheel = published_wheel()
    if wheel is None:
        pytest.skip(f"cannot download {REQUIREMENT} from the package index (needed to read its API)")
    return PublishedSource(wheel)
