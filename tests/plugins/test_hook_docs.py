"""The plugin reference documents exactly the hooks that exist."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from superlinear.plugins import hookspecs

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def hookspec_signatures() -> dict[str, str]:
    """Map each hookspec name to its call signature as the docs write it, e.g. `name(register)`."""
    specs = {}
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(function, f"{hookspecs.PROJECT_NAME}_spec"):
            params = ", ".join(inspect.signature(function).parameters)
            specs[name] = f"{name}({params})"
    return specs


def test_there_are_hookspecs_to_document():
    assert len(hookspec_signatures()) >= 6


def test_every_hookspec_has_a_section_in_the_plugin_reference():
    doc = DOC.read_text(encoding="utf-8")
    missing = [sig for sig in hookspec_signatures().values() if f"### `{sig}`" not in doc]
    assert not missing, f"docs/plugins.md lacks a section for: {missing}"


def test_the_plugin_reference_documents_no_hook_that_does_not_exist():
    documented = set(re.findall(r"^### `(superlinear_\w+)\(", DOC.read_text(encoding="utf-8"), re.M))
    assert documented == set(hookspec_signatures())


def test_every_hookspec_has_a_one_line_docstring():
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if name in hookspec_signatures():
            doc = inspect.getdoc(function) or ""
            assert doc and "\n" not in doc, name
