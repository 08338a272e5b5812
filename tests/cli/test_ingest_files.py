"""What /add picks up: globs, folders, refusals of binary, non-UTF-8, empty and too many files."""

from __future__ import annotations

import hashlib
import time

import pytest

from superlinear.frontends.cli.docs.files import NotText, TooManyFiles, expand_paths, read_document


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.txt").write_text("alpha")
    (tmp_path / "docs" / "sub" / "b.md").write_text("beta")
    (tmp_path / "docs" / ".hidden").write_text("secret")
    (tmp_path / "docs" / ".git").mkdir()
    (tmp_path / "docs" / ".git" / "config").write_text("x")
    return tmp_path


def test_folders_are_walked_recursively_skipping_hidden_entries(tree):
    files, problems = expand_paths([str(tree / "docs")], max_files=10)
    assert [f.name for f in files] == ["a.txt", "b.md"]
    assert problems == []


def test_globs_expand_and_duplicates_are_dropped(tree):
    files, _ = expand_paths([str(tree / "docs" / "**" / "*.md"), str(tree / "docs" / "sub" / "b.md")], 10)
    assert [f.name for f in files] == ["b.md"]


def test_missing_paths_and_empty_globs_are_reported(tree):
    files, problems = expand_paths([str(tree / "nope.txt"), str(tree / "*.pdf")], 10)
    assert files == []
    assert problems == [f"no such file or directory: {tree / 'nope.txt'}", f"no files match {tree / '*.pdf'}"]


def test_a_folder_of_a_thousand_files_is_refused_at_once(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(1000):
        (folder / f"f{i:04}.txt").write_text(f"file {i}")
    start = time.monotonic()
    with pytest.raises(TooManyFiles, match="more than 200 files.*--max-files"):
        expand_paths([str(folder)], max_files=200)
    assert time.monotonic() - start < 2.0
    files, _ = expand_paths([str(folder)], max_files=1000)
    assert len(files) == 1000


def test_text_files_are_read_with_size_and_sha256(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffÖstergarn\n".encode())
    doc = read_document(path)
    assert doc.text == "Östergarn\n"
    assert doc.bytes == path.stat().st_size
    assert doc.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("data", "reason"), [
    (b"\x7fELF\x00\x01binary", "binary file"),
    (b"caf\xe9 latin-1", "not UTF-8"),
    (b"  \n\n", "empty"),
])
def test_binary_non_utf8_and_empty_files_are_refused(tmp_path, data, reason):
    path = tmp_path / "f"
    path.write_bytes(data)
    with pytest.raises(NotText, match=reason):
        read_document(path)
