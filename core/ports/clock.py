"""Injected time and id sources, so tests are deterministic."""

from __future__ import annotations

import secrets
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "IdSource", "SystemClock", "RandomIds"]


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Return wall-clock seconds since the epoch."""


@runtime_checkable
class IdSource(Protocol):
    def new_id(self, prefix: str) -> str:
        """Return a fresh id that starts with `prefix`."""


class SystemClock:
    def now(self) -> float:
        return time.time()


class RandomIds:
    def new_id(self, prefix: str) -> str:
        # 32 hex digits: snapshot ids (prefix "") then have the form the published spl client expects.
        return f"{prefix}{secrets.token_hex(16)}"
