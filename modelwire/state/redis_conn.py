"""The connection behind RedisStore and RedisCache: one lazily made ``redis.asyncio``
client per event loop, and the outage policy (local fallback or StateStoreError, one
warning, backoff, reconnect)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from ..errors import ConfigurationError, MissingDependencyError, StateStoreError

log = logging.getLogger("modelwire.state")
QUIET_AFTER_WARNING = 60.0  # seconds: later outages log at DEBUG (see Connection._mark_down)
T = TypeVar("T")
OnError = Literal["local", "raise"]


def check_url(url: Any) -> str:
    if not isinstance(url, str) or urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            "the Redis URL must look like redis://[:password@]host:port/db, rediss://... "
            "(TLS) or unix:///path/to/socket")
    return url


def safe_url(url: str) -> str:
    """The URL without user, password or query (for reprs and messages)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class Connection:
    """One lazily made ``redis.asyncio`` client per event loop (each with its own
    connection pool), plus the outage policy shared by RedisStore and RedisCache."""

    def __init__(self, url: str, *, on_error: OnError = "local", timeout: float = 0.5,
                 max_backoff: float = 5.0, max_connections: int = 64,
                 what: str = "state store",
                 fallback: str = "going on with local state until it is back") -> None:
        self.url = check_url(url)
        if on_error not in ("local", "raise"):
            raise ConfigurationError(f"on_error must be 'local' or 'raise', got {on_error!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            raise MissingDependencyError(f"the Redis {what}", "redis", "redis") from None
        self.on_error = on_error
        self.timeout = float(timeout)
        self.max_backoff = max_backoff
        self.max_connections = max_connections
        self.what = what
        self.fallback = fallback  # what happens meanwhile, for the outage warning
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, Any] = {}
        self._down_until = 0.0  # time.monotonic() before which Redis is not tried
        self._backoff = 0.0
        self.outages = 0  # how many times Redis was found down (for tests and metrics)
        self._warned_at: float | None = None  # time.monotonic() of the last loud warning
        self._loud = False  # whether the current outage was logged at WARNING
        self._closing: set[asyncio.Task[None]] = set()
        self._retired: set[Any] = set()  # clients replaced after an outage, closed later

    def client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            from redis.asyncio import Redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
            self._client = Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
                retry=Retry(NoBackoff(), 0), max_connections=self.max_connections)
            self._loop = loop
            self._scripts = {}
        return self._client

    def script(self, lua: str) -> Any:
        s = self._scripts.get(lua)
        if s is None:
            s = self._scripts[lua] = self.client().register_script(lua)
        return s

    @property
    def down(self) -> bool:
        return bool(self._down_until) and time.monotonic() < self._down_until

    async def run(self, remote: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]
                  ) -> T:
        """``remote()`` on Redis; on an outage, ``local()`` (or StateStoreError)."""
        if self._down_until and time.monotonic() < self._down_until:
            if self.on_error == "raise":
                raise StateStoreError(f"the Redis {self.what} at {safe_url(self.url)} "
                                      "is unreachable (retrying after a backoff)")
            return await local()
        try:
            result = await remote()
        except Exception as e:
            if not _is_outage(e):
                raise
            self._mark_down(e)
            if self.on_error == "raise":
                raise StateStoreError(f"the Redis {self.what} at {safe_url(self.url)} failed: "
                                      f"{type(e).__name__}") from e
            return await local()
        if self._down_until:
            self._down_until, self._backoff = 0.0, 0.0
            log.log(logging.WARNING if self._loud else logging.DEBUG,
                    "modelwire: the Redis %s at %s is back; sharing resumes",
                    self.what, safe_url(self.url))
        return result

    def _mark_down(self, error: BaseException) -> None:
        first = not self._down_until
        self._backoff = min(self.max_backoff, self._backoff * 2 if self._backoff else 0.5)
        self._down_until = time.monotonic() + self._backoff
        client, self._client, self._loop = self._client, None, None  # reconnect afresh
        if client is not None:
            # Not closed at once: other coroutines may be mid-command on it (a
            # background flush failing while a call connects), and closing the pool
            # under them breaks redis-py itself (AttributeError, not a RedisError).
            # Their commands end within a timeout; then it is closed.
            self._retired.add(client)
            task = asyncio.get_running_loop().create_task(
                self._close_later(client, 2 * self.timeout + 0.5))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        if first:
            # One warning, not one per flap: a Redis that answers some commands and
            # refuses others (an ACL without EVALSHA) comes "back" on every GET.
            # Within QUIET_AFTER_WARNING seconds of a warning, outages log at DEBUG.
            now = time.monotonic()
            self.outages += 1
            self._loud = self._warned_at is None or now - self._warned_at >= QUIET_AFTER_WARNING
            if self._loud:
                self._warned_at = now
            log.log(logging.WARNING if self._loud else logging.DEBUG,
                    "modelwire: the Redis %s at %s %s; %s",
                    self.what, safe_url(self.url), _describe(error),
                    self.fallback if self.on_error == "local" else "raising StateStoreError")

    async def _close_later(self, client: Any, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        finally:  # even when the loop cancels this at its end
            if client in self._retired:
                self._retired.discard(client)
                await _quiet_close(client)

    async def aclose(self) -> None:
        client, self._client, self._loop = self._client, None, None
        retired, self._retired = list(self._retired), set()
        for old in [*retired, client]:
            if old is not None:
                await _quiet_close(old)


async def _quiet_close(client: Any) -> None:
    try:
        await client.aclose()
    except Exception:
        pass


def _describe(error: BaseException) -> str:
    """What went wrong, for the outage warning: a refusal by the server (an ACL
    without EVALSHA, a read-only replica, out of memory) names itself, since
    "unreachable" would send its reader to check the network. A server's error
    text holds no password (AUTH failures say WRONGPASS) and our keys are hashed."""
    from redis.exceptions import ConnectionError, ResponseError, TimeoutError
    if isinstance(error, ResponseError) and not isinstance(error, (ConnectionError,
                                                                  TimeoutError)):
        # redis-py prefixes a pipeline's error with the command and its arguments
        text = str(error).rsplit("caused error: ", 1)[-1]
        return f"refused a command ({type(error).__name__}: {text[:200]})"
    return f"is unreachable ({type(error).__name__})"


def _is_outage(error: BaseException) -> bool:
    """Anything Redis or the socket says (down, slow, out of memory, read-only
    replica, wrong password): never a reason to fail an LLM call."""
    from redis.exceptions import RedisError
    return isinstance(error, (RedisError, OSError, asyncio.TimeoutError))
