"""Retry: re-send a call whose failure is transient, on the same target.

Policy (DESIGN.md section 4):

* Only errors whose ``retryable`` is true: 429, 408, 409, 5xx, 529 overloaded,
  connect/read timeouts and connection resets. A 400, 401, 404, an open
  breaker or our own limiter's refusal are final here (fallback may move on).
* The wait is the provider's ``retry-after-ms`` / ``retry-after`` (already
  parsed into ``error.retry_after``), exactly; when the server asks for more
  than ``max_retry_after`` seconds we stop retrying this target at once
  rather than wait less than asked (it would only fail again) or stall the
  caller. Without a hint: jittered exponential backoff.
* The call's deadline bounds attempts plus waits: when the next wait would
  reach the deadline, the last error is raised instead of sleeping.
* ``max_retries`` per client, or per call (``complete(..., max_retries=0)``);
  0 disables.
* ``Timeouts.first_event``: when the call has fallbacks, a stream that missed
  its first event is not retried here, so fallback moves on at once (a slow
  provider hands over in ``first_event`` seconds); without, it is retried.
* Streams: the endpoint hands up a stream only once its first event arrived,
  so a retry here can only happen before the caller saw anything. Failures
  after that surface from iteration as StreamInterruptedError and are never
  retried.

The loop is tenacity's ``AsyncRetrying``. It is only built after a first
retryable failure, so the happy path costs a try/except and nothing else
(building and driving AsyncRetrying costs ~14 µs per call, measured), and
tenacity itself is imported then too, so a client that never retries never
imports it (cold start).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import (
    ClientRateLimitError,
    ConfigurationError,
    ProviderError,
    RequestTimeoutError,
    StreamInterruptedError,
)
from ..hooks import Hooks
from ..state.base import Clock, Sleep

if TYPE_CHECKING:
    from tenacity import RetryCallState
    from tenacity.wait import wait_base

    from ..pipeline import Call, Next, Outcome


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff knobs (``max_retries`` lives on the client and the call)."""

    initial: float = 0.5  # first backoff, doubling per retry
    max_wait: float = 8.0  # backoff ceiling (before jitter)
    jitter: float = 0.5  # up to this many seconds added at random
    max_retry_after: float = 60.0  # a longer server-requested wait ends retrying

    def __post_init__(self) -> None:
        for name in ("initial", "max_wait", "jitter", "max_retry_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigurationError(
                    f"RetryPolicy.{name} must be a number >= 0, got {value!r}")


def check_max_retries(value: Any, where: str = "max_retries") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{where} must be an int >= 0, got {value!r}")
    return value


def is_retryable(error: BaseException) -> bool:
    return (isinstance(error, ProviderError) and error.retryable
            and not isinstance(error, StreamInterruptedError))


def _hands_over(error: BaseException) -> bool:
    """A missed first event: with fallbacks, the next target rather than a retry."""
    return isinstance(error, RequestTimeoutError) and error.limit == "first_event"


class Retry:
    """Middleware: retry retryable failures of one target (see module docstring)."""

    __slots__ = ("_backoff", "_clock", "_hooks", "_sleep", "max_retries", "policy")

    def __init__(self, max_retries: int = 2, policy: RetryPolicy | None = None, *,
                 hooks: Hooks | None = None, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.max_retries = check_max_retries(max_retries)
        self.policy = policy or RetryPolicy()
        self._hooks = hooks
        self._clock = clock
        self._sleep = sleep
        self._backoff: wait_base | None = None  # built with the first retry

    def __repr__(self) -> str:
        return f"Retry(max_retries={self.max_retries}, policy={self.policy!r})"

    async def __call__(self, call: Call, next: Next) -> Outcome:
        try:
            return await next(call)
        except ProviderError as e:
            if not is_retryable(e) or (call.fallbacks and _hands_over(e)):
                raise
            retries = self._retries_for(call)
            if retries == 0:
                raise
            first = e
        return await self._again(call, next, first, retries)

    def _retries_for(self, call: Call) -> int:
        value = call.options.get("max_retries")
        if value is None:
            return self.max_retries
        return check_max_retries(value, "max_retries (per call)")

    def wait_for(self, state: RetryCallState) -> float:
        """The server's retry-after when it sent one, else jittered backoff."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, ProviderError) and error.retry_after is not None:
            return max(error.retry_after, 0.0)
        if self._backoff is None:
            from tenacity import wait_exponential, wait_random
            p = self.policy
            # The classic jittered exponential recipe from tenacity's own docs.
            self._backoff = (wait_exponential(multiplier=p.initial, max=p.max_wait)
                             + wait_random(0, p.jitter))
        return float(self._backoff(state))

    async def _again(self, call: Call, next: Next, first: ProviderError,
                     retries: int) -> Outcome:
        from tenacity import AsyncRetrying, retry_if_exception
        clock, deadline = self._clock, call.deadline
        cap = self.policy.max_retry_after
        retryable = is_retryable if not call.fallbacks else (
            lambda error: is_retryable(error) and not _hands_over(error))

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number > retries:
                return True
            error = state.outcome.exception() if state.outcome else None
            after = getattr(error, "retry_after", None)
            if after is not None and after > cap:
                return True  # the server wants longer than we will wait
            # Never sleep into the deadline: raise the last error instead.
            return deadline is not None and deadline - clock() <= state.upcoming_sleep

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            if self._hooks is not None and isinstance(error, ProviderError):
                from ..events import RetryScheduled
                self._hooks.emit(RetryScheduled(call.target.name, state.attempt_number + 1,
                                                state.upcoming_sleep, error))

        retrying = AsyncRetrying(
            sleep=self._sleep, stop=stop, wait=self.wait_for,
            retry=retry_if_exception(retryable), before_sleep=before_sleep, reraise=True,
        )
        pending: ProviderError | None = first
        last: ProviderError = first
        try:
            async for attempt in retrying:
                with attempt:
                    if pending is not None:
                        # Attempt 1 already failed before tenacity was built: replay
                        # its error so tenacity's numbering, waits and stops stay exact.
                        error, pending = pending, None
                        _raise(error)
                    try:
                        return await next(call)
                    except ProviderError as e:
                        if not isinstance(e, ClientRateLimitError):
                            last = e
                        raise
        except ClientRateLimitError as refusal:
            # Our own limiter refused the retry: the call failed with the provider's
            # error (which the breaker must count, and the caller must see), not
            # with the refusal, which only says why it was not tried again.
            last.add_note(f"modelwire: a retry was not sent: {refusal}")
            raise last from None
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


def _raise(error: BaseException) -> NoReturn:
    raise error
