"""Model sources: local directories, hub repo ids fetched through a fake, and the offline HF cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

from superlinear.adapters import hub
from superlinear.adapters.hub import ALLOW_PATTERNS, ModelNotCached, ModelSourceError, resolve_model_dir

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_model_files(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"model_type": "nemotron_h"}), encoding="utf-8")
    (directory / "model.safetensors").write_bytes(b"weights")
    return directory


def write_hf_cache(cache: Path, repo_id: str, *, with_weights: bool = True) -> Path:
    """Lay out huggingface_hub's cache: models--org--name/{refs/main, snapshots/<commit>/...}."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT, encoding="utf-8")
    snapshot = write_model_files(repo / "snapshots" / COMMIT)
    if not with_weights:
        (snapshot / "model.safetensors").unlink()
    return snapshot


class FakeDownload:
    """Stands in for snapshot_download: records the call and returns a prepared snapshot folder."""

    def __init__(self, folder: Path | None = None, error: Exception | None = None):
        self.folder, self.error, self.calls = folder, error, []

    def __call__(self, repo_id, **kwargs):
        self.calls.append((repo_id, kwargs))
        if self.error is not None:
            raise self.error
        return str(self.folder)


def test_a_local_directory_is_used_as_is(tmp_path):
    model = write_model_files(tmp_path / "model")
    assert resolve_model_dir(model) == model.resolve()
    assert resolve_model_dir(str(model)) == model.resolve()


def test_a_local_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ModelSourceError, match="has no config.json"):
        resolve_model_dir(tmp_path)


def test_a_missing_path_is_not_mistaken_for_a_repo_id(tmp_path):
    with pytest.raises(ModelSourceError, match="no such directory"):
        resolve_model_dir(str(tmp_path / "nope"))


def test_an_invalid_repo_id_is_refused_before_any_download(monkeypatch):
    fake = FakeDownload()
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    with pytest.raises(ModelSourceError, match="neither a local directory nor a hub repo id"):
        resolve_model_dir("org/bad name!")
    assert fake.calls == []


def test_a_repo_id_is_fetched_with_the_engine_patterns_revision_and_cache_dir(tmp_path, monkeypatch):
    fake = FakeDownload(write_model_files(tmp_path / "snap"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    path = resolve_model_dir("org/model", revision="v1", cache_dir=tmp_path / "cache", offline=False)
    assert path == tmp_path / "snap"
    ((repo_id, kwargs),) = fake.calls
    assert repo_id == "org/model"
    assert kwargs["revision"] == "v1" and kwargs["cache_dir"] == str(tmp_path / "cache")
    assert kwargs["local_files_only"] is False
    assert set(kwargs["allow_patterns"]) == set(ALLOW_PATTERNS)
    assert {"config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json"} <= set(
        ALLOW_PATTERNS
    )


def test_hf_hub_offline_turns_on_local_files_only(tmp_path, monkeypatch):
    fake = FakeDownload(write_model_files(tmp_path / "snap"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    resolve_model_dir("org/model")
    assert fake.calls[0][1]["local_files_only"] is True


def test_a_repo_missing_on_the_hub_gives_a_clear_error(tmp_path, monkeypatch):
    # Built without __init__, which wants a live HTTP response.
    error = RepositoryNotFoundError.__new__(RepositoryNotFoundError)
    Exception.__init__(error, "404 Client Error")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", FakeDownload(error=error))
    with pytest.raises(ModelSourceError, match="no such repo on the hub"):
        resolve_model_dir("org/model", offline=False)


def test_offline_a_cached_repo_resolves_through_the_real_hf_cache_layout(tmp_path):
    snapshot = write_hf_cache(tmp_path, "org/model")
    # The layout itself is what huggingface_hub reads: check it against the library before our wrapper.
    found = snapshot_download("org/model", cache_dir=str(tmp_path), local_files_only=True)
    assert Path(found) == snapshot
    assert resolve_model_dir("org/model", cache_dir=tmp_path, offline=True) == snapshot


def test_offline_a_repo_not_in_the_cache_says_so_and_how_to_fetch_it(tmp_path):
    write_hf_cache(tmp_path, "org/model")
    with pytest.raises(ModelNotCached) as err:
        resolve_model_dir("org/other", cache_dir=tmp_path, offline=True)
    message = str(err.value)
    assert "'org/other' is not (fully) in" in message and str(tmp_path) in message
    assert "HF_HUB_OFFLINE=1" in message and "spl pull org/other" in message


def test_offline_a_revision_not_in_the_cache_is_not_cached(tmp_path):
    write_hf_cache(tmp_path, "org/model")
    with pytest.raises(ModelNotCached, match="at revision 'v2'"):
        resolve_model_dir("org/model", revision="v2", cache_dir=tmp_path, offline=True)


def test_offline_a_partial_snapshot_is_refused_before_loading(tmp_path):
    write_hf_cache(tmp_path, "org/model", with_weights=False)
    with pytest.raises(ModelNotCached, match="incomplete.*spl pull org/model"):
        resolve_model_dir("org/model", cache_dir=tmp_path, offline=True)


def test_a_local_directory_never_imports_huggingface_hub(tmp_path):
    write_model_files(tmp_path / "model")
    code = (
        "import sys; from superlinear.adapters.hub import resolve_model_dir; "
        f"resolve_model_dir({str(tmp_path / 'model')!r}); print('huggingface_hub' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_model_loaded_from_the_hf_cache_is_named_by_its_repo_id(tmp_path, superlinear_dir):
    from superlinear.adapters import TorchModel

    snapshot = write_hf_cache(tmp_path, "org/model")
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).unlink()
        # The real cache links snapshot files to blobs; the loader follows the links.
        (snapshot / name).symlink_to(superlinear_dir / name)
    path = resolve_model_dir("org/model", cache_dir=tmp_path, offline=True)
    assert hub.repo_id_of_snapshot(path) == "org/model" and hub.repo_id_of_snapshot(superlinear_dir) is None
    assert TorchModel.from_dir(path).info.name == "org/model"


def test_an_unreachable_hub_with_nothing_cached_says_the_hub_could_not_be_reached(monkeypatch):
    error = LocalEntryNotFoundError("connection refused")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", FakeDownload(error=error))
    with pytest.raises(ModelNotCached) as err:
        resolve_model_dir("org/model", offline=False)
    message = str(err.value)
    assert "the hub could not be reached (connection refused)" in message and "spl pull org/model" in message
    assert "HF_HUB_OFFLINE" not in message
