"""The refactoring plan's client layer, over modelwire's Client.

``BaseLlmClient.complete(LlmRequest)`` is async and ``complete_sync`` is its
sync twin; both run on one ``modelwire.Client`` (its private event loop and
connection pool), so the two never build a second HTTP path. ``ChatClient``
speaks chat; ``CompletionClient`` the text-completion wire
(``complete_text``). ``LlmClientFactory`` hands out clients whose
``modelwire.Client`` comes from a bounded ``ClientPool``, one per
configuration, reused, and closed on ``shutdown()``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from ..client import AsyncClient
from ..config import Settings
from ..errors import ConfigurationError, ModelwireError
from ..response import Response, TextDelta
from ..routes import BUILTIN_ALIASES, Routes, coerce_aliases
from ..sync import Client, Stream, _closed
from ._warn import deprecated, quiet
from .errors import translate, translated
from .types import LlmRequest, LlmResponse


class BaseLlmClient:
    """A client for one model (``model``: a modelwire id or alias; a request's
    ``model`` overrides it). ``client``: a modelwire.Client to share (not closed
    here); else one is made from ``client_options``. Made by LlmClientFactory, it
    takes its modelwire.Client from the factory's pool for each call instead."""

    kind = "base"

    def __init__(self, model: str | None = None, *, client: Client | None = None,
                 _pool: tuple[ClientPool, Mapping[str, Any]] | None = None,
                 **client_options: Any) -> None:
        deprecated(type(self).__name__, "modelwire.Client / AsyncClient")
        self.model = model
        self._pool = _pool
        self._owns = client is None and _pool is None
        self._client: Client | None = None
        if _pool is None:
            self._client = client if client is not None else new_client(client_options)

    @property
    def client(self) -> Client:
        """The modelwire.Client calls use (for a pooled client: the pool's, now)."""
        if self._client is not None:
            return self._client
        assert self._pool is not None
        pool, config = self._pool
        return pool.get(config)

    @contextmanager
    def _lease(self) -> Iterator[Client]:
        """The client for one call; a pooled one is not closed until the call ends."""
        if self._pool is None:
            yield self.client
            return
        pool, config = self._pool
        with pool.lease(config) as client:
            yield client

    def __repr__(self) -> str:
        return f"<{type(self).__name__} model={self.model!r}>"

    def _model(self, request: LlmRequest) -> str | None:
        if not isinstance(request, LlmRequest):
            raise translate(ConfigurationError(
                f"{type(self).__name__} takes an LlmRequest, got {type(request).__name__}: "
                f"e.g. LlmRequest(messages='...') or LlmRequest(prompt='...')"))
        return request.model or self.model

    async def _invoke(self, aclient: AsyncClient, request: LlmRequest) -> Response:
        raise NotImplementedError

    def _stream(self, client: Client, request: LlmRequest) -> Stream:
        raise NotImplementedError

    async def complete(self, request: LlmRequest) -> LlmResponse:
        """The answer, awaited (from any event loop)."""
        with translated(), self._lease() as client:
            loop = client._loop
            if loop.closing or loop.loop.is_closed():
                raise _closed()
            future = asyncio.run_coroutine_threadsafe(self._invoke(client.aio, request),
                                                      loop.loop)
            try:
                response = await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                if loop.closing:  # the client was closed under this call, not us cancelled
                    raise _closed(in_flight=True) from None
                raise
        return LlmResponse.from_response(response)

    def complete_sync(self, request: LlmRequest) -> LlmResponse:
        """The answer, blocking."""
        with translated(), self._lease() as client:
            response = client._loop.run(self._invoke(client.aio, request))
        return LlmResponse.from_response(response)

    def stream_sync(self, request: LlmRequest) -> Iterator[str]:
        """Text pieces as they arrive."""
        with translated(), self._lease() as client, self._stream(client, request) as stream:
            for event in stream:
                if isinstance(event, TextDelta):
                    yield event.text

    def close(self) -> None:
        if self._owns and self._client is not None:
            self._client.close()

    def __enter__(self) -> BaseLlmClient:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def new_client(options: Mapping[str, Any]) -> Client:
    """``modelwire.Client(**options)``; a bad option is a ConfigurationError (also an
    LLMException), not the TypeError Python raises for an unknown keyword."""
    try:
        with translated():
            return Client(**dict(options))
    except TypeError as e:
        raise translate(ConfigurationError(f"bad client configuration: {e}")) from None


