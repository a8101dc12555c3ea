"""Shared state for breakers and rate limits: the StateStore protocol and its
in-memory implementation (a Redis one can drop in for several processes)."""

from .base import Clock, Sleep, StateStore
from .memory import MemoryStore

__all__ = ["Clock", "MemoryStore", "Sleep", "StateStore"]
