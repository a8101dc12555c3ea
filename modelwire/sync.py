"""Client: the sync facade. It runs an AsyncClient on a private event-loop thread.

Never ``asyncio.run`` per call: the loop, the connection pool and the model
loaded by the local provider live as long as the Client. Streams cross the
thread boundary a network chunk at a time, not an event at a time.

``with Client() as client:`` (or ``client.close()``) releases connections at
a point of your choosing; a Client never closed is closed quietly when it is
garbage-collected or at interpreter exit (no "Unclosed client session").
Closing cancels calls still running on other threads (they raise
ConfigurationError at once); a closed Client refuses new calls the same way, and so
does a Client inherited by a forked child (its loop thread stays in the parent).
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Future
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .client import AsyncClient
from .errors import ConfigurationError
from .response import Embeddings, Response, StreamEvent
from .streaming import AsyncStream, StreamRequest
from .types import MessageLike, ToolLike

if TYPE_CHECKING:
    from .batch import BatchResult, OnResult, RequestLike
    from .conversation import Conversation
    from .model_client import Model
    from .observe.tokens import TokenCount
    from .tools.loop import ToolResultEvent, ToolRunResult, ToolStream

T = TypeVar("T")


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever,
                                       name="modelwire-loop", daemon=True)
        self.closing = False  # close() has begun: no new calls; calls in flight are cancelled
        self.pid = os.getpid()  # a forked child has the loop object but not its thread
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self.closing or self.loop.is_closed() or os.getpid() != self.pid:
            coro.close()  # never scheduled: no "coroutine was never awaited" warning
            if os.getpid() != self.pid:  # it used to wait forever
                raise ConfigurationError(
                    "this Client was created in another process (this one was forked from "
                    "it, e.g. by multiprocessing), where its event-loop thread stays: create "
                    "a Client in each process (a Pool's initializer, say)")
            raise _closed()
        fut: Future[T | _Fatal] = asyncio.run_coroutine_threadsafe(_guarded(coro), self.loop)
        try:
            result = fut.result(timeout)
        except KeyboardInterrupt:
            fut.cancel()
            raise
        except CancelledError:
            if self.closing:  # close() from another thread while this call was in flight
                raise _closed(in_flight=True) from None
            raise
        if isinstance(result, _Fatal):  # raised in the loop thread: raised here instead
            raise result.exception
        return result

    def shut_down(self, client: AsyncClient) -> None:
        """Refuse new calls, cancel the ones in flight, close ``client``, stop the loop."""
        if os.getpid() != self.pid:  # a forked child: the loop and connections are the parent's
            self.closing = True
            return
        self.closing = True
        if self.loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(_cancel_in_flight_then_close(client),
                                                   self.loop)
            try:
                fut.result(5.0)
            except Exception:
                pass
        self.stop()

    def stop(self) -> None:
        self.closing = True
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


class _Fatal:
    __slots__ = ("exception",)

    def __init__(self, exception: BaseException) -> None:
        self.exception = exception


async def _guarded(coro: Coroutine[Any, Any, T]) -> T | _Fatal:
    """A KeyboardInterrupt/SystemExit raised in a task (a tool raising it, say) would
    escape the loop thread's run_forever, kill it and leave the caller waiting
    forever: it travels back to the calling thread as a value."""
    try:
        return await coro
    except (KeyboardInterrupt, SystemExit) as e:
        return _Fatal(e)


class Client:
    """Sync twin of :class:`AsyncClient`; takes the same arguments."""

    def __init__(self, **kwargs: Any) -> None:
        self._loop = _LoopThread()
        try:
            self._async = self._loop.run(_construct(kwargs))
        except BaseException:
            self._loop.stop()
            raise
        # Runs once: on close(), on garbage collection, or at interpreter exit.
        self._closer = weakref.finalize(self, _shut_down, self._loop, self._async)

    @property
    def aio(self) -> AsyncClient:
        """The AsyncClient underneath (its methods must run on this client's loop)."""
        return self._async

    def __repr__(self) -> str:
        return f"<Client of {self._async!r}>"

    def complete(self, model: str | None, messages: Iterable[MessageLike] | str,
                 **kwargs: Any) -> Response:
        return self._loop.run(self._async.complete(model, messages, **kwargs))

    def stream(self, model: str | None, messages: Iterable[MessageLike] | str,
               **kwargs: Any) -> Stream:
        return Stream(self._loop, self._async.stream(model, messages, **kwargs), self)

    def complete_text(self, model: str | None, prompt: str, **kwargs: Any) -> Response:
        return self._loop.run(self._async.complete_text(model, prompt, **kwargs))

    def stream_text(self, model: str | None, prompt: str, **kwargs: Any) -> Stream:
        return Stream(self._loop, self._async.stream_text(model, prompt, **kwargs), self)

    def batch(self, requests: Iterable[RequestLike], *, model: str | None = None,
              concurrency: int = 16, on_result: OnResult | None = None) -> list[BatchResult]:
        """See :meth:`AsyncClient.batch`; ``on_result`` runs on the client's loop thread."""
        return self._loop.run(self._async.batch(requests, model=model, concurrency=concurrency,
                                                on_result=on_result))
    def model(self, name: str) -> Model:
        """A sync client for one model (alias or id); see :mod:`modelwire.model_client`."""
        from .model_client import Model
        return Model(self, name)

    def count_tokens(self, model: str | None, messages: Iterable[MessageLike] | str | None = None,
                     *, text: str | None = None,
                     tools: Iterable[ToolLike] | None = None) -> TokenCount:
        return self._loop.run(self._async.count_tokens(model, messages, text=text, tools=tools))

    def budget_status(self) -> dict[str, dict[str, float]]:
        return self._loop.run(self._async.budget_status())

    def run_tools(self, model: str | None, messages: Iterable[MessageLike] | str, *,
                  tools: Sequence[ToolLike], max_turns: int = 10,
                  tool_timeout: float | None = None, parallel: bool = True,
                  **kwargs: Any) -> ToolRunResult:
        """Sync twin of :meth:`AsyncClient.run_tools` (sync tools run in a thread pool)."""
        return self._loop.run(self._async.run_tools(
            model, messages, tools=tools, max_turns=max_turns, tool_timeout=tool_timeout,
            parallel=parallel, **kwargs))

    def stream_tools(self, model: str | None, messages: Iterable[MessageLike] | str, *,
                     tools: Sequence[ToolLike], **kwargs: Any) -> SyncToolStream:
        return SyncToolStream(self._loop, self._async.stream_tools(model, messages, tools=tools,
                                                                   **kwargs))

    def embed(self, model: str | None, inputs: str | Sequence[str], *,
              batch_size: int | None = None, **kwargs: Any) -> Embeddings:
        """Sync twin of :meth:`AsyncClient.embed`."""
        return self._loop.run(self._async.embed(model, inputs, batch_size=batch_size, **kwargs))

    def conversation(self, model: str | None, *, system: str | None = None,
                     tools: Sequence[ToolLike] | None = None,
                     max_context_tokens: int | None = None, summarize_with: str | None = None,
                     **settings: Any) -> Conversation:
        """Sync twin of :meth:`AsyncClient.conversation`."""
        from .conversation import Conversation
        return Conversation(self, self._async.conversation(
            model, system=system, tools=tools, max_context_tokens=max_context_tokens,
            summarize_with=summarize_with, **settings))

    def close(self) -> None:
        """Release pooled connections and the event-loop thread (idempotent)."""
        self._closer()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        # Extra async methods added to AsyncClient (health_check, ...) appear here too.
        attr = getattr(self._async, name)
        if asyncio.iscoroutinefunction(attr):
            def call(*a: Any, **kw: Any) -> Any:
                return self._loop.run(attr(*a, **kw))
            return call
        return attr


async def _construct(kwargs: dict[str, Any]) -> AsyncClient:
    return AsyncClient(**kwargs)


def _shut_down(loop: _LoopThread, client: AsyncClient) -> None:
    """Close ``client`` on its loop, then stop the loop (must not reference the Client)."""
    if loop.loop.is_closed():
        return
    if threading.current_thread() is loop.thread:  # collected on its own loop: no waiting
        loop.loop.create_task(client.aclose())
        return
    loop.shut_down(client)


async def _cancel_in_flight_then_close(client: AsyncClient) -> None:
    """Calls other threads still wait on would otherwise wait forever once the loop
    stops: cancel them (they raise a ConfigurationError saying the client was closed)."""
    me = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not me]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=2.0)
    await client.aclose()


