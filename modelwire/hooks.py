"""Observability hooks: a tiny event bus for what the resilience middleware does.

``client.hooks.subscribe(callback)`` and the callback receives every event
(:mod:`modelwire.events`, also importable from here: retry scheduled,
fallback taken, breaker transitions, rate-limit waits) as it happens, for
metrics or logs. Callbacks run inline on the event
loop, so keep them quick; one that raises is logged and never breaks a call.

Every event is also logged through the stdlib logger ``"modelwire"``
(INFO for retries, fallbacks and breaker transitions, DEBUG for rate-limit
waits), and each request at DEBUG (:func:`log_request`). Events name
targets as ``provider/model`` and errors by class, message and request id:
never a key (keys appear masked, ``sk-…a1b2``), a header or a request body.

``MODELWIRE_LOG=debug`` (or info, warning, ...) in the environment turns that
logging on without code: a stderr handler on the ``modelwire`` logger, set up
when modelwire is imported (:func:`configure_logging`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .events import BreakerClosed as BreakerClosed
    from .events import BreakerHalfOpen as BreakerHalfOpen
    from .events import BreakerOpened as BreakerOpened
    from .events import Event as Event
    from .events import FallbackTaken as FallbackTaken
    from .events import RateLimitWait as RateLimitWait
    from .events import RetryScheduled as RetryScheduled

logger = logging.getLogger("modelwire")

_EVENTS = {"BreakerClosed", "BreakerHalfOpen", "BreakerOpened", "Event", "FallbackTaken",
           "RateLimitWait", "RetryScheduled"}


def __getattr__(name: str) -> Any:
    if name in _EVENTS:  # defined in .events, imported on first use
        from . import events
        return getattr(events, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


Callback = Callable[["Event"], object]


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
        level = event.level
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


def mask_key(key: str | None) -> str:
    """A key as logs may show it: ``sk-…a1b2`` (short ones ``***``), or ``none``."""
    if not key:
        return "none"
    return f"{key[:3]}…{key[-4:]}" if len(key) >= 16 else "***"


def log_request(target: Any, outcome: str, seconds: float, request_id: str | None) -> None:
    """One DEBUG line per request: target, outcome, time, request id, masked key."""
    key = target.api_key
    if key and request_id and key in request_id:  # a server that echoes the key back
        request_id = request_id.replace(key, "[redacted]")
    logger.debug("%s %s in %.3fs (request id %s, base %s, key %s)", target.name, outcome,
                 seconds, request_id or "-", target.base_url, mask_key(key))


_HANDLER_MARK = "_modelwire_handler"


def configure_logging(level: int | str | None = None, fmt: str | None = None) -> None:
    """Send the ``modelwire`` logger to stderr at ``level`` (default: ``$MODELWIRE_LOG``;
    nothing when neither is set). Called at import; the CLI's ``-v`` calls it too.
    Replaces a handler an earlier call installed, never one you added."""
    if level is None:
        level = os.environ.get("MODELWIRE_LOG") or None
        if level is None:
            return
    if isinstance(level, str):
        name = level.strip().upper()
        resolved = logging.getLevelName(name)
        if not isinstance(resolved, int):
            logger.warning("MODELWIRE_LOG=%r is not a logging level (debug, info, warning, "
                           "error); ignored", level)
            return
        level = resolved
    for h in list(logger.handlers):
        if getattr(h, _HANDLER_MARK, False):
            logger.removeHandler(h)
    handler = logging.StreamHandler()
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(logging.Formatter(
        fmt or "%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)


configure_logging()
