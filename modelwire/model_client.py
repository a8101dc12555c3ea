"""Models as clients: ``client.model("deepseek-chat")`` is a client for one model.

The model object keeps no connection of its own: every call goes through its
client (same pool, middleware, breaker and typed errors). By default it takes
the alias's first configured route and falls back along the rest (see
:mod:`modelwire.routes`). ``set_provider("openrouter")`` moves it to that
provider's route (the others stay fallbacks unless ``fallback=False``);
``set_provider(None)`` returns to automatic choice. ``provider`` says where the
next call will go.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError
from .pipeline import Call, Target
from .response import Response
from .streaming import StreamRequest
from .types import MessageLike

if TYPE_CHECKING:
    from .client import AsyncClient
    from .sync import Client, Stream


class AsyncModel:
    """One model over an :class:`~modelwire.AsyncClient` (see module docstring)."""

    __slots__ = ("_client", "_fallback", "_provider", "name")

    def __init__(self, client: AsyncClient, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"model name must be a non-empty string, got {name!r}")
        self._client = client
        self.name = name
        self._provider: str | None = None
        self._fallback = True
        client.plan(name)  # unknown names and unconfigured aliases fail here, not later

    def __repr__(self) -> str:
        return f"<AsyncModel {self.name!r} provider={self._provider or 'auto'}>"

    def set_provider(self, provider: str | None, *, fallback: bool = True) -> None:
        """Serve this model from ``provider``'s route (None: the first configured one)."""
        if provider is not None:
            self._client.plan(self.name, prefer=provider)  # validate before switching
        self._provider, self._fallback = provider, fallback

    def targets(self) -> list[Target]:
        """Where the next call goes, primary first."""
        targets = self._client.plan(self.name, prefer=self._provider)
        return targets if self._fallback else targets[:1]

    @property
    def provider(self) -> str:
        return self.targets()[0].provider

    @property
    def routes(self) -> tuple[str, ...]:
        """The alias's routes in order (or the one id)."""
        return self._client.routes.get(self.name) or (self.name,)

    def _call(self, messages: Iterable[MessageLike] | str | None, **kwargs: Any) -> Call:
        call = self._client.build_call(self.name, messages, **kwargs)
        if self._provider is not None or not self._fallback:
            own = self.targets()  # this model's routes, reordered or cut
            extra = call.fallbacks[len(self._client.plan(self.name)) - 1:]  # fallbacks=
            call.target, call.fallbacks = own[0], [*own[1:], *extra]
        return call

    async def complete(self, messages: Iterable[MessageLike] | str, **kwargs: Any) -> Response:
        outcome = await self._client._run(self._call(messages, **kwargs))
        assert isinstance(outcome, Response)
        return outcome

    def stream(self, messages: Iterable[MessageLike] | str, **kwargs: Any) -> StreamRequest:
        return StreamRequest(self._client, self._call(messages, stream=True, **kwargs))

    async def complete_text(self, prompt: str, **kwargs: Any) -> Response:
        outcome = await self._client._run(self._call(None, prompt=prompt, **kwargs))
        assert isinstance(outcome, Response)
        return outcome

    def stream_text(self, prompt: str, **kwargs: Any) -> StreamRequest:
        return StreamRequest(self._client,
                             self._call(None, prompt=prompt, stream=True, **kwargs))


class Model:
    """The sync twin of :class:`AsyncModel`, from ``modelwire.Client().model(name)``."""

    __slots__ = ("_async", "_client")

    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self._async = AsyncModel(client.aio, name)

    def __repr__(self) -> str:
        return f"<Model {self.name!r} provider={self._async._provider or 'auto'}>"

    @property
    def name(self) -> str:
        return self._async.name

    @property
    def provider(self) -> str:
        return self._async.provider

    @property
    def routes(self) -> tuple[str, ...]:
        return self._async.routes

    def set_provider(self, provider: str | None, *, fallback: bool = True) -> None:
        self._async.set_provider(provider, fallback=fallback)

    def targets(self) -> list[Target]:
        return self._async.targets()

    def complete(self, messages: Iterable[MessageLike] | str, **kwargs: Any) -> Response:
        return self._client._loop.run(self._async.complete(messages, **kwargs))

    def stream(self, messages: Iterable[MessageLike] | str, **kwargs: Any) -> Stream:
        from .sync import Stream
        return Stream(self._client._loop, self._async.stream(messages, **kwargs), self._client)

    def complete_text(self, prompt: str, **kwargs: Any) -> Response:
        return self._client._loop.run(self._async.complete_text(prompt, **kwargs))

    def stream_text(self, prompt: str, **kwargs: Any) -> Stream:
        from .sync import Stream
        return Stream(self._client._loop, self._async.stream_text(prompt, **kwargs),
                      self._client)
