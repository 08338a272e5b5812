"""The core: domain values, ports and use cases, in pure Python (stdlib + attrs)."""

from .engine import Engine, TurnCancelled, TurnHandle
from .errors import (
    Conflict,
    ContextLengthExceeded,
    InsufficientMemory,
    InvalidRequest,
    ModelMismatch,
    NotFound,
    SessionBusy,
    SnapshotError,
    SuperlinearError,
)
from .session import Session
from .sessions import SessionService, validate_id
from .turn import PreparedTurn, TurnRunner
from .values import (
    ChatRequest,
    Message,
    ModelInfo,
    RepetitionParams,
    SamplingParams,
    SessionInfo,
    SnapshotInfo,
    StreamEvent,
    TurnResult,
    Usage,
)

__all__ = [
    "ChatRequest",
    "Conflict",
    "ContextLengthExceeded",
    "Engine",
    "InsufficientMemory",
    "InvalidRequest",
    "Message",
    "ModelInfo",
    "ModelMismatch",
    "NotFound",
    "PreparedTurn",
    "RepetitionParams",
    "SamplingParams",
    "Session",
    "SessionBusy",
    "SessionInfo",
    "SessionService",
    "SnapshotError",
    "SnapshotInfo",
    "StreamEvent",
    "SuperlinearError",
    "TurnCancelled",
    "TurnHandle",
    "TurnResult",
    "TurnRunner",
    "Usage",
    "validate_id",
]
