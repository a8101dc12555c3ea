"""Middleware: retry, fallback, breaker, rate limits. ``default_middleware`` builds the chain.

The default chain, outermost first:
``Metrics > ResponseCache > Fallback > Budget > Breaker > Retry > RateLimiter``
(the cache only with ``cache=``; Budget passes calls straight through until a
budget applies, and prices each target as fallback tries it: a free local model
first and a paid fallback after is refused only if the fallback would pass the
budget; the rate limiter only with ``rate_limits=``). So a cache hit is seen by
metrics but charges no budget and sends nothing; the breaker counts calls, not
attempts (a call that failed after its retries is one failure; an open breaker
rejects the call before any attempt and fallback moves on); retries happen per
target; and the limiter sits next to the wire so a refused call never spends
quota. Client keywords:

* ``max_retries=2`` (a client argument; per call too). 0 disables retries.
* ``retry=RetryPolicy(...)``: backoff and the longest Retry-After honoured.
* ``breaker=True | False | BreakerPolicy(...)``: on by default (None means default).
* ``rate_limits={"openai/gpt-4o-mini": RateLimit(rpm=..., tpm=...)}``: off unless given.
* ``state=StateStore``: where breaker and limiter state live (default: in memory).
* ``cache=True | MemoryCache() | DiskCache() | RedisCache(url) | ResponseCache(...)``:
  the response cache (off unless given); per call ``cache=True | False``.
* ``hooks=Hooks | callback | [callbacks]``: observability (``client.hooks``).
* ``metrics=True | False | MetricsCollector``: ``client.metrics`` (on by default), fed
  by the outermost middleware and the hooks above.
* ``budget=Budget(...) | [Budget, ...]``: USD / token limits over a period (per client,
  or per tag with ``Budget(tag=...)``); per call ``budget=`` and ``tags=`` too.
  ``client.budget_status()`` says what each has spent this period.
* ``otel=True | OpenTelemetry(...)``: GenAI spans and metrics (the ``otel`` extra), off
  unless given; outermost of all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..hooks import Hooks, coerce_hooks
from ..state.base import StateStore
from ..state.memory import MemoryStore
from .breaker import Breaker, BreakerPolicy
from .fallback import Fallback, moves_on
from .retry import Retry, RetryPolicy

if TYPE_CHECKING:
    from ..client import AsyncClient
    from ..pipeline import Middleware
    from .cache import ResponseCache
    from .ratelimit import LimitsBackend, RateLimit, RateLimiter, StoreBackend

_LAZY = {"LimitsBackend", "RateLimit", "RateLimiter", "StoreBackend"}


def __getattr__(name: str) -> Any:
    # The rate limiter is imported only when asked for: a client without
    # rate_limits= never pays for it (cold start).
    if name in _LAZY:
        from . import ratelimit
        return getattr(ratelimit, name)
    if name == "ResponseCache":  # likewise a client without cache=
        from .cache import ResponseCache
        return ResponseCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Breaker", "BreakerPolicy", "Fallback", "Hooks", "LimitsBackend", "RateLimit",
    "RateLimiter", "ResponseCache", "Retry", "RetryPolicy", "StoreBackend",
    "default_middleware", "find", "link_gate", "moves_on",
]

_OPTIONS = ("breaker", "budget", "cache", "hooks", "metrics", "otel", "rate_limits", "retry",
            "state")


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
    chain: list[Middleware] = [Fallback(hooks=hooks)]

    breaker = options.get("breaker")
    if breaker is None or breaker is True or isinstance(breaker, BreakerPolicy):
        policy = breaker if isinstance(breaker, BreakerPolicy) else None
        chain.append(Breaker(policy, store=store, hooks=hooks))
    elif breaker is not False:
        raise ConfigurationError(
            f"breaker= must be True, False or a BreakerPolicy, got {breaker!r}")
    chain.append(Retry(client.max_retries, retry, hooks=hooks))

    rate_limits = options.get("rate_limits")
    if rate_limits is not None:
        from .ratelimit import LimitsBackend, RateLimiter, StoreBackend
        backend = StoreBackend(store) if state is not None else LimitsBackend()
        chain.append(RateLimiter(rate_limits, backend=backend, hooks=hooks))
        link_gate(chain)

    # Budget just inside fallback; then the outer layers: cache, metrics, OpenTelemetry.
    from ..observe.budget import BudgetMiddleware, coerce_budgets
    budget = options.get("budget")
    budgets = BudgetMiddleware([] if budget is None else coerce_budgets(budget), store)
    client.budgets = budgets
    # inside Fallback: each target tried is reserved at its own price
    chain.insert(1, budgets)  # type: ignore[arg-type]  # returns next's awaitable as is
    cache = options.get("cache")
    if cache is not None and cache is not False:
        from .cache import ResponseCache
        chain.insert(0, cache if isinstance(cache, ResponseCache)
                     else ResponseCache(None if cache is True else cache))
    metrics = options.get("metrics", True)
    if metrics is not None and metrics is not False:
        from ..observe.metrics import MetricsCollector, MetricsMiddleware
        if metrics is True:
            metrics = MetricsCollector()
        elif not isinstance(metrics, MetricsCollector):
            raise ConfigurationError(
                f"metrics= must be True, False or a MetricsCollector, got {metrics!r}")
        client.metrics = metrics
        hooks.subscribe(metrics.on_event)
        chain.insert(0, MetricsMiddleware(metrics))
    otel = options.get("otel")
    if otel is not None and otel is not False:
        from ..observe.otel import OpenTelemetry
        if otel is True:
            otel = OpenTelemetry()
        elif not isinstance(otel, OpenTelemetry):
            raise ConfigurationError(
                f"otel= must be True, False or a modelwire.observe.otel.OpenTelemetry, "
                f"got {otel!r}")
        hooks.subscribe(otel.on_event)
        chain.insert(0, otel)
    return chain


def link_gate(chain: list[Middleware]) -> None:
    """Let the breaker read its state and take the limiter's windows in one store
    round trip (``StateStore.gate``) when both share a store that has it."""
    from .ratelimit import RateLimiter, StoreBackend
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

