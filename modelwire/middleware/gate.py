"""The hand-off between the breaker and the rate limiter when one store round trip
serves both (``StateStore.gate``). Its own module so the breaker can use it without
importing the rate limiter (a client without ``rate_limits=`` never imports that)."""

from __future__ import annotations

import contextvars
from typing import Any

# (call, wait) when the breaker already ran this call's first acquire in its own
# store round trip; the limiter then starts from ``wait``.
PREPAID: contextvars.ContextVar[tuple[Any, float] | None] = contextvars.ContextVar(
    "modelwire_prepaid", default=None)
