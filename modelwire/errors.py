"""The exception tree. Every error modelwire raises is one of these.

::

    ModelwireError
    ├── ConfigurationError             caller's setup is wrong; raised before any traffic
    │   ├── UnknownProviderError       "foo/bar": no provider "foo"
    │   ├── InvalidModelError          model id not "<provider>/<model>"
    │   ├── MissingAPIKeyError         names the environment variable to set
    │   ├── InvalidMessageError        a message/tool dict that cannot be understood
    │   ├── MissingDependencyError     an extra is not installed; names the pip command
    │   └── UnsupportedFeatureError    the provider/model cannot do what was asked
    ├── StateStoreError                the shared state store (Redis) failed, on_error="raise"
    └── ProviderError                  the provider (or the path to it) failed
        ├── AuthenticationError        401
        ├── PermissionDeniedError      403
        ├── NotFoundError              404 (usually an unknown model)
        ├── BadRequestError            400 / 413 / 422
        │   └── ContextWindowExceededError
        ├── RateLimitError             429 (retryable, ``retry_after``)
        │   └── ClientRateLimitError   our own limiter refused before any traffic
        ├── OverloadedError            529 / "overloaded_error" (retryable)
        ├── ServerError                5xx (retryable)
        ├── RequestTimeoutError        connect / read / total timeout, 408 (retryable)
        ├── ProviderConnectionError    refused, reset, DNS (retryable)
        ├── MalformedResponseError     bytes we cannot decode as the wire promised
        ├── StreamInterruptedError     a stream failed after it began; holds ``partial``
        ├── CircuitOpenError           the breaker for the target is open; no traffic sent
        └── AllTargetsFailedError      every fallback target failed; holds ``errors``

Every :class:`ProviderError` carries ``provider``, ``model``, ``status``,
``retryable``, ``retry_after`` (seconds, or None), ``code`` (the provider's own
error code/type), ``request_id`` and ``body`` (the raw error body, for anything
we did not normalize). Messages never contain API keys.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .response import Response


class ModelwireError(Exception):
    """Base of every error raised by modelwire."""


class ConfigurationError(ModelwireError, ValueError):
    """The caller's configuration or input is wrong. Fix the call; retrying won't help."""


class UnknownProviderError(ConfigurationError):
    pass


class InvalidModelError(ConfigurationError):
    pass


class MissingAPIKeyError(ConfigurationError):
    def __init__(self, provider: str, env_vars: Sequence[str]) -> None:
        self.provider = provider
        self.env_vars = tuple(env_vars)
        names = " or ".join(env_vars) if env_vars else "an api_key argument"
        super().__init__(
            f"no API key for provider {provider!r}: set {names} in the environment, "
            f"or pass api_keys={{{provider!r}: ...}} to the client"
        )


class InvalidMessageError(ConfigurationError):
    pass


class MissingDependencyError(ConfigurationError, ImportError):
    def __init__(self, feature: str, extra: str, package: str) -> None:
        self.extra = extra
        super().__init__(
            f"{feature} needs the optional package {package!r}: "
            f"pip install 'modelwire[{extra}]'"
        )


class UnsupportedFeatureError(ConfigurationError):
    pass


class StateStoreError(ModelwireError):
    """The shared state store (e.g. Redis) is unreachable or failed, and the store
    was built with ``on_error="raise"`` (the default goes on with local state)."""


class ProviderError(ModelwireError):
    """A failure reported by (or on the way to) a provider."""

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status = status
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.code = code
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        where = "/".join(p for p in (self.provider, self.model) if p)
        parts = [f"[{where}]" if where else "", f"HTTP {self.status}" if self.status else ""]
        head = " ".join(p for p in parts if p)
        return f"{head}: {self.message}" if head else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"model={self.model!r}, status={self.status!r}, retryable={self.retryable!r})"
        )


class AuthenticationError(ProviderError):
    pass


class PermissionDeniedError(ProviderError):
    pass


class NotFoundError(ProviderError):
    pass


class BadRequestError(ProviderError):
    pass


class ContextWindowExceededError(BadRequestError):
    pass


class RateLimitError(ProviderError):
    default_retryable = True


class ClientRateLimitError(RateLimitError):
    """Our own client-side limiter could not grant capacity within the deadline."""

    default_retryable = False


class OverloadedError(ProviderError):
    default_retryable = True


class ServerError(ProviderError):
    default_retryable = True


class RequestTimeoutError(ProviderError):
    default_retryable = True


class ProviderConnectionError(ProviderError):
    default_retryable = True


class MalformedResponseError(ProviderError):
    pass


class StreamInterruptedError(ProviderError):
    """A stream failed after its first event reached the caller.

    ``partial`` is the Response accumulated so far (finish_reason "error");
    ``cause`` is the underlying error. Never retried: the caller has seen output.
    """

    def __init__(self, message: str, *, partial: Response | None = None,
                 cause: BaseException | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.partial = partial
        self.cause = cause


class CircuitOpenError(ProviderError):
    """The target's circuit breaker is open: it failed recently and is cooling down."""


class AllTargetsFailedError(ProviderError):
    """Every target (primary and fallbacks) failed. ``errors`` is in the order tried."""

    def __init__(self, errors: Sequence[ProviderError]) -> None:
        self.errors = list(errors)
        lines = "; ".join(f"{e.provider}/{e.model}: {type(e).__name__}: {e.message}"
                          for e in self.errors)
        last = self.errors[-1] if self.errors else None
        super().__init__(
            f"all {len(self.errors)} targets failed: {lines}",
            provider=last.provider if last else "", model=last.model if last else "",
            status=last.status if last else None, retryable=False,
        )


# ---------------------------------------------------------------------------
# Shared helpers used by every codec's classify_error.

_BY_STATUS: dict[int, type[ProviderError]] = {
    400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError,
    404: NotFoundError, 408: RequestTimeoutError, 413: BadRequestError,
    422: BadRequestError, 429: RateLimitError, 529: OverloadedError,
}

_CONTEXT_PHRASES = (
    "context_length_exceeded", "context length", "context window", "maximum context",
    "too many tokens", "prompt is too long", "input is too long", "exceeds the maximum",
    "reduce the length",
)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None,
                      cap: float = 600.0) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        seconds = _finite(ms)
        if seconds is not None:
            return min(max(seconds / 1000.0, 0.0), cap)
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return min(max(seconds, 0.0), cap)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(when - (time.time() if now is None else now), 0.0), cap)


def _finite(text: str) -> float | None:
    """A number of seconds, or None: 'nan' and 'inf' would defeat every comparison."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def looks_like_context_overflow(code: str | None, message: str) -> bool:
    text = f"{code or ''} {message}".lower()
    return any(p in text for p in _CONTEXT_PHRASES)


def error_for(
    status: int | None,
    message: str,
    *,
    code: str | None = None,
    kind: type[ProviderError] | None = None,
    headers: Mapping[str, str] | None = None,
    **kw: Any,
) -> ProviderError:
    """Build the typed error: an explicit ``kind`` (from a provider code) wins, then status."""
    if kind is None:
        if status is not None and status in _BY_STATUS:
            kind = _BY_STATUS[status]
        elif status is not None and status >= 500:
            kind = ServerError
        else:
            kind = ProviderError
    if issubclass(kind, BadRequestError) and looks_like_context_overflow(code, message):
        kind = ContextWindowExceededError
    if status == 409:  # conflict: the OpenAI SDKs retry it, so do we
        kw.setdefault("retryable", True)
    retry_after = parse_retry_after(headers) if headers else None
    return kind(message, status=status, code=code, retry_after=retry_after, **kw)
