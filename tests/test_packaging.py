"""The wheel holds every package: each folder with an __init__.py under a mapped root is listed in pyproject.toml.

An editable install finds unlisted subpackages through the folder mapping, so only a built wheel (`pip install
.`) would miss one; this check catches it without building.
"""

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_for_the_wheel():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]
    found = set()
    for name, folder in setuptools["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            if "__pycache__" not in parts:
                found.add(".".join([name, *parts]))
    listed = set(setuptools["packages"])
    assert sorted(found - listed) == [], "add these to [tool.setuptools] packages"
    assert sorted(listed - found) == [], "these listed packages have no folder"
