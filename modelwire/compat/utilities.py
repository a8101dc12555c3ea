"""Thin old names over what modelwire already does.

``RetryHandler`` and ``CircuitBreaker`` are settings for modelwire's retry and
breaker middleware (pass them to LLMCommunication, or ``**x.client_options()``
to ``modelwire.Client``); ``InputValidator`` is modelwire's own message
validation; ``SecureConfig`` masks and sanity-checks keys. ``ResponseCache``
is the one piece modelwire has no core equivalent for yet: a small in-memory
LRU the facades consult, keyed without the credential (a hash of it at most).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError, InvalidMessageError
from ..middleware.breaker import BreakerPolicy
from ..middleware.retry import RetryPolicy, is_retryable
from ..types import Message, MessageLike, to_messages
from ._warn import deprecated
from .errors import translate


@dataclass(slots=True)
class RetryHandler:
    """Retry settings: ``max_retries`` attempts after the first, exponential backoff
    from ``base_delay`` up to ``max_delay`` seconds plus up to ``jitter`` (Retry-After
    from the provider always wins). Only retryable errors are retried."""

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        deprecated("RetryHandler", "modelwire.Client(max_retries=..., retry=RetryPolicy(...))",
                   stacklevel=4)

    @property
    def policy(self) -> RetryPolicy:
        try:
            return RetryPolicy(initial=self.base_delay, max_wait=self.max_delay,
                               jitter=self.jitter)
        except Exception as e:
            raise translate(e) from None

    def client_options(self) -> dict[str, Any]:
        return {"max_retries": self.max_retries, "retry": self.policy}

    @staticmethod
    def is_retryable(error: BaseException) -> bool:
        return is_retryable(error)


@dataclass(slots=True)
class CircuitBreaker:
    """Breaker settings: open after ``failure_threshold`` consecutive failed calls
    (each counted once, after its retries), probe again after ``recovery_timeout``
    seconds. While open, calls fail at once with CircuitOpenError (also a
    ProviderUnavailableException). Only consecutive failures count, as they
    always did; ``failure_rate`` (e.g. 0.5) also opens it when that share of
    the calls in the last minute failed (modelwire's own default)."""

    failure_threshold: int = 5
    recovery_timeout: float = 30.0
    failure_rate: float | None = None

    def __post_init__(self) -> None:
        deprecated("CircuitBreaker", "modelwire.Client(breaker=BreakerPolicy(...))",
                   stacklevel=4)

    @property
    def policy(self) -> BreakerPolicy:
        try:
            return BreakerPolicy(failures=self.failure_threshold, cooldown=self.recovery_timeout,
                                 failure_rate=self.failure_rate)
        except Exception as e:
            raise translate(e) from None

    def client_options(self) -> dict[str, Any]:
        return {"breaker": self.policy}


class ResponseCache:
    """In-memory LRU of answers: ``max_size`` entries, each for ``ttl`` seconds (None:
    no expiry). Keys come from :meth:`key`; a credential only enters as a hash."""

    def __init__(self, max_size: int = 256, ttl: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        deprecated("ResponseCache", "the facades' cache= (modelwire has no core cache yet)")
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise translate(ConfigurationError(f"max_size must be an int >= 1, got {max_size!r}"))
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))
                                or ttl <= 0):
            raise translate(ConfigurationError(
                f"ttl must be a number of seconds > 0 or None, got {ttl!r}"))
        self.max_size, self.ttl, self._clock = max_size, ttl, clock
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def key(model: str, messages: Any, params: Mapping[str, Any] | None = None,
            api_key: str | None = None) -> str:
        """A stable key for a request; ``api_key`` is hashed, so tenants never share."""
        payload = json.dumps([model, messages, dict(params or {})], sort_keys=True,
                             default=repr)
        tenant = hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else "-"
        return hashlib.sha256(f"{tenant}|{payload}".encode()).hexdigest()

    def get(self, key: str) -> Any | None:
        item = self._data.get(key)
        if item is None or (self.ttl is not None and self._clock() - item[0] > self.ttl):
            self._data.pop(key, None)
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return item[1]

    def set(self, key: str, value: Any) -> None:
        self._data[key] = (self._clock(), value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_size:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


_PREFIXES = {"anthropic": ("sk-ant-",), "openai": ("sk-",), "groq": ("gsk_",),
             "xai": ("xai-",), "gemini": ("AIza",), "openrouter": ("sk-or-",)}


class SecureConfig:
    """Key hygiene: never print a key, check one looks plausible before use."""

    @staticmethod
    def mask_api_key(key: str | None) -> str:
        """``"sk-***wxyz"`` style: never more than a 3-character prefix and 4 at the end
        (keys shorter than 16 characters are fully masked)."""
        if not key:
            return ""
        return f"{key[:3]}***{key[-4:]}" if len(key) >= 16 else "***"

    @staticmethod
    def validate_api_key(key: str | None, provider: str | None = None) -> bool:
        """A non-empty key without whitespace, at least 8 characters, with the
        provider's usual prefix when we know it. Format only: no network call."""
        if not isinstance(key, str) or len(key) < 8 or any(c.isspace() for c in key):
            return False
        prefixes = _PREFIXES.get(provider or "")
        return prefixes is None or key.startswith(prefixes)

    @staticmethod
    def get_api_key(provider: str, env: Mapping[str, str] | None = None) -> str | None:
        """The key modelwire would use for ``provider`` (from the environment)."""
        from ..config import Settings
        from .providers import _spec
        return Settings(env=os.environ if env is None else env).api_key(_spec(provider))


class InputValidator:
    """modelwire's own message validation, plus an optional length bound."""

    def __init__(self, max_length: int | None = None) -> None:
        deprecated("InputValidator", "modelwire's validation in Client.complete()")
        self.max_length = max_length

    def validate_prompt(self, prompt: Any) -> str:
        """The prompt, or InvalidMessageError (also an LLMException) saying what is wrong."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise translate(InvalidMessageError(
                f"the prompt must be a non-empty string, got {prompt!r:.60}"))
        self._check_length(len(prompt))
        return prompt

    def validate_messages(self, messages: Iterable[MessageLike] | str) -> list[Message]:
        """Messages as modelwire parses them (OpenAI-style dicts, Message, a string)."""
        try:
            parsed = to_messages(messages)
        except InvalidMessageError as e:
            raise translate(e) from None
        self._check_length(sum(len(m.text) for m in parsed))
        return parsed

    def _check_length(self, n: int) -> None:
        if self.max_length is not None and n > self.max_length:
            raise translate(InvalidMessageError(
                f"the input is {n} characters; the limit is {self.max_length}"))
