"""The documents the kernels cite exist in the repository, and the sections they cite exist in them."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITATION = re.compile(r"docs/[\w.-]+\.md")
STEPS = re.compile(r"docs/attention\.md,? (?:steps? )?(\d)(?:-(\d))?")


def _sources() -> list[Path]:
    return sorted((ROOT / "kernels").rglob("*.py"))


def test_every_cited_document_exists():
    cited = {name for path in _sources() for name in CITATION.findall(path.read_text(encoding="utf-8"))}
    assert "docs/attention.md" in cited
    assert all((ROOT / name).is_file() for name in cited), sorted(
        n for n in cited if not (ROOT / n).is_file()
    )


def test_every_cited_step_of_the_attention_math_is_defined():
    text = (ROOT / "docs/attention.md").read_text(encoding="utf-8")
    defined = {int(n) for n in re.findall(r"^(\d)\. \*\*", text, flags=re.MULTILINE)}
    assert defined == set(range(1, 8))
    for path in _sources():
        for first, last in STEPS.findall(path.read_text(encoding="utf-8")):
            steps = range(int(first), int(last or first) + 1)
            assert set(steps) <= defined, f"{path.name} cites steps {first}-{last} of docs/attention.md"


def test_no_kernel_cites_the_design_notes_outside_the_repository():
    assert not [p.name for p in _sources() if re.search(r"(?<!docs/)\bATTENTION\.md", p.read_text("utf-8"))]
