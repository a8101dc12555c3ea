"""Observability hooks: a tiny event bus for what the resilience middleware does.

``client.hooks.subscribe(callback)`` and the callback receives every event
below as it happens (retry scheduled, fallback taken, breaker transitions,
rate-limit waits), for metrics or logs. Callbacks run inline on the event
loop, so keep them quick; one that raises is logged and never breaks a call.

Every event is also logged through the stdlib logger ``"modelwire"``
(INFO for retries, fallbacks and breaker transitions; DEBUG for rate-limit
waits). Events name targets as ``provider/model`` and errors by class and
message: never a key, a header or a request body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

from .errors import ProviderError

logger = logging.getLogger("modelwire")


def _describe(error: BaseException) -> str:
    text = error.message if isinstance(error, ProviderError) else str(error)
    return f"{type(error).__name__}: {text}"


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    target: str  # "provider/model"
    attempt: int  # the attempt about to be made (2 is the first retry)
    wait: float  # seconds before it
    error: ProviderError  # why the previous attempt failed

    def describe(self) -> str:
        return (f"retrying {self.target} (attempt {self.attempt}) in {self.wait:.3f}s "
                f"after {_describe(self.error)}")


@dataclass(frozen=True, slots=True)
class FallbackTaken:
    from_target: str
    to_target: str
    error: ProviderError

    def describe(self) -> str:
        return (f"falling back from {self.from_target} to {self.to_target} "
                f"after {_describe(self.error)}")


@dataclass(frozen=True, slots=True)
class BreakerOpened:
    target: str
    reason: str = ""

    def describe(self) -> str:
        return f"circuit breaker for {self.target} opened: {self.reason}"


@dataclass(frozen=True, slots=True)
class BreakerHalfOpen:
    target: str

    def describe(self) -> str:
        return f"circuit breaker for {self.target} half-open: sending a probe"


@dataclass(frozen=True, slots=True)
class BreakerClosed:
    target: str

    def describe(self) -> str:
        return f"circuit breaker for {self.target} closed: the probe succeeded"


@dataclass(frozen=True, slots=True)
class RateLimitWait:
    target: str
    seconds: float

    def describe(self) -> str:
        return f"client-side rate limit for {self.target}: waiting {self.seconds:.3f}s"


Event = Union[
    RetryScheduled, FallbackTaken, BreakerOpened, BreakerHalfOpen, BreakerClosed, RateLimitWait
]
Callback = Callable[[Event], object]

_LEVELS: dict[type, int] = {RateLimitWait: logging.DEBUG}


class Hooks:
    """Subscribers for resilience events. One per client."""

    __slots__ = ("_logger", "_subscribers")

    def __init__(self, logger_: logging.Logger | None = None) -> None:
        self._subscribers: list[Callback] = []
        self._logger = logger_ or logger

    def __repr__(self) -> str:
        return f"<Hooks subscribers={len(self._subscribers)}>"

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns a function that unsubscribes."""
        if not callable(callback):
            raise TypeError(f"hooks.subscribe needs a callable, got {callback!r}")
        self._subscribers.append(callback)
        return lambda: self.unsubscribe(callback)

    def unsubscribe(self, callback: Callback) -> None:
        try:
            self._subscribers.remove(callback)
        except ValueError:
            pass

    def emit(self, event: Event) -> None:
        level = _LEVELS.get(type(event), logging.INFO)
        if self._logger.isEnabledFor(level):
            self._logger.log(level, "%s", event.describe())
        for callback in tuple(self._subscribers):
            try:
                callback(event)
            except Exception:
                self._logger.exception("modelwire hook %r failed on %s",
                                       callback, type(event).__name__)


def coerce_hooks(value: object) -> Hooks:
    """``hooks=`` accepts a Hooks, a callback, a list of callbacks, or None."""
    if isinstance(value, Hooks):
        return value
    hooks = Hooks()
    if value is None:
        return hooks
    if callable(value):
        hooks.subscribe(value)
        return hooks
    if isinstance(value, (list, tuple)):
        for cb in value:
            hooks.subscribe(cb)
        return hooks
    raise TypeError(
        f"hooks= must be a modelwire.hooks.Hooks, a callable or a list of callables; "
        f"got {type(value).__name__}"
    )
