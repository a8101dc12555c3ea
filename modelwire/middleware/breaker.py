"""Circuit breaker per target (provider + base URL + model: ``Target.key``).

It counts *calls*, not attempts: it sits outside the retry middleware, so a
call that needed two retries and then failed counts as one failure, and one
that recovered on a retry counts as a success. Defaults (``BreakerPolicy()``):
open after 5 consecutive failed calls, or when at least half of the calls in
the last 60 s failed once 20 calls were seen; stay open 30 s; then let one
probe request through (without retries).

::

    closed --(N consecutive failed calls, or failure rate >= R over the window
              once at least M calls were seen)--> open
    open   --(cool-down passed)--> half-open: up to P probes go through
    half-open --(a probe succeeds)--> closed    --(a probe fails)--> open again

While open, calls are rejected at once with CircuitOpenError (no traffic, so
fallback moves on in microseconds instead of after retries); ``retry_after``
on that error is the cool-down left, and its message says which target,
why it opened and how to tune or disable the breaker. A lone primary is
protected too.

What counts: only provider-side failures, i.e. retryable errors (429, 408,
409, 5xx, 529, timeouts, connection errors) and answers we cannot decode
(MalformedResponseError: a 200 of garbage is no answer). A 4xx that is the
caller's fault (400, 401, 404, ...) proves the provider answered, so it counts
as a success; failures that never reached the provider (our own rate limiter,
configuration errors, cancellation) count as nothing. A stream counts when it
ends: a success with its final response, a failure when it is cut or turns
malformed mid-way (the cause decides, as above), nothing when the caller
closes it early.

State lives in a StateStore (``MemoryStore`` by default; a shared store
gives every process the same breaker).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Literal

from ..errors import (
    CircuitOpenError,
    ClientRateLimitError,
    ConfigurationError,
    MalformedResponseError,
    ProviderError,
    StreamInterruptedError,
)
from ..hooks import Hooks
from ..response import Response
from ..state.base import StateStore
from ..state.memory import MemoryStore
from .gate import PREPAID

if TYPE_CHECKING:
    from ..events import BreakerClosed, BreakerOpened
    from ..pipeline import Call, Next, Outcome, Target
    from .ratelimit import RateLimiter

State = Literal["closed", "open", "half-open"]
_BUCKETS = 10  # the failure-rate window is kept as this many counters


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failures: int = 5  # consecutive failed calls (each after its retries) that open it
    failure_rate: float | None = 0.5  # or this share of calls failing (None: off) ...
    window: float = 60.0  # ... over this many seconds ...
    min_calls: int = 20  # ... once at least this many calls were seen
    cooldown: float = 30.0  # seconds open before probing
    half_open_probes: int = 1  # probes allowed at once while half-open (sent without retries)

    def __post_init__(self) -> None:
        def bad(name: str, want: str) -> ConfigurationError:
            return ConfigurationError(
                f"BreakerPolicy.{name} must be {want}, got {getattr(self, name)!r}")
        for name in ("failures", "min_calls", "half_open_probes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(name, "an int >= 1")
        for name in ("window", "cooldown"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise bad(name, "a number > 0")
        r = self.failure_rate
        if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float))
                              or not 0 < r <= 1):
            raise bad("failure_rate", "None or a number in (0, 1]")


class Verdict(Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"


def verdict(error: BaseException | None) -> Verdict:
    """How a failed call counts for the breaker (see module docstring)."""
    if isinstance(error, StreamInterruptedError):  # cut mid-way: its cause decides
        cause = error.cause
        return verdict(cause) if isinstance(cause, ProviderError) else Verdict.FAILURE
    if not isinstance(error, ProviderError) or isinstance(
            error, (ClientRateLimitError, CircuitOpenError)):
        return Verdict.NEUTRAL
    if error.retryable or isinstance(error, MalformedResponseError):
        return Verdict.FAILURE
    return Verdict.SUCCESS if error.status is not None else Verdict.NEUTRAL


class Breaker:
    """Middleware: one circuit per ``Target.key``. ``call.options["breaker"] = False``
    bypasses it for one call."""

    __slots__ = ("_bucket_len", "_hooks", "_reasons", "_seen", "limiter", "policy", "store")

    def __init__(self, policy: BreakerPolicy | None = None, *, store: StateStore | None = None,
                 hooks: Hooks | None = None) -> None:
        self.policy = policy or BreakerPolicy()
        self.store: StateStore = store if store is not None else MemoryStore()
        self._hooks = hooks
        self._bucket_len = self.policy.window / _BUCKETS
        self._seen: dict[str, str] = {}  # Target.key -> Target.name, for state()
        self._reasons: dict[str, str] = {}  # Target.key -> why it last opened (this process)
        # Set by default_middleware when the limiter shares this store and the store
        # has ``gate``: the breaker then asks for the limiter's windows in its read.
        self.limiter: RateLimiter | None = None

    def __repr__(self) -> str:
        return f"Breaker({self.policy!r})"

    async def __call__(self, call: Call, next: Next) -> Outcome:
        if call.options.get("breaker") is False:
            return await next(call)
        target = call.target
        prepaid = None
        if self.limiter is not None and (windows := self.limiter.windows_for(call)):
            # One round trip: the breaker's state and the limiter's windows together.
            if target.key not in self._seen:
                self._seen[target.key] = target.name
            opened, wait = await self.store.gate(f"cb|{target.key}|open", windows)  # type: ignore[attr-defined]
            probe = None if opened is None else await self._admit(target)
            if opened is None:
                prepaid = PREPAID.set((call, wait))
        else:
            probe = await self._admit(target)
        if probe is not None and call.options.get("max_retries") != 0:
            # A probe is one request: retrying it would only hammer a sick target.
            call = replace(call, options={**call.options, "max_retries": 0})
        try:
            outcome = await next(call)
        except BaseException as e:
            await self._record(target, probe, verdict(e))
            raise
        finally:
            if prepaid is not None:
                PREPAID.reset(prepaid)
        if isinstance(outcome, Response):
            await self._record(target, probe, Verdict.SUCCESS)
        else:  # a stream counts when it ends (see the module docstring)
            async def ended(end: Response | ProviderError | None) -> None:
                await self._record(target, probe, Verdict.SUCCESS if isinstance(end, Response)
                                   else verdict(end))
            outcome.on_end.append(ended)
        return outcome

    # --- state ----------------------------------------------------------------

    async def state(self, target: Target | str) -> State:
        """``closed``, ``open`` or ``half-open`` for a Target (or its ``key``)."""
        key = target if isinstance(target, str) else target.key
        opened = await self.store.get(f"cb|{key}|open")
        if opened is None:
            return "closed"
        return "open" if self.store.clock() - opened < self.policy.cooldown else "half-open"

    async def states(self) -> dict[str, State]:
        """State of every target this process has sent through the breaker, keyed
        by ``Target.key`` (``provider/model`` names may repeat across base URLs)."""
        return {key: await self.state(key) for key in self._seen}

    def seen(self) -> dict[str, str]:
        """``Target.key`` -> ``provider/model`` for every target seen by this process."""
        return dict(self._seen)

    # --- internals ------------------------------------------------------------

    async def _admit(self, target: Target) -> float | None:
        """None for a normal call, the open-generation stamp for a probe; or raise."""
        key = target.key
        if key not in self._seen:
            self._seen[key] = target.name
        store = self.store
        opened = await store.get(f"cb|{key}|open")
        if opened is None:
            return None
        left = opened + self.policy.cooldown - store.clock()
        if left > 0:
            raise self._rejection(
                target, f"open for another {left:.3g}s (then a probe request is let through)",
                left)
        probes = f"cb|{key}|probes|{opened!r}"
        ttl = self.policy.cooldown + self.policy.window
        if await store.incr(probes, 1, ttl) > self.policy.half_open_probes:
            await store.incr(probes, -1, ttl)
            raise self._rejection(target, "half-open and its probe is in flight", None)
        if await store.add(f"cb|{key}|announced|{opened!r}", 1, ttl) and self._hooks:
            from ..events import BreakerHalfOpen  # events are imported when first emitted
            self._hooks.emit(BreakerHalfOpen(target.name))
        return opened

    def _rejection(self, target: Target, state: str, left: float | None) -> CircuitOpenError:
        reason = self._reasons.get(target.key, "it kept failing")
        return CircuitOpenError(
            f"circuit breaker for {target.name} is {state}; no request was sent. "
            f"It opened because {reason}. Tune it with "
            f"breaker=BreakerPolicy(failures=..., cooldown=...), or turn it off with "
            f"breaker=False (on the client, or per call)",
            provider=target.provider, model=target.model, retry_after=left,
        )

    async def _record(self, target: Target, probe: float | None, outcome: Verdict) -> None:
        store, key = self.store, target.key
        if outcome is Verdict.NEUTRAL:
            if probe is not None:  # release the probe slot for the next caller
                await store.incr(f"cb|{key}|probes|{probe!r}", -1)
            return
        now = store.clock()
        failed = outcome is Verdict.FAILURE
        if probe is not None:
            from ..events import BreakerClosed, BreakerOpened
            if failed:
                await store.set(f"cb|{key}|open", now)  # a new generation: new probes
                self._reasons[key] = "the half-open probe failed"
                self._emit(BreakerOpened(target.name, "the half-open probe failed"))
            else:
                await store.delete(f"cb|{key}|open", f"cb|{key}|consecutive",
                                   *self._bucket_keys(key, now))
                self._emit(BreakerClosed(target.name))
            return
        policy = self.policy
        bucket = math.floor(now / self._bucket_len)
        rate_on = policy.failure_rate is not None
        ttl = policy.window + self._bucket_len
        record = getattr(store, "record", None)
        if record is not None:  # one round trip for the whole outcome
            counters = [(f"cb|{key}|n|{bucket}", 1.0, ttl)] if rate_on else []
            if not failed:  # nobody waits for a success: a store may send it later
                await getattr(store, "defer_record", record)(
                    counters, [f"cb|{key}|consecutive"])
                return
            if rate_on:
                counters.append((f"cb|{key}|f|{bucket}", 1.0, ttl))
            streak = (await record([*counters, (f"cb|{key}|consecutive", 1.0, None)]))[-1]
        else:
            if rate_on:
                await store.incr(f"cb|{key}|n|{bucket}", 1, ttl)
            if not failed:
                await store.delete(f"cb|{key}|consecutive")
                return
            if rate_on:
                await store.incr(f"cb|{key}|f|{bucket}", 1, ttl)
            streak = await store.incr(f"cb|{key}|consecutive")
        reason = ""
        if streak >= policy.failures:
            n = int(streak)
            reason = f"{n} consecutive calls failed" if n > 1 else "a call failed"
        if rate_on and not reason:
            reason = await self._rate_reason(key, now)
        if reason and await store.add(f"cb|{key}|open", now):
            from ..events import BreakerOpened
            self._reasons[key] = reason
            self._emit(BreakerOpened(target.name, reason))

    def _bucket_keys(self, key: str, now: float) -> list[str]:
        last = math.floor(now / self._bucket_len)
        return [f"cb|{key}|{kind}|{b}" for kind in ("n", "f")
                for b in range(last - _BUCKETS + 1, last + 1)]

    async def _rate_reason(self, key: str, now: float) -> str:
        values = await self.store.get_many(self._bucket_keys(key, now))
        calls = sum(v or 0.0 for v in values[:_BUCKETS])
        fails = sum(v or 0.0 for v in values[_BUCKETS:])
        rate = self.policy.failure_rate
        if rate is None or calls < self.policy.min_calls or fails / calls < rate:
            return ""
        return f"{int(fails)} of {int(calls)} calls failed in {self.policy.window:g}s"

    def _emit(self, event: BreakerOpened | BreakerClosed) -> None:
        if self._hooks is not None:
            self._hooks.emit(event)