def _closed(in_flight: bool = False) -> ConfigurationError:
    if in_flight:
        return ConfigurationError(
            "the modelwire Client was closed while this call was in flight (another thread "
            "called close()): close a client only after its last call returns")
    return ConfigurationError("this modelwire Client is closed: make a new one (a Client "
                              "is closed by close(), by leaving its `with` block, or at exit)")


class Stream:
    """Iterate events; ``.response`` afterwards; ``with`` closes early."""

    def __init__(self, loop: _LoopThread, request: StreamRequest,
                 owner: Client | None = None) -> None:
        self._owner = owner  # keeps the Client (and its connections) alive while streaming
        self._loop = loop
        self._request = request
        self._stream: AsyncStream | None = None
        self._batch: list[StreamEvent] = []
        self._pos = 0
        # `for ev in client.stream(...): break` drops this object unclosed: close the
        # stream then, so metrics, OTel and the breaker see it end (abandoned) and its
        # connection is freed
        weakref.finalize(self, _close_dropped, loop, request).atexit = False

    def _open(self) -> AsyncStream:
        if self._stream is None:
            self._stream = self._loop.run(self._request.open())
        return self._stream

    def __iter__(self) -> Iterator[StreamEvent]:
        stream = self._open()
        run = self._loop.run
        while True:
            batch = run(stream.next_batch())
            if batch is None:
                return
            yield from batch

    @property
    def response(self) -> Response:
        return self._open().response

    @property
    def partial(self) -> Response:
        return self._open().partial

    @property
    def partial_object(self) -> Any:
        """Structured output parsed so far (needs ``response_format=``)."""
        return self._open().partial_object

    def collect(self) -> Response:
        return self._loop.run(self._open().collect())

    def close(self) -> None:
        if self._stream is not None and not (self._loop.closing or self._loop.loop.is_closed()):
            self._loop.run(self._stream.aclose())  # (a closed client closed it already)

    def __enter__(self) -> Stream:
        self._open()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _close_dropped(loop: _LoopThread, request: StreamRequest) -> None:
    """Close a stream whose sync wrapper was dropped before it ended (never raises)."""
    stream = request._stream
    if stream is None or stream.ended or loop.loop.is_closed():
        return
    try:
        if threading.current_thread() is loop.thread:  # collected on the loop itself
            loop.loop.create_task(stream.aclose())
        else:
            loop.run(stream.aclose(), timeout=5.0)
    except Exception:  # a finalizer has no caller to tell; the loop may be stopping
        pass


class SyncToolStream:
    """Sync twin of :class:`~modelwire.tools.loop.ToolStream`."""

    def __init__(self, loop: _LoopThread, stream: ToolStream) -> None:
        self._loop = loop
        self._stream = stream

    def __iter__(self) -> Iterator[StreamEvent | ToolResultEvent]:
        events = aiter(self._stream)
        try:
            while True:
                event = self._loop.run(_next(events))
                if event is _END:
                    return
                yield event
        finally:  # the caller stopped early: stop the tools still running, end the stream
            self.close()

    def __enter__(self) -> SyncToolStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def result(self) -> ToolRunResult:
        return self._stream.result

    def close(self) -> None:
        self._loop.run(self._stream.aclose())


_END = object()


async def _next(it: Any) -> Any:
    return await anext(it, _END)
