"""AsyncClient: resolve model ids, build a Call, run it through the middleware chain."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Awaitable, Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import endpoint
from .config import Settings
from .errors import ConfigurationError, InvalidMessageError
from .hooks import Hooks
from .pipeline import CALL_OPTIONS, Call, Middleware, Next, Outcome, Target, Timeouts, chain
from .registry import ProviderSpec, get_codec, get_spec
from .response import Response, StreamEvent
from .streaming import AsyncStream
from .transports.base import Transport
from .types import Message, MessageLike, ToolLike, to_messages, to_tools

if TYPE_CHECKING:
    from .batch import BatchResult, OnResult, RequestLike
    from .health import HealthReport
    from .transports.mock import MockTransport

_announced_default = False


class AsyncClient:
    """The async original. ``Client`` (modelwire.sync) mirrors every method.

    Arguments override the environment: ``api_keys={"openai": ...}``,
    ``base_urls={"openai": ...}``, ``provider_options={"azure": {"api_version": ...}}``.
    ``timeout`` is seconds for the whole call or a :class:`Timeouts`.
    ``middleware=None`` gives the default resilience chain; pass ``[]`` for none.
    """

    def __init__(
        self,
        *,
        api_keys: Mapping[str, str] | None = None,
        base_urls: Mapping[str, str] | None = None,
        provider_options: Mapping[str, Mapping[str, Any]] | None = None,
        timeout: Timeouts | float | None = None,
        max_retries: int = 2,
        fallbacks: Sequence[str] | None = None,
        middleware: Sequence[Middleware] | None = None,
        transport: Transport | None = None,
        env: Mapping[str, str] | None = None,
        **resilience: Any,
    ) -> None:
        self.settings = Settings(api_keys or {}, base_urls or {}, provider_options or {})
        if env is not None:
            self.settings.env = env
        self.timeouts = Timeouts.coerce(timeout, Timeouts())
        self.max_retries = max_retries
        self.fallbacks = list(fallbacks or ())
        self._transport_override = transport
        self._transports: dict[str, Transport] = {}
        self.hooks = Hooks()  # default_middleware replaces it with the configured one
        if middleware is None:
            from .middleware import default_middleware
            middleware = default_middleware(self, **resilience)
        self.middleware = list(middleware)
        self._run: Next = chain(self.middleware, self._terminal)

    def __repr__(self) -> str:
        return f"<AsyncClient middleware={[type(m).__name__ for m in self.middleware]}>"

    # --- plumbing -----------------------------------------------------------

    def transport_for(self, spec: ProviderSpec) -> Transport:
        kind = spec.transport
        if kind == "http" and self._transport_override is not None:
            return self._transport_override
        t = self._transports.get(kind)
        if t is None:
            if kind == "http":
                from .transports.http import HTTPTransport
                t = HTTPTransport()
            elif kind == "mock":
                from .transports.mock import MockTransport
                t = MockTransport()
            elif kind == "subprocess":
                from .transports.subprocess import SubprocessTransport
                t = SubprocessTransport(self.settings.provider_options(spec))
            else:
                from .transports.local import LocalTransport
                t = LocalTransport(self.settings.provider_options(spec))
            self._transports[kind] = t
        return t

    @property
    def mock(self) -> MockTransport:
        """Script the ``mock`` provider: ``client.mock.script(MockReply(...))``, ``.requests``."""
        from .transports.mock import MockTransport  # lazily: keeps `import modelwire` lean
        t = self.transport_for(get_spec("mock"))
        assert isinstance(t, MockTransport)
        return t

    def _terminal(self, call: Call) -> Awaitable[Outcome]:
        # A plain function returning the endpoint's coroutine: no frame of its own.
        spec = call.target.spec
        codec, transport = get_codec(spec), self.transport_for(spec)
        if call.stream:
            return endpoint.open_stream(call, codec, transport)
        return endpoint.complete(call, codec, transport)

    def resolve(self, model: str | None) -> Target:
        global _announced_default
        if model is None:
            model = self.settings.default_model()
            if model.startswith("local/") and not _announced_default:
                _announced_default = True
                print(f"modelwire: no provider key set; using {model} (embedded local model)",
                      file=sys.stderr)
        return self.settings.resolve(model)

    def build_call(
        self,
        model: str | None,
        messages: Iterable[MessageLike] | str | None,
        *,
        stream: bool = False,
        prompt: str | None = None,
        tools: Iterable[ToolLike] | None = None,
        tool_choice: Any = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: str | Sequence[str] | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        timeout: Timeouts | float | None = None,
        extra: Mapping[str, Any] | None = None,
        fallbacks: Sequence[str] | None = None,
        **options: Any,
    ) -> Call:
        """Validate everything and resolve every target before any traffic."""
        target = self.resolve(model)
        if messages is None and prompt is None:
            raise InvalidMessageError("messages is None: pass a list of messages or a string")
        msgs: list[Message] = [] if messages is None else to_messages(messages)
        if stop is not None and not isinstance(stop, str) and not (
                isinstance(stop, (list, tuple)) and all(isinstance(x, str) for x in stop)):
            raise InvalidMessageError(f"stop must be a string or a list of strings, got {stop!r}")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise InvalidMessageError(f"max_tokens must be a positive int, got {max_tokens!r}")
        for name, value in (("temperature", temperature), ("top_p", top_p),
                            ("timeout", timeout)):
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, (int, float, Timeouts) if name == "timeout" else (int, float))):
                raise InvalidMessageError(f"{name} must be a number, got {value!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InvalidMessageError(f"seed must be an int, got {seed!r}")
        if extra is not None and not isinstance(extra, Mapping):
            raise InvalidMessageError(f"extra must be a dict of provider fields, got {extra!r}")
        unknown = sorted(set(options) - CALL_OPTIONS) if options else None
        if unknown:
            raise ConfigurationError(
                f"unknown argument(s) {', '.join(unknown)}; per-call options are "
                f"{', '.join(sorted(CALL_OPTIONS))} (provider fields go in extra={{...}})"
            )
        timeouts = self.timeouts if timeout is None else Timeouts.coerce(timeout, self.timeouts)
        chain_ids = self.fallbacks if fallbacks is None else fallbacks
        return Call(
            messages=msgs, target=target, mode="text" if prompt is not None else "chat",
            prompt=prompt, stream=stream, tools=[] if tools is None else to_tools(tools),
            tool_choice=tool_choice,
            temperature=temperature, max_tokens=max_tokens,
            stop=[stop] if isinstance(stop, str) else (list(stop) if stop else None),
            top_p=top_p, seed=seed, extra=extra, timeouts=timeouts,
            deadline=time.monotonic() + timeouts.total if timeouts.total else None,
            fallbacks=[self.settings.resolve(m) for m in chain_ids] if chain_ids else (),
            options=options,
        )

    # --- public API ---------------------------------------------------------

    async def complete(self, model: str | None, messages: Iterable[MessageLike] | str,
                       **kwargs: Any) -> Response:
        """One normalized Response. See the README for every keyword."""
        outcome = await self._run(self.build_call(model, messages, **kwargs))
        assert isinstance(outcome, Response)
        return outcome

    def stream(self, model: str | None, messages: Iterable[MessageLike] | str,
               **kwargs: Any) -> StreamRequest:
        """``async with client.stream(...) as s: async for event in s: ...``"""
        return StreamRequest(self, self.build_call(model, messages, stream=True, **kwargs))

    async def complete_text(self, model: str | None, prompt: str, **kwargs: Any) -> Response:
        """Plain text completion (the /v1/completions wire, or the local model)."""
        outcome = await self._run(self.build_call(model, None, prompt=prompt, **kwargs))
        assert isinstance(outcome, Response)
        return outcome

    def stream_text(self, model: str | None, prompt: str, **kwargs: Any) -> StreamRequest:
        return StreamRequest(self, self.build_call(model, None, prompt=prompt, stream=True,
                                                   **kwargs))

    async def batch(self, requests: Iterable[RequestLike], *, model: str | None = None,
                    concurrency: int = 16, on_result: OnResult | None = None
                    ) -> list[BatchResult]:
        """Run many requests (dicts: id, messages or prompt, model, options), at most
        ``concurrency`` at once through the whole chain (rate limits apply); one
        BatchResult per request, in input order, errors included.
        ``on_result(result)`` (sync or async) runs as each one finishes."""
        from .batch import run_batch
        return await run_batch(self, requests, model=model, concurrency=concurrency,
                               on_result=on_result)

    async def health_check(self, providers: Sequence[str] | None = None) -> list[HealthReport]:
        """Key present, reachable, latency and breaker state for every configured
        provider (or those named), by listing models: never spends tokens."""
        from .health import health_check
        return await health_check(self, providers)

    async def aclose(self) -> None:
        for t in list(self._transports.values()):
            await t.aclose()
        self._transports.clear()
        if self._transport_override is not None:
            await self._transport_override.aclose()

    async def close(self) -> None:
        """Same as :meth:`aclose`: release pooled connections and transports."""
        await self.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


class StreamRequest:
    """What ``stream()`` returns: await it, ``async with`` it, or ``async for`` over it."""

    def __init__(self, client: AsyncClient, call: Call) -> None:
        self._client = client
        self.call = call
        self._stream: AsyncStream | None = None

    async def open(self) -> AsyncStream:
        if self._stream is None:
            outcome = await self._client._run(self.call)
            assert isinstance(outcome, AsyncStream)
            self._stream = outcome
        return self._stream

    def __await__(self) -> Generator[Any, None, AsyncStream]:
        return self.open().__await__()

    async def __aenter__(self) -> AsyncStream:
        return await self.open()

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._stream is not None:
            await self._stream.aclose()

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        stream = await self.open()
        try:
            async for event in stream:
                yield event
        finally:
            await stream.aclose()

    @property
    def response(self) -> Response:
        if self._stream is None:
            raise RuntimeError("the stream has not been opened")
        return self._stream.response
