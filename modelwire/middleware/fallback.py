"""Fallback: try the call's targets in order until one serves it.

Targets are ``[call.target, *call.fallbacks]`` (the client resolved the
per-call ``fallbacks=[...]`` or its default list before any traffic).

Which errors move on to the next target (:func:`moves_on`), after the inner
retry middleware has spent its retries on the current one:

============================================  ==========================================
error                                          moves on?
============================================  ==========================================
retryable: RateLimitError (429),               yes: this target is unwell right now
OverloadedError (529), ServerError (5xx),
RequestTimeoutError, ProviderConnectionError
CircuitOpenError                               yes, at once: no request was sent
ClientRateLimitError                           yes: our own quota for this target is spent
AuthenticationError, PermissionDeniedError     yes: this provider cannot serve us
NotFoundError                                  yes: the model is unknown there
ContextWindowExceededError                     yes: a later target may have a larger window
MalformedResponseError                         yes: this target sent bytes we cannot read
RedirectError (3xx), ResponseTooLargeError     yes: this target answered what we won't take
RequestTimeoutError of ``first_event``         yes, at once: retry does not retry it first
BadRequestError (any other 400/413/422)        no: the request is wrong everywhere
StreamInterruptedError                         never: the caller has already seen output
anything else (ConfigurationError, ...)        no
============================================  ==========================================

An error that does not move on is raised as it is. When every target failed,
AllTargetsFailedError holds each cause in the order tried. With no fallbacks
configured the one target's error is raised unchanged. The deadline covers
the whole sequence: once it has passed, each target not yet tried is listed
with a RequestTimeoutError and no request is sent to it.

The outcome records what was tried: ``attempts`` (``response.Attempt`` rows:
provider, model, error or None for the one that served) on the Response, or on
the AsyncStream for streams; the serving target is the last row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import (
    AllTargetsFailedError,
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ClientRateLimitError,
    ContextWindowExceededError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    RedirectError,
    RequestTimeoutError,
    ResponseTooLargeError,
    StreamInterruptedError,
)
from ..hooks import Hooks
from ..response import Attempt
from ..state.base import Clock

if TYPE_CHECKING:
    from ..pipeline import Call, Next, Outcome, Target

_MOVE_ON = (CircuitOpenError, ClientRateLimitError, AuthenticationError, PermissionDeniedError,
            NotFoundError, ContextWindowExceededError, MalformedResponseError, RedirectError,
            ResponseTooLargeError)


def moves_on(error: ProviderError) -> bool:
    """The default policy: may the next target be tried after ``error``?"""
    if isinstance(error, StreamInterruptedError):
        return False
    if isinstance(error, _MOVE_ON):
        return True
    if isinstance(error, BadRequestError):
        return False
    return error.retryable


class Fallback:
    """Middleware: the outermost resilience layer (see module docstring)."""

    __slots__ = ("_clock", "_hooks", "_policy")

    def __init__(self, *, hooks: Hooks | None = None,
                 policy: Callable[[ProviderError], bool] = moves_on,
                 clock: Clock = time.monotonic) -> None:
        self._hooks = hooks
        self._policy = policy
        self._clock = clock

    def __repr__(self) -> str:
        return "Fallback()"

    async def __call__(self, call: Call, next: Next) -> Outcome:
        target = call.target
        if not call.fallbacks:
            outcome = await next(call)
            outcome.attempts[:] = [Attempt(target.provider, target.model)]
            return outcome
        targets: list[Target] = [target, *call.fallbacks]
        errors: list[ProviderError] = []
        attempts: list[Attempt] = []
        for i, target in enumerate(targets):
            if i and call.deadline is not None and call.deadline - self._clock() <= 0:
                e = RequestTimeoutError(
                    "the call's deadline passed before this fallback could be tried",
                    provider=target.provider, model=target.model)
                errors.append(e)
                attempts.append(Attempt(target.provider, target.model,
                                        f"{type(e).__name__}: {e.message}"))
                continue
            try:
                outcome = await next(call if i == 0 else call.with_target(target))
            except ProviderError as e:
                if not self._policy(e):
                    raise
                errors.append(e)
                attempts.append(Attempt(target.provider, target.model,
                                        f"{type(e).__name__}: {e.message}"))
                if self._hooks is not None and i + 1 < len(targets):
                    from ..events import FallbackTaken  # imported when first emitted
                    self._hooks.emit(FallbackTaken(target.name, targets[i + 1].name, e))
                continue
            attempts.append(Attempt(target.provider, target.model))
            outcome.attempts[:] = attempts
            return outcome
        raise AllTargetsFailedError(errors)
