"""The old exception names, and how modelwire's errors become them too.

::

    LLMException                       every error raised through a facade
    ├── ProviderUnavailableException   no usable provider: 5xx, 529, timeouts,
    │                                  connection errors, open breaker, all
    │                                  fallbacks failed, unknown provider, a
    │                                  stream cut short (else as its cause)
    ├── RateLimitException             429 and our own client-side limiter
    └── AuthenticationException        401, 403, a missing API key

When every target of a call with fallbacks failed for the same one of these
two reasons, the AllTargetsFailedError is that class and
ProviderUnavailableException both. A missing ``claude`` program is
ProviderUnavailableException.

There is no second error tree: a facade re-raises modelwire's own error
object after giving it a class that derives from both its modelwire class and
the matching old one (``translate``). So ``except modelwire.RateLimitError``
and ``except RateLimitException`` both catch a 429, and the error keeps its
provider, model, status, ``retry_after`` and body. Other modelwire errors
(bad requests, configuration mistakes, ...) become plain ``LLMException``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import (
    AllTargetsFailedError,
    AuthenticationError,
    CircuitOpenError,
    MissingAPIKeyError,
    ModelwireError,
    OverloadedError,
    PermissionDeniedError,
    ProviderConnectionError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    StreamInterruptedError,
    UnknownProviderError,
)


class LLMException(Exception):
    """Base of the old exception names. ``provider`` when known."""

    def __init__(self, message: str = "", provider: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.provider = provider
        self.details = details


class ProviderUnavailableException(LLMException):
    """No provider could serve the request (down, overloaded, unreachable, unknown)."""


class RateLimitException(LLMException):
    """The provider (or our own limiter) refused for rate: see ``retry_after``."""


class AuthenticationException(LLMException):
    """The key is missing, wrong, or lacks permission."""


_MAP: tuple[tuple[type[ModelwireError], type[LLMException]], ...] = (
    (RateLimitError, RateLimitException),
    (AuthenticationError, AuthenticationException),
    (PermissionDeniedError, AuthenticationException),
    (MissingAPIKeyError, AuthenticationException),
    (ServerError, ProviderUnavailableException),
    (OverloadedError, ProviderUnavailableException),
    (RequestTimeoutError, ProviderUnavailableException),
    (ProviderConnectionError, ProviderUnavailableException),
    (CircuitOpenError, ProviderUnavailableException),
    (AllTargetsFailedError, ProviderUnavailableException),
    (UnknownProviderError, ProviderUnavailableException),
)
Legacy = type[LLMException] | tuple[type[LLMException], ...]
_classes: dict[tuple[type[ModelwireError], tuple[type[LLMException], ...]],
               type[ModelwireError]] = {}


def legacy_class(error: ModelwireError) -> type[LLMException]:
    """The old class an error becomes (its first, when it becomes more than one)."""
    return legacy_classes(error)[0]


def legacy_classes(error: ModelwireError) -> tuple[type[LLMException], ...]:
    if isinstance(error, StreamInterruptedError):  # cut mid-way: what cut it decides
        cause = error.cause
        return legacy_classes(cause) if isinstance(cause, ModelwireError) \
            else (ProviderUnavailableException,)
    if isinstance(error, AllTargetsFailedError):
        # Every target refused for the same reason (all rate limited, all bad keys):
        # old code's `except RateLimitException` catches it too.
        kinds = {legacy_class(e) for e in error.errors}
        if len(kinds) == 1 and kinds <= {RateLimitException, AuthenticationException}:
            return (kinds.pop(), ProviderUnavailableException)
        return (ProviderUnavailableException,)
    if any(c.__name__ == "MissingProgramError" for c in type(error).__mro__):
        return (ProviderUnavailableException,)  # the claude-cli program: not here
    for kind, legacy in _MAP:
        if isinstance(error, kind):
            return (legacy,)
    return (LLMException,)


def translate(error: BaseException, legacy: Legacy | None = None) -> BaseException:
    """The same error object, now also an instance of its old class(es) (idempotent)."""
    if not isinstance(error, ModelwireError) or isinstance(error, LLMException):
        return error
    bases = legacy_classes(error) if legacy is None else \
        (legacy if isinstance(legacy, tuple) else (legacy,))
    cls = type(error)
    both = _classes.get((cls, bases))
    if both is None:
        both = type(cls.__name__, (cls, *bases), {
            "__module__": cls.__module__, "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__, "__init__": cls.__init__, "__reduce__": _reduce,
            "_compat_classes": (cls, bases)})
        _classes[(cls, bases)] = both
    error.__class__ = both
    if getattr(error, "provider", None) is None:
        error.provider = None  # type: ignore[attr-defined]
    if not hasattr(error, "details"):
        error.details = {}  # type: ignore[attr-defined]
    return error


def _reduce(self: BaseException) -> tuple[Any, ...]:
    # The combined class is made at run time, so pickle (multiprocessing, ...) rebuilds it.
    cls, legacy = type(self)._compat_classes  # type: ignore[attr-defined]
    return _rebuild, (cls, legacy, self.args, self.__dict__)


def _rebuild(cls: type[ModelwireError], legacy: Legacy, args: tuple[Any, ...],
             state: dict[str, Any]) -> BaseException:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return translate(error, legacy)


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise modelwire errors from the block as their old classes too."""
    try:
        yield
    except ModelwireError as e:
        translate(e)
        raise