def _require(value: Any, what: str) -> Any:
    if value is None:
        raise translate(ConfigurationError(f"the request has no {what}"))
    return value


class ChatClient(BaseLlmClient):
    """Chat: ``LlmRequest(messages=...)`` (a string is one user message)."""

    kind = "chat"

    async def _invoke(self, aclient: AsyncClient, request: LlmRequest) -> Response:
        return await aclient.complete(self._model(request),
                                      _require(request.messages, "messages"), **request.kwargs())

    def _stream(self, client: Client, request: LlmRequest) -> Stream:
        return client.stream(self._model(request), _require(request.messages, "messages"),
                             **request.kwargs())


class CompletionClient(BaseLlmClient):
    """Plain text completion: ``LlmRequest(prompt=...)`` on the /v1/completions wire
    (or the local model)."""

    kind = "completion"

    async def _invoke(self, aclient: AsyncClient, request: LlmRequest) -> Response:
        return await aclient.complete_text(self._model(request),
                                           _require(request.prompt, "prompt"), **request.kwargs())

    def _stream(self, client: Client, request: LlmRequest) -> Stream:
        return client.stream_text(self._model(request), _require(request.prompt, "prompt"),
                                  **request.kwargs())


def config_key(config: Mapping[str, Any]) -> str:
    """Identity of a client configuration; API keys enter only as a hash."""
    def clean(k: str, v: Any) -> Any:
        if k == "api_keys" and isinstance(v, Mapping):
            return {p: hashlib.sha256(str(x).encode()).hexdigest()[:16] for p, x in v.items()}
        return v
    return json.dumps({k: clean(k, v) for k, v in config.items()}, sort_keys=True,
                      default=repr)


class ClientPool:
    """modelwire Clients reused per configuration; at most ``max_size`` kept (the least
    recently used one is dropped to make room: closed at once when no call is using
    it, else as soon as its last call ends, so a call never loses its client);
    ``close()`` closes them all."""

    def __init__(self, max_size: int = 8) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise translate(ConfigurationError(f"max_size must be an int >= 1, got {max_size!r}"))
        self.max_size = max_size
        self._clients: OrderedDict[str, Client] = OrderedDict()
        self._leases: dict[int, int] = {}  # id(client) -> calls using it now
        self._retired: dict[int, Client] = {}  # dropped from the pool, still in use
        self._lock = threading.Lock()
        self._closed = False
        self.created = 0

    def get(self, config: Mapping[str, Any] | None = None) -> Client:
        """The pooled Client for ``config`` (made on first use)."""
        with self._lock:
            return self._get(config)

    @contextmanager
    def lease(self, config: Mapping[str, Any] | None = None) -> Iterator[Client]:
        """The Client for ``config``, not closed by eviction until the block ends."""
        with self._lock:
            client = self._get(config)
            self._leases[id(client)] = self._leases.get(id(client), 0) + 1
        try:
            yield client
        finally:
            with self._lock:
                n = self._leases[id(client)] - 1
                if n:
                    self._leases[id(client)] = n
                else:
                    del self._leases[id(client)]
                done = None if n else self._retired.pop(id(client), None)
            if done is not None:
                done.close()

    def _get(self, config: Mapping[str, Any] | None) -> Client:
        if self._closed:
            raise translate(ConfigurationError(
                "this ClientPool (or its LlmClientFactory) was shut down: make a new one"))
        key = config_key(config or {})
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        client = new_client(config or {})
        self.created += 1
        self._clients[key] = client
        while len(self._clients) > self.max_size:
            _, old = self._clients.popitem(last=False)
            if self._leases.get(id(old)):
                self._retired[id(old)] = old
            else:
                old.close()
        return client

    def __len__(self) -> int:
        return len(self._clients)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            clients = [*self._clients.values(), *self._retired.values()]
            self._clients.clear()
            self._retired.clear()
        for client in clients:
            client.close()


