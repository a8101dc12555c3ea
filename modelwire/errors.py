"""The exception tree. Every error modelwire raises is one of these.

::

    ModelwireError
    ├── ConfigurationError             caller's setup is wrong; raised before any traffic
    │   ├── UnknownProviderError       "foo/bar": no provider "foo"
    │   ├── InvalidModelError          model id not "<provider>/<model>"
    │   ├── MissingAPIKeyError         names the environment variable to set
    │   ├── InvalidMessageError        a message/tool dict that cannot be understood
    │   ├── InvalidParameterError      a call argument of the wrong type or out of range
    │   ├── MissingDependencyError     an extra is not installed; names the pip command
    │   ├── UnsupportedFeatureError    the provider/model cannot do what was asked
    │   └── BudgetExceededError        the call would pass a budget=; refused before traffic
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
        ├── RequestTimeoutError        connect / read / total / first_event timeout, 408
        │                              (retryable; ``limit`` names the one that fired)
        ├── ProviderConnectionError    refused, reset, DNS (retryable)
        ├── RedirectError              a 3xx: never followed (the key would travel with it)
        ├── ResponseTooLargeError      a body or one stream event over the client's limit
        ├── MalformedResponseError     bytes we cannot decode as the wire promised
        ├── StreamInterruptedError     a stream failed after it began; holds ``partial``
        ├── CircuitOpenError           the breaker for the target is open; no traffic sent
        └── AllTargetsFailedError      every fallback target failed; holds ``errors``
    ModelwireError
    ├── MaxTurnsExceededError          the tool loop hit max_turns; holds ``transcript``
    └── StructuredOutputError          the answer did not validate; ``raw_text``, ``errors``

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


class InvalidParameterError(ConfigurationError):
    """A call argument (temperature, max_tokens, timeout, extra, tool schema, ...) has
    the wrong type or is out of range. Raised before any traffic."""


class MissingDependencyError(ConfigurationError, ImportError):
    def __init__(self, feature: str, extra: str, package: str) -> None:
        self.extra = extra
        super().__init__(
            f"{feature} needs the optional package {package!r}: "
            f"pip install 'modelwire[{extra}]'"
        )


class UnsupportedFeatureError(ConfigurationError):
    pass


class BudgetExceededError(ConfigurationError):
    """A ``budget=`` (USD or tokens over a period) would be exceeded; nothing was sent.

    A caller-side policy, not a provider failure: so a ConfigurationError, which
    retry and fallback never act on (another target spends the same budget).
    ``retry_after`` is the seconds until the budget's period starts afresh
    (None for a budget without a period).
    """

    def __init__(self, budget: str, unit: str, limit: float, spent: float, estimate: float,
                 retry_after: float | None) -> None:
        self.budget, self.unit, self.limit = budget, unit, limit
        self.spent, self.estimate, self.retry_after = spent, estimate, retry_after
        def fmt(v: float) -> str:
            return f"${v:.6f}" if unit == "usd" else f"{v:.0f} tokens"
        when = (f"; it resets in {retry_after:.0f}s" if retry_after is not None
                else "; it has no period, so raise its limit")
        if estimate > limit:  # waiting will not help: the call alone is over
            when = ("; this call alone is estimated above the limit (input tokens + "
                    "max_tokens, or Budget.output_tokens without it): lower max_tokens= "
                    "or raise the limit")
        super().__init__(
            f"budget {budget!r} would be exceeded: {fmt(spent)} spent or reserved + "
            f"{fmt(estimate)} "
            f"estimated for this call > limit {fmt(limit)}{when}")


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
    """A timeout fired. ``limit`` names it (``"connect"``, ``"read"``, ``"total"``,
    ``"first_event"``, or None for a server's 408) and ``seconds`` is its value."""

    default_retryable = True

    def __init__(self, message: str, *, limit: str | None = None,
                 seconds: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.limit = limit
        self.seconds = seconds


class ProviderConnectionError(ProviderError):
    default_retryable = True


class MalformedResponseError(ProviderError):
    pass


class RedirectError(ProviderError):
    """The server answered with a 3xx. Redirects are never followed, so the API
    key never travels to another host; ``location`` is the redirect's host only."""

    def __init__(self, message: str, *, location: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.location = location


class ResponseTooLargeError(ProviderError):
    """A response body (``complete()``) or one stream event (``stream()``) exceeded
    the client's ``max_response_bytes`` / ``max_event_bytes``; the connection was
    closed and nothing more was read. ``limit`` is the limit in bytes."""

    def __init__(self, message: str, *, limit: int | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.limit = limit


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


class MaxTurnsExceededError(ModelwireError):
    """The tool loop made ``max_turns`` model calls and the model still asked for tools.

    ``transcript`` holds every message so far (tool results included) and
    ``steps`` every model call and tool run, so the caller can continue or inspect.
    """

    def __init__(self, message: str, *, transcript: Sequence[Any] = (),
                 steps: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.transcript = list(transcript)
        self.steps = list(steps)


class StructuredOutputError(ModelwireError):
    """The model's answer is not valid JSON for the requested ``response_format``.

    ``raw_text`` is what the model said, ``errors`` the parse/validation errors
    (one string each) and ``response`` the last Response.
    """

    def __init__(self, message: str, *, raw_text: str = "", errors: Sequence[str] = (),
                 response: Response | None = None) -> None:
        super().__init__(message)
        self.raw_text = raw_text
        self.errors = list(errors)
        self.response = response


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


_TIMEOUT_MEANING = {
    "connect": "opening the connection",
    "read": "the longest silence on the socket",
    "total": "the whole call, retries and waits included",
    "first_event": "the longest wait for an attempt's first event",
}


def timeout_error(limit: str, seconds: float | None, what: str) -> RequestTimeoutError:
    """A RequestTimeoutError naming the limit that fired and its value."""
    value = f"{seconds:g}s" if seconds is not None else "unset"
    return RequestTimeoutError(
        f"{what} timed out: Timeouts.{limit}={value} fired "
        f"({_TIMEOUT_MEANING.get(limit, limit)}); raise it if this is expected",
        limit=limit, seconds=seconds)


def detail_message(payload: Mapping[str, Any]) -> str | None:
    """The message of a FastAPI / OpenAPI-validator style body, or None.

    ``{"detail": "text"}``, ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``
    (FastAPI's 422) and ``{"title": ..., "detail": ...}`` (RFC 7807 problem details,
    as OpenAPI validators send them).
    """
    detail, title = payload.get("detail"), payload.get("title")
    parts: list[str] = []
    if isinstance(detail, str) and detail:
        parts.append(detail)
    elif isinstance(detail, list):
        for item in detail[:5]:
            if isinstance(item, Mapping) and isinstance(item.get("msg"), str):
                loc = item.get("loc")
                where = ".".join(str(x) for x in loc) if isinstance(loc, list) else ""
                parts.append(f"{where}: {item['msg']}" if where else item["msg"])
            elif isinstance(item, str):
                parts.append(item)
        if len(detail) > 5:
            parts.append(f"(+{len(detail) - 5} more)")
    if isinstance(title, str) and title and title not in parts:
        parts.insert(0, title)
    return "; ".join(parts)[:500] if parts else None


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
