"""Client-side rate limits per target: requests and tokens per minute.

``AsyncClient(rate_limits={"openai/gpt-4o-mini": RateLimit(rpm=500, tpm=200_000)})``
(a key may also be a bare provider, ``"groq"``: each of its models then gets
that limit). Targets without a configured limit pass straight through.

Before a call: one request, plus an estimate of its tokens (input text
length / 4, plus ``max_tokens`` or ``RateLimit.output_tokens`` for the
output). A call without capacity waits, up to its deadline (or ``max_wait``),
then raises ClientRateLimitError without touching the network; when the wait
needed is already known to be longer than that, it raises at once. Once the
provider reports usage, the window is corrected by the difference (charged
more, or refunded): at once for ``complete()``, at the stream's end for streams
(through ``AsyncStream.on_finish``).

Two interchangeable backends (the seam is :class:`LimiterBackend`):

* :class:`LimitsBackend` (the default) runs on the ``limits`` library:
  moving window for requests (exact), sliding-window counter for tokens
  (O(1) whatever the count; the moving window stores one entry per unit,
  which is hopeless at 200,000 tokens a minute). ``limits`` has no refund
  operation, so corrections are kept as a per-target balance settled on the
  next call. It reads ``time.time()`` internally and cannot take a clock.
* :class:`StoreBackend` keeps an exact weighted window log in the client's
  StateStore (used when ``state=`` is passed), so a shared store shares one
  quota across processes and a fake clock makes tests exact.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ClientRateLimitError, ConfigurationError
from ..events import RateLimitWait
from ..hooks import Hooks
from ..response import Response
from ..state.base import Clock, Sleep, StateStore
from ..types import ImagePart
from .gate import PREPAID

if TYPE_CHECKING:
    from ..pipeline import Call, Next, Outcome, Target

WINDOW = 60.0  # seconds: every limit here is "per minute"

_IMAGE_TOKENS = 800  # a rough per-image input estimate (a 1024px image is ~765)
_EPSILON = 0.001  # `limits` counts an entry through the end of its window inclusive


@dataclass(frozen=True, slots=True)
class RateLimit:
    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens per minute (input + output)
    output_tokens: int = 1024  # output estimate for calls without max_tokens
    max_wait: float | None = None  # wait at most this long (None: up to the deadline)

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigurationError(f"RateLimit.{name} must be None or an int >= 1, got {v!r}")
        if self.rpm is None and self.tpm is None:
            raise ConfigurationError("RateLimit needs rpm=, tpm= or both")
        o = self.output_tokens
        if isinstance(o, bool) or not isinstance(o, int) or o < 0:
            raise ConfigurationError(f"RateLimit.output_tokens must be an int >= 0, got {o!r}")
        w = self.max_wait
        if w is not None and (isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0):
            raise ConfigurationError(f"RateLimit.max_wait must be None or >= 0, got {w!r}")


def estimate_tokens(call: Call, output_default: int) -> int:
    """Input characters / 4 (rounded up) plus the output allowance."""
    chars = len(call.prompt or "")
    images = 0
    for m in call.messages:
        if isinstance(m.content, str):
            chars += len(m.content)
        else:
            for part in m.content:
                if isinstance(part, ImagePart):
                    images += 1
                else:
                    chars += len(part.text)
        for tc in m.tool_calls:
            chars += len(tc.name) + len(tc.raw_arguments)
    for tool in call.tools:
        chars += len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters))
    output = call.max_tokens if call.max_tokens is not None else output_default
    return math.ceil(chars / 4) + images * _IMAGE_TOKENS + output


class LimiterBackend(Protocol):
    async def acquire(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> float:
        """Take one request and ``tokens`` tokens, all or nothing. 0.0 when granted,
        else the seconds until they may fit (``math.inf``: never)."""
        ...

    async def adjust_tokens(self, key: str, tpm: int, delta: int) -> None:
        """Charge ``delta`` more tokens (or refund, if negative) after the fact."""
        ...


class StoreBackend:
    """Exact window logs in a StateStore (shared, clock-injectable). ``window``
    is the period every limit counts over (60 s: "per minute"; tests shorten it)."""

    __slots__ = ("store", "window")

    def __init__(self, store: StateStore, *, window: float = WINDOW) -> None:
        if isinstance(window, bool) or not isinstance(window, (int, float)) or window <= 0:
            raise ConfigurationError(f"StoreBackend window must be seconds > 0, got {window!r}")
        self.store = store
        self.window = float(window)

    async def acquire(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> float:
        store, window = self.store, self.window
        if tpm is not None:
            wait = await store.window_acquire(f"rl|{key}|tokens", tpm, window, tokens)
            if wait:
                return wait
        if rpm is not None:
            wait = await store.window_acquire(f"rl|{key}|requests", rpm, window, 1)
            if wait:
                if tpm is not None and tokens:  # all or nothing: give the tokens back
                    await store.window_adjust(f"rl|{key}|tokens", window, -tokens)
                return wait
        return 0.0

    async def adjust_tokens(self, key: str, tpm: int, delta: int) -> None:
        await self.store.window_adjust(f"rl|{key}|tokens", self.window, delta)


class LimitsBackend:
    """The ``limits`` library: pass ``storage=`` any of its async storages
    (e.g. its Redis storage) to share limits across processes."""

    __slots__ = ("_balance", "_clock", "_items", "_requests", "_storage", "_tokens")

    def __init__(self, storage: Any = None, *, clock: Clock = time.time) -> None:
        from limits.aio.storage import MemoryStorage
        from limits.aio.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
        self._storage = storage if storage is not None else MemoryStorage()
        self._requests = MovingWindowRateLimiter(self._storage)
        self._tokens = SlidingWindowCounterRateLimiter(self._storage)
        self._items: dict[tuple[str, int], Any] = {}
        self._balance: dict[str, int] = {}  # tokens owed (> 0) or credited (< 0)
        self._clock = clock  # must be the clock `limits` reads (time.time)

    def _item(self, kind: str, amount: int) -> Any:
        item = self._items.get((kind, amount))
        if item is None:
            from limits import RateLimitItemPerMinute
            item = self._items[(kind, amount)] = RateLimitItemPerMinute(
                amount, namespace=f"modelwire-{kind}")
        return item

    async def acquire(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> float:
        if tpm is not None and tokens > tpm:
            return math.inf
        requests = self._item("rpm", rpm) if rpm is not None else None
        if requests is not None and not await self._requests.test(requests, key):
            return await self._requests_wait(requests, key)
        charge = 0
        owed = self._balance.get(key, 0)
        if tpm is not None:
            item = self._item("tpm", tpm)
            charge = min(max(tokens + owed, 0), tpm)
            if charge and not await self._tokens.hit(item, key, cost=charge):
                return await self._tokens_wait(item, key, charge)
            self._balance[key] = tokens + owed - charge
        if requests is not None and not await self._requests.hit(requests, key):
            # Lost a race since test(): the tokens just taken become a credit.
            self._balance[key] = owed - charge
            return await self._requests_wait(requests, key)
        return 0.0

    async def adjust_tokens(self, key: str, tpm: int, delta: int) -> None:
        if delta > 0 and await self._tokens.hit(self._item("tpm", tpm), key, cost=delta):
            return
        self._balance[key] = self._balance.get(key, 0) + delta

    async def _requests_wait(self, item: Any, key: str) -> float:
        stats = await self._requests.get_window_stats(item, key)
        return max(float(stats.reset_time) - self._clock(), 0.0) + _EPSILON

    async def _tokens_wait(self, item: Any, key: str, charge: int) -> float:
        # The sliding-window counter weighs the previous window's count by the
        # share of it still inside the last minute; solve for when it fits.
        prev, prev_ttl, cur, cur_ttl = await self._storage.get_sliding_window(
            item.key_for(key), item.get_expiry())
        limit, w = item.amount, float(item.get_expiry())
        if cur + charge <= limit:
            wait = prev_ttl - (limit - charge - cur) * w / prev if prev else 0.0
        else:  # only once the current window has rolled over and decayed enough
            wait = (cur_ttl - w) + w - (limit - charge) * w / cur
        return max(wait, 0.0) + _EPSILON


class RateLimiter:
    """Middleware: wait for per-target capacity, then send (see module docstring)."""

    __slots__ = ("_backend", "_clock", "_hooks", "_limits", "_resolved", "_sleep")

    def __init__(self, limits: Mapping[str, RateLimit | Mapping[str, Any]], *,
                 backend: LimiterBackend | None = None, hooks: Hooks | None = None,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self._limits = _check_limits(limits)
        self._backend: LimiterBackend = backend if backend is not None else LimitsBackend()
        self._hooks = hooks
        self._clock = clock
        self._sleep = sleep
        self._resolved: dict[str, RateLimit | None] = {}

    def __repr__(self) -> str:
        return f"RateLimiter({self._limits!r})"

    def limit_for(self, target: Target) -> RateLimit | None:
        key = target.key
        if key not in self._resolved:
            self._resolved[key] = self._limits.get(target.name) or self._limits.get(
                target.provider)
        return self._resolved[key]

    async def __call__(self, call: Call, next: Next) -> Outcome:
        limit = self.limit_for(call.target)
        if limit is None:
            return await next(call)
        tokens = estimate_tokens(call, limit.output_tokens) if limit.tpm is not None else 0
        prepaid = PREPAID.get()
        if prepaid is not None and prepaid[0] is call:
            PREPAID.set(None)
            if prepaid[1] > 0:
                await self._acquire(call, limit, tokens, prepaid[1])
        else:
            await self._acquire(call, limit, tokens)
        outcome = await next(call)
        if limit.tpm is not None:
            tpm = limit.tpm

            async def correct(response: Response) -> None:
                usage = response.usage
                if usage.source == "reported":
                    actual = usage.total_tokens or (
                        (usage.input_tokens or 0) + (usage.output_tokens or 0))
                    if actual != tokens:
                        await self._backend.adjust_tokens(call.target.key, tpm, actual - tokens)

            if isinstance(outcome, Response):
                await correct(outcome)
            else:  # a stream's usage arrives at its end
                outcome.on_finish.append(correct)
        return outcome

    def windows_for(self, call: Call) -> list[tuple[str, float, float, float]]:
        """This call's ``StateStore.gate`` windows (empty: not limited, or the backend
        is not a StoreBackend)."""
        limit = self.limit_for(call.target)
        backend = self._backend
        if limit is None or not isinstance(backend, StoreBackend):
            return []
        key, window = call.target.key, backend.window
        out: list[tuple[str, float, float, float]] = []
        if limit.tpm is not None:
            out.append((f"rl|{key}|tokens", limit.tpm, window,
                        estimate_tokens(call, limit.output_tokens)))
        if limit.rpm is not None:
            out.append((f"rl|{key}|requests", limit.rpm, window, 1))
        return out

    @property
    def backend(self) -> LimiterBackend:
        return self._backend

    async def _acquire(self, call: Call, limit: RateLimit, tokens: int,
                       first: float | None = None) -> None:
        target, clock = call.target, self._clock
        started = clock()
        while True:
            if first is not None:
                wait, first = first, None
            else:
                wait = await self._backend.acquire(target.key, limit.rpm, limit.tpm, tokens)
            if wait <= 0:
                return
            if wait == math.inf:
                raise ClientRateLimitError(
                    f"this call's estimated {tokens} tokens exceed the client-side limit of "
                    f"{limit.tpm} tokens per minute for {target.name}; no request was sent",
                    provider=target.provider, model=target.model)
            now = clock()
            left = None if call.deadline is None else call.deadline - now
            if limit.max_wait is not None:
                waited_left = limit.max_wait - (now - started)
                left = waited_left if left is None else min(left, waited_left)
            if left is not None and wait > left:
                raise ClientRateLimitError(
                    f"client-side rate limit for {target.name} ({_describe(limit)}) has no "
                    f"capacity for {wait:.3g}s, longer than this call may wait "
                    f"({max(left, 0.0):.3g}s); no request was sent",
                    provider=target.provider, model=target.model, retry_after=wait)
            if self._hooks is not None:
                self._hooks.emit(RateLimitWait(target.name, wait))
            await self._sleep(wait)


def _describe(limit: RateLimit) -> str:
    parts = [f"{limit.rpm} requests/min" if limit.rpm else "",
             f"{limit.tpm} tokens/min" if limit.tpm else ""]
    return ", ".join(p for p in parts if p)


def _check_limits(limits: Any) -> dict[str, RateLimit]:
    if not isinstance(limits, Mapping):
        raise ConfigurationError(
            f"rate_limits= must map model ids to RateLimit, got {type(limits).__name__}")
    out: dict[str, RateLimit] = {}
    for name, value in limits.items():
        if not isinstance(name, str) or not name or name.startswith("/"):
            raise ConfigurationError(
                f"rate_limits keys are '<provider>/<model>' or '<provider>', got {name!r}")
        if isinstance(value, Mapping):
            try:
                value = RateLimit(**value)
            except TypeError as e:
                raise ConfigurationError(f"rate_limits[{name!r}]: {e}") from None
        if not isinstance(value, RateLimit):
            raise ConfigurationError(
                f"rate_limits[{name!r}] must be a RateLimit, got {type(value).__name__}")
        out[name] = value
    return out
