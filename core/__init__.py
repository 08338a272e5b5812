"""The core: domain values, ports and use cases, in pure Python (stdlib + attrs)."""

from .engine import Engine, TurnCancelled, TurnHandle
from .errors import (
    Conflict,
    ContextLengthExceeded,
    ExceedsMemoryBudget,
    InsufficientMemory,
    InsufficientStorage,
    InvalidRequest,
    ModelMismatch,
    NotFound,
    SessionBusy,
    SnapshotError,
    SuperlinearError,
)
from .ids import validate_id
from .memory import MemoryManager
from .session import Session
from .sessions import SessionService
from .snapshots import PublishedSource, SnapshotService
from .turn import PreparedTurn, TurnRunner
from .values import (
    ChatRequest,
    Message,
    ModelInfo,
    PrefillProgress,
    RepetitionParams,
    SamplingParams,
    SessionInfo,
    SnapshotInfo,
    StreamEvent,
    TokenLogprob,
    Usage,
)

__all__ = [
    "ChatRequest",
    "Conflict",
    "ContextLengthExceeded",
    "Engine",
    "ExceedsMemoryBudget",
    "InsufficientMemory",
    "InsufficientStorage",
    "InvalidRequest",
    "Message",
    "ModelInfo",
    "PrefillProgress",
    "MemoryManager",
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
    "PublishedSource",
    "SnapshotService",
    "StreamEvent",
    "SuperlinearError",
    "TurnCancelled",
    "TurnHandle",
    "TurnRunner",
    "TokenLogprob",
    "Usage",
    "validate_id",
]
