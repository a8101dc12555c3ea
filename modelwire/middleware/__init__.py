"""Middleware: retry, fallback, breaker, rate limits. ``default_middleware`` builds the chain.

The default chain, outermost first: ``ResponseCache > Fallback > Retry > Breaker >
RateLimiter`` (the cache only when ``cache=`` is given, the rate limiter only
when ``rate_limits=`` is given). So retries happen per
target, each attempt passes the breaker (an open one ends retrying at once and
fallback moves on), and the limiter sits next to the wire so a rejected or
refused call never spends quota. Client keywords:

* ``max_retries=2`` (a client argument; per call too). 0 disables retries.
* ``retry=RetryPolicy(...)``: backoff and the longest Retry-After honoured.
* ``breaker=True | False | BreakerPolicy(...)``: on by default (None means default).
* ``rate_limits={"openai/gpt-4o-mini": RateLimit(rpm=..., tpm=...)}``: off unless given.
* ``state=StateStore``: where breaker and limiter state live (default: in memory).
* ``cache=True | MemoryCache() | DiskCache() | RedisCache(url) | ResponseCache(...)``:
  the response cache (off unless given); per call ``cache=True | False``.
* ``hooks=Hooks | callback | [callbacks]``: observability (``client.hooks``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..hooks import Hooks, coerce_hooks
from ..state.base import StateStore
from ..state.memory import MemoryStore
from .breaker import Breaker, BreakerPolicy
from .cache import ResponseCache
from .fallback import Fallback, moves_on
from .ratelimit import LimitsBackend, RateLimit, RateLimiter, StoreBackend
from .retry import Retry, RetryPolicy

if TYPE_CHECKING:
    from ..client import AsyncClient
    from ..pipeline import Middleware

__all__ = [
    "Breaker", "BreakerPolicy", "Fallback", "Hooks", "LimitsBackend", "RateLimit",
    "RateLimiter", "ResponseCache", "Retry", "RetryPolicy", "StoreBackend",
    "default_middleware", "find", "link_gate", "moves_on",
]

_OPTIONS = ("breaker", "cache", "hooks", "rate_limits", "retry", "state")


def default_middleware(client: AsyncClient, **options: Any) -> list[Middleware]:
    """The chain a client gets when it passes no ``middleware=``.

    Also sets ``client.hooks`` (the :class:`~modelwire.hooks.Hooks` every layer emits to).
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(
            f"unexpected client options: {', '.join(unknown)} "
            f"(resilience options are: max_retries, {', '.join(_OPTIONS)})")
    hooks = coerce_hooks(options.get("hooks"))
    client.hooks = hooks
    state = options.get("state")
    if state is not None and not isinstance(state, StateStore):
        raise ConfigurationError(
            f"state= must implement modelwire.state.StateStore, got {type(state).__name__}")
    store: StateStore = state if state is not None else MemoryStore()

    retry = options.get("retry")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigurationError(f"retry= must be a RetryPolicy, got {type(retry).__name__}")
    chain: list[Middleware] = [
        Fallback(hooks=hooks),
        Retry(client.max_retries, retry, hooks=hooks),
    ]
    cache = options.get("cache")
    if cache is not None and cache is not False:
        chain.insert(0, cache if isinstance(cache, ResponseCache)
                     else ResponseCache(None if cache is True else cache))

    breaker = options.get("breaker")
    if breaker is None or breaker is True or isinstance(breaker, BreakerPolicy):
        policy = breaker if isinstance(breaker, BreakerPolicy) else None
        chain.append(Breaker(policy, store=store, hooks=hooks))
    elif breaker is not False:
        raise ConfigurationError(
            f"breaker= must be True, False or a BreakerPolicy, got {breaker!r}")

    rate_limits = options.get("rate_limits")
    if rate_limits is not None:
        backend = StoreBackend(store) if state is not None else LimitsBackend()
        limiter = RateLimiter(rate_limits, backend=backend, hooks=hooks)
        chain.append(limiter)
        link_gate(chain)
    return chain


def link_gate(chain: list[Middleware]) -> None:
    """Let the breaker read its state and take the limiter's windows in one store
    round trip (``StateStore.gate``) when both share a store that has it."""
    breaker, limiter = find(chain, Breaker), find(chain, RateLimiter)
    if (breaker is not None and limiter is not None
            and isinstance(limiter.backend, StoreBackend)
            and limiter.backend.store is breaker.store and hasattr(breaker.store, "gate")):
        breaker.limiter = limiter


def find(middleware: list[Middleware] | tuple[Middleware, ...], kind: type[Any]) -> Any:
    """The first middleware of ``kind`` in a chain, or None (health uses it)."""
    for mw in middleware:
        if isinstance(mw, kind):
            return mw
    return None

