"""Shared state for breakers and rate limits: the StateStore protocol, the
in-memory implementation (the default) and RedisStore (several processes or
machines; ``pip install 'modelwire[redis]'``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Clock, Sleep, StateStore
from .memory import MemoryStore

if TYPE_CHECKING:
    from .redis import RedisStore

__all__ = ["Clock", "MemoryStore", "RedisStore", "Sleep", "StateStore"]


def __getattr__(name: str) -> Any:
    if name == "RedisStore":  # lazily: keeps `import modelwire` lean
        from .redis import RedisStore
        return RedisStore
    raise AttributeError(f"module 'modelwire.state' has no attribute {name!r}")
