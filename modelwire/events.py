"""The events :class:`~modelwire.hooks.Hooks` delivers (also importable from
``modelwire.hooks``). Imported only when one is emitted, so a call that never
retries, falls back or trips a breaker never pays for defining them.

Events name targets as ``provider/model`` and errors by class, message and
the provider's request id: never a key, a header or a request body.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar, Union

from .errors import ProviderError


def _describe(error: BaseException) -> str:
    if not isinstance(error, ProviderError):
        return f"{type(error).__name__}: {error}"
    rid = f" (request id {error.request_id})" if error.request_id else ""
    return f"{type(error).__name__}: {error.message}{rid}"


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    level: ClassVar[int] = logging.INFO  # what Hooks logs it at
    target: str  # "provider/model"
    attempt: int  # the attempt about to be made (2 is the first retry)
    wait: float  # seconds before it
    error: ProviderError  # why the previous attempt failed

    def describe(self) -> str:
        return (f"retrying {self.target} (attempt {self.attempt}) in {self.wait:.3f}s "
                f"after {_describe(self.error)}")


@dataclass(frozen=True, slots=True)
class FallbackTaken:
    level: ClassVar[int] = logging.INFO  # what Hooks logs it at
    from_target: str
    to_target: str
    error: ProviderError

    def describe(self) -> str:
        return (f"falling back from {self.from_target} to {self.to_target} "
                f"after {_describe(self.error)}")


@dataclass(frozen=True, slots=True)
class BreakerOpened:
    level: ClassVar[int] = logging.INFO  # what Hooks logs it at
    target: str
    reason: str = ""

    def describe(self) -> str:
        return f"circuit breaker for {self.target} opened: {self.reason}"


@dataclass(frozen=True, slots=True)
class BreakerHalfOpen:
    level: ClassVar[int] = logging.INFO  # what Hooks logs it at
    target: str

    def describe(self) -> str:
        return f"circuit breaker for {self.target} half-open: sending a probe"


@dataclass(frozen=True, slots=True)
class BreakerClosed:
    level: ClassVar[int] = logging.INFO  # what Hooks logs it at
    target: str

    def describe(self) -> str:
        return f"circuit breaker for {self.target} closed: the probe succeeded"


@dataclass(frozen=True, slots=True)
class RateLimitWait:
    level: ClassVar[int] = logging.DEBUG  # what Hooks logs it at
    target: str
    seconds: float

    def describe(self) -> str:
        return f"client-side rate limit for {self.target}: waiting {self.seconds:.3f}s"


Event = Union[
    RetryScheduled, FallbackTaken, BreakerOpened, BreakerHalfOpen, BreakerClosed, RateLimitWait
]
