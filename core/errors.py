"""Domain errors. Frontends map each kind to a status code and an error object."""

from __future__ import annotations

__all__ = [
    "SuperlinearError",
    "InvalidRequest",
    "NotFound",
    "Conflict",
    "SessionBusy",
    "ContextLengthExceeded",
    "InsufficientMemory",
    "InsufficientStorage",
    "SnapshotError",
    "ModelMismatch",
]


class SuperlinearError(Exception):
    """Base of every error the core raises on purpose."""

    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(SuperlinearError):
    """The caller asked for something malformed or unsupported."""


class NotFound(SuperlinearError):
    """No session or snapshot with that id."""

    code = "not_found"


class Conflict(SuperlinearError):
    """The request conflicts with existing state (an id exists, a model differs)."""

    code = "conflict"


class SessionBusy(Conflict):
    """Another turn of the same session is in flight."""

    code = "session_busy"


class ContextLengthExceeded(InvalidRequest):
    """The prompt and completion would not fit the session's maximum length."""

    code = "context_length_exceeded"


class InsufficientMemory(SuperlinearError):
    """Nothing can be freed to fit the request."""

    code = "insufficient_memory"


class InsufficientStorage(SuperlinearError):
    """The disk is full: nothing was written, and what was there before is intact."""

    code = "insufficient_storage"


class SnapshotError(SuperlinearError):
    """A snapshot is corrupt, truncated, of an unknown schema or for another model."""

    code = "invalid_snapshot"


class ModelMismatch(Conflict):
    """A snapshot was made with another model, tokenizer or kernel configuration."""

    code = "model_mismatch"