class LlmClientFactory:
    """Makes ChatClient / CompletionClient over pooled modelwire Clients."""

    def __init__(self, max_clients: int = 8, pool: ClientPool | None = None) -> None:
        deprecated("LlmClientFactory", "one modelwire.Client per configuration")
        self.pool = pool or ClientPool(max_clients)

    def create_client(self, kind: str = "chat", model: str | None = None,
                      **client_config: Any) -> BaseLlmClient:
        """``kind``: "chat" or "completion"; ``client_config``: modelwire.Client arguments."""
        classes: dict[str, type[BaseLlmClient]] = {"chat": ChatClient,
                                                   "completion": CompletionClient}
        if kind not in classes:
            raise translate(ConfigurationError(
                f"unknown client kind {kind!r}; use 'chat' or 'completion'"))
        self.pool.get(client_config)  # a bad configuration fails here, not at the first call
        with quiet():
            return classes[kind](model, _pool=(self.pool, dict(client_config)))

    def shutdown(self) -> None:
        self.pool.close()

    def __enter__(self) -> LlmClientFactory:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.shutdown()


class ModelRegistry:
    """Model names over modelwire's routes: ``register(alias, routes)``, ``resolve(name)``.
    Pass ``aliases=registry.aliases`` to a modelwire Client to use them there."""

    def __init__(self, aliases: Mapping[str, str | Sequence[str]] | None = None) -> None:
        deprecated("ModelRegistry", "modelwire aliases (Client(aliases=...), config file)")
        with translated():
            self.aliases: dict[str, tuple[str, ...]] = coerce_aliases(aliases)

    def register(self, alias: str, routes: str | Sequence[str]) -> None:
        with translated():
            self.aliases.update(coerce_aliases({alias: routes}))

    def _routes(self) -> Routes:
        return Routes(self.aliases, BUILTIN_ALIASES)

    def list_models(self) -> list[str]:
        return self._routes().names()

    def get_routes(self, name: str) -> tuple[str, ...]:
        return self._routes().get(name) or (name,)

    def resolve(self, name: str, env: Mapping[str, str] | None = None) -> str:
        """The model id a call would use now (its first configured route)."""
        settings = Settings() if env is None else Settings(env=env)
        with translated():
            return self._routes().plan(settings, name)[0].name


class ConfigurationValidator:
    """Checks a configuration before any traffic; each problem says how to fix it."""

    _POSITIVE = ("max_tokens", "timeout", "max_retries")

    def validate(self, config: Mapping[str, Any],
                 env: Mapping[str, str] | None = None) -> list[str]:
        """The problems found (empty: valid). ``model`` is resolved as a call would."""
        if not isinstance(config, Mapping):
            return [f"the configuration must be a dict, got {type(config).__name__}"]
        problems: list[str] = []
        for name in self._POSITIVE:
            v = config.get(name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or v < (0 if name == "max_retries" else 1e-9)):
                problems.append(f"{name} must be a positive number, got {v!r}")
        model, provider = config.get("model"), config.get("provider")
        if provider and model and "/" not in model:
            model = f"{provider}/{model}"
        target = model or (f"{provider}/" if provider else None)
        if target:
            keys = {provider: config["api_key"]} if provider and config.get("api_key") else {}
            settings = Settings(keys, env=Settings().env if env is None else env)
            try:
                Routes(BUILTIN_ALIASES).plan(settings, target)
            except ModelwireError as e:
                problems.append(f"{type(e).__name__}: {e}")
        return problems

    def validate_or_raise(self, config: Mapping[str, Any],
                          env: Mapping[str, str] | None = None) -> None:
        problems = self.validate(config, env)
        if problems:
            raise translate(ConfigurationError("invalid configuration: " + "; ".join(problems)))
