"""Model sources: a local checkpoint directory, or a Hugging Face hub repo fetched into the HF cache.

Only the files the engine reads are fetched (config, tokenizer, chat template, safetensors weights and
their index, generation config). `huggingface_hub` is imported when a hub repo is asked for, not before,
so a local directory never needs it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ALLOW_PATTERNS",
    "ModelSourceError",
    "ModelNotCached",
    "resolve_model_dir",
    "repo_id_of_snapshot",
    "is_offline",
]

# What a checkpoint directory needs; anything else in a repo (other formats, images, docs) stays remote.
ALLOW_PATTERNS = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "*.safetensors",
    "model.safetensors.index.json",
)


class ModelSourceError(ValueError):
    """A model spec names neither a usable local directory nor a fetchable hub repo."""


class ModelNotCached(ModelSourceError):
    """Offline (or unreachable hub), and the repo's files are not in the local HF cache."""


def resolve_model_dir(
    spec: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
) -> Path:
    """Return a local directory holding the checkpoint named by `spec`.

    A path to an existing directory is used as is. Anything else is read as a hub repo id
    (`org/name`) and fetched with `huggingface_hub.snapshot_download` into `cache_dir` (default: the
    HF cache) at `revision` (default: main), with progress bars. `offline=None` follows
    `HF_HUB_OFFLINE`; when offline only cached files are used. Raises ModelNotCached when offline and
    the files are not cached, ModelSourceError for any other unusable spec.
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        return _checked_local_dir(path)
    repo_id = str(spec)
    if _looks_like_path(repo_id):
        raise ModelSourceError(f"model {repo_id!r}: no such directory")
    _validate_repo_id(repo_id)
    offline = is_offline() if offline is None else offline
    snapshot = _download(repo_id, revision=revision, cache_dir=cache_dir, offline=offline)
    return _checked_snapshot(snapshot, repo_id, revision)


def is_offline() -> bool:
    """Say whether huggingface_hub runs offline (`HF_HUB_OFFLINE=1`, read by huggingface_hub itself)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def repo_id_of_snapshot(path: str | Path) -> str | None:
    """Return `org/name` when `path` is a snapshot in the HF cache (`models--org--name/snapshots/<rev>`)."""
    path = Path(path).resolve()
    repo = path.parent.parent.name
    if path.parent.name != "snapshots" or not repo.startswith("models--"):
        return None
    return repo.removeprefix("models--").replace("--", "/")


def _checked_local_dir(path: Path) -> Path:
    if not (path / "config.json").is_file():
        raise ModelSourceError(f"model directory {str(path)!r} has no config.json")
    return path.resolve()


def _looks_like_path(spec: str) -> bool:
    """A spec written as a path (absolute, relative with ./ or ../, home) is never a hub repo id."""
    return spec.startswith(("/", "./", "../", "~", "\\")) or spec in (".", "..") or spec.count("/") > 1


def _validate_repo_id(repo_id: str) -> None:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ModelSourceError(
            f"model {repo_id!r} is neither a local directory nor a hub repo id (org/name): {exc}"
        ) from exc


def _download(repo_id: str, *, revision: str | None, cache_dir: str | Path | None, offline: bool) -> Path:
    """Fetch (or, offline, look up) the snapshot; translate hub errors into ModelSourceError."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id!r}" + (f" at revision {revision!r}" if revision else "")
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            allow_patterns=list(ALLOW_PATTERNS),
            local_files_only=offline,
        )
    except LocalEntryNotFoundError as exc:
        raise ModelNotCached(_not_cached_message(where, repo_id, cache_dir, offline, exc)) from exc
    except GatedRepoError as exc:
        raise ModelSourceError(
            f"model {where} is gated: accept its terms on the hub and log in (`hf auth login` or HF_TOKEN)"
        ) from exc
    except RevisionNotFoundError as exc:
        raise ModelSourceError(f"model {where}: the hub has no such revision") from exc
    except RepositoryNotFoundError as exc:
        raise ModelSourceError(
            f"model {where}: no such repo on the hub "
            "(or it is private: log in with `hf auth login` or HF_TOKEN)"
        ) from exc
    return Path(folder)


def _not_cached_message(
    where: str, repo_id: str, cache_dir: str | Path | None, offline: bool, exc: Exception
) -> str:
    cache = str(cache_dir) if cache_dir is not None else "the Hugging Face cache"
    if offline:
        reason, other = "offline mode is on (HF_HUB_OFFLINE=1)", ", or unset HF_HUB_OFFLINE"
    else:
        reason, other = f"the hub could not be reached ({exc})", ""
    return (
        f"model {where} is not (fully) in {cache} and {reason}. Fetch it on a machine with network with "
        f"`spl pull {repo_id}` (then copy the cache over if that is another machine){other}."
    )


def _checked_snapshot(folder: Path, repo_id: str, revision: str | None) -> Path:
    """Refuse a partial snapshot (an interrupted download read offline) before the loader sees it."""
    has_weights = (folder / "model.safetensors").is_file() or (
        folder / "model.safetensors.index.json"
    ).is_file()
    missing = [name for name in ("config.json",) if not (folder / name).is_file()]
    if not has_weights:
        missing.append("model.safetensors or model.safetensors.index.json")
    if missing:
        pull = f"spl pull {repo_id}" + (f" --revision {revision}" if revision else "")
        raise ModelNotCached(
            f"the cached snapshot of {repo_id!r} at {folder} is incomplete (no {', '.join(missing)}); "
            f"complete it with `{pull}` on a machine with network"
        )
    return folder
