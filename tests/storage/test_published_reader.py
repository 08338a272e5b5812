"""Reading the published server's snapshot directories: pickles refused, layout named in the listing."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import pytest
import torch

from superlinear.core.errors import InvalidRequest, SnapshotError
from superlinear.storage import FilesystemSnapshotStore
from superlinear.storage.published import load_cache, read_published_snapshot


class _Touch:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def write(directory: Path, cache: object, pos: int = 3) -> Path:
    directory.mkdir(parents=True)
    torch.save(cache, directory / "cache.pt")
    (directory / "transcript.json").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}))
    (directory / "manifest.json").write_text(json.dumps({
        "schema_version": 1, "snapshot_id": "a" * 32, "created_at": 5, "session": {"current_pos": pos,
                                                                                    "max_seq_len": 64},
        "metadata": {"title": "t", "tags": ["x"]}, "files": {"transcript": "transcript.json", "cache": "cache.pt"}}))
    return directory


def test_a_published_snapshot_is_read_with_tensors_only(tmp_path):
    cache = {"cache_format": "hybrid_mamba_attention_static_v1", "current_pos": 3, "kv_layers": [1],
             "key_cache": {"1": torch.ones(1, 2, 3, 4)}, "conv_states": None}
    snap = read_published_snapshot(write(tmp_path / "s", cache))
    assert snap.snapshot_id == "a" * 32 and snap.current_pos == 3 and snap.max_seq_len == 64
    assert snap.metadata["title"] == "t" and snap.messages == [{"role": "user", "content": "hi"}]
    assert torch.equal(snap.cache["key_cache"]["1"], torch.ones(1, 2, 3, 4))


def test_a_pickled_object_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "cache.pt"
    torch.save({"current_pos": 0, "x": _Touch(marker)}, path)
    with pytest.raises(SnapshotError, match="weights_only"):
        load_cache(path)
    assert not marker.exists()
    torch.save({"x": _Touch(marker)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(SnapshotError, match="Unsupported global"):
        load_cache(path)
    # A plain pickle (not torch's format) is refused too, even of harmless contents.
    path.write_bytes(pickle.dumps({"current_pos": 0}))
    with pytest.raises(SnapshotError, match="weights_only"):
        load_cache(path)
    assert not marker.exists()


def test_torch_legacy_format_is_read_too(tmp_path):
    path = tmp_path / "cache.pt"
    torch.save({"current_pos": 1, "t": torch.arange(3)}, path, _use_new_zipfile_serialization=False)
    assert torch.equal(load_cache(path)["t"], torch.arange(3))


def test_malformed_directories_are_named(tmp_path):
    with pytest.raises(InvalidRequest, match="absolute"):
        read_published_snapshot(Path("rel"))
    with pytest.raises(InvalidRequest, match="manifest.json"):
        read_published_snapshot(tmp_path)
    d = write(tmp_path / "pos", {"current_pos": 2})
    with pytest.raises(SnapshotError, match="cache.pt holds current_pos 2, the manifest 3"):
        read_published_snapshot(d)
    d = write(tmp_path / "list", [1, 2])
    with pytest.raises(SnapshotError, match="holds a list, expected a dict"):
        read_published_snapshot(d)
    d = write(tmp_path / "esc", {"current_pos": 3})
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["files"]["cache"] = "../cache.pt"
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SnapshotError, match="files.cache must name a file in the snapshot directory"):
        read_published_snapshot(d)


def test_the_listing_points_at_import_for_published_snapshots_under_the_root(tmp_path, caplog):
    write(tmp_path / "superlinear-exp" / ("f" * 64) / ("a" * 32), {"current_pos": 3})
    with caplog.at_level(logging.WARNING):
        assert FilesystemSnapshotStore(tmp_path).list() == []
    assert "spl snapshot import" in caplog.text
