"""AsyncStream, and StreamRequest (what ``AsyncClient.stream()`` returns: it opens
the AsyncStream when awaited, entered or iterated).

Events come from the shared accumulator, a network chunk at a time. The
endpoint *primes* a stream (reads up to its first event) before handing it up
the middleware chain, so retry and fallback act only while the caller has seen
nothing. A failure after that raises :class:`StreamInterruptedError` holding
the partial response; a stream that ends without its wire's terminal event
does too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .accumulate import StreamAccumulator
from .errors import ModelwireError, ProviderConnectionError, ProviderError, StreamInterruptedError
from .response import Attempt, Response, StreamEvent, UsageUpdate

if TYPE_CHECKING:
    from .client import AsyncClient
    from .pipeline import Call

Batches = AsyncIterator[list[StreamEvent]]


class AsyncStream:
    def __init__(self, batches: Batches, acc: StreamAccumulator,
                 close: Callable[[], object] | None = None) -> None:
        self._batches = batches
        self._acc = acc
        self._close = close
        self._buf: list[StreamEvent] = []
        self._pos = 0
        self._response: Response | None = None
        self._closed = False
        self.attempts: list[Attempt] = []  # set by fallback; copied to the final Response
        self.on_finish: list[Callable[[Response], Awaitable[None]]] = []
        # Called once when the stream ends after priming: with the Response, the
        # error the caller got, or None when the caller closed it before the end
        # (on_finish callbacks run first, with the Response only).
        self.on_end: list[Callable[[Response | ProviderError | None], Awaitable[None]]] = []
        self._ended = False
        self._exhausted = False  # the batches ran out while priming; finish on the next pull
        self.output: Any = None  # the OutputSpec when the call asked for a response_format

    # --- priming and batches (used by the endpoint and the sync facade) ----

    async def _prime(self) -> None:
        """Read until the first content event; errors here propagate unwrapped.

        Usage-only events (Anthropic's ``message_start``) don't count as output,
        so a failure right after them is still retried or falls back. A stream
        that ends with no output and no terminal event was cut like a dropped
        connection, and is reported as one (retryable).
        """
        buffered: list[StreamEvent] = []
        try:
            while True:
                batch = await self._pull(wrap=False)
                if batch is None:
                    break
                buffered += batch
                if any(type(e) is not UsageUpdate for e in batch):
                    break
        except StreamInterruptedError as e:
            raise ProviderConnectionError(
                "the stream ended before any output and without its terminal event",
                provider=e.provider, model=e.model, retryable=True,
            ) from e
        self._buf, self._pos = buffered, 0

    async def _pull(self, wrap: bool = True) -> list[StreamEvent] | None:
        if self._response is not None or self._closed:
            return None
        if self._exhausted:
            await self._finish()
            return None
        try:
            return await self._batches.__anext__()
        except StopAsyncIteration:
            if not wrap:
                # Ended while priming (an empty answer): check it is whole now (the
                # primer turns a cut into a retryable error), but finish it when the
                # caller reads on, once the middleware has hung its callbacks on it.
                self._acc.response()
                self._exhausted = True
                return None
            await self._finish()
            return None
        except StreamInterruptedError as e:
            if wrap:
                e.retryable = False
            await self._end(e)
            await self.aclose()
            raise
        except ProviderError as e:
            if not wrap:
                await self.aclose()
                raise
            error = StreamInterruptedError(
                f"stream failed after it began: {type(e).__name__}: {e.message}",
                provider=e.provider or self._acc.provider, model=e.model or self._acc.model,
                status=e.status, partial=self._acc.partial(), cause=e, retryable=False,
                body=e.body,
            )
            await self._end(error)
            await self.aclose()
            raise error from e

    async def _finish(self) -> None:
        self._exhausted = False
        try:
            response = self._acc.response()  # raises if no terminal event
        except StreamInterruptedError as e:
            await self._end(e)
            raise
        response.attempts = list(self.attempts)
        self._response = response
        for callback in self.on_finish:
            await callback(response)
        await self._end(response)

    @property
    def ended(self) -> bool:
        """True once the stream finished, failed or was closed (``on_end`` has run)."""
        return self._ended

    async def _end(self, outcome: Response | ProviderError | None) -> None:
        if not self._ended:
            self._ended = True
            for callback in self.on_end:
                await callback(outcome)

    async def next_batch(self) -> list[StreamEvent] | None:
        """The rest of the current batch, or the next one; None at the end."""
        if self._pos < len(self._buf):
            batch = self._buf[self._pos:] if self._pos else self._buf
            self._buf, self._pos = [], 0
            return batch
        while True:
            pulled = await self._pull()
            if not pulled and pulled is not None:
                continue
            return pulled

    # --- public surface ----------------------------------------------------

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> StreamEvent:
        pos, buf = self._pos, self._buf
        if pos < len(buf):  # the common case: the event is already here
            self._pos = pos + 1
            return buf[pos]
        while self._pos >= len(self._buf):
            batch = await self._pull()
            if batch is None:
                raise StopAsyncIteration
            self._buf, self._pos = batch, 0
        event = self._buf[self._pos]
        self._pos += 1
        return event

    @property
    def response(self) -> Response:
        """The final Response (the same type ``complete()`` returns)."""
        if self._response is None:
            raise ModelwireError("the stream is not finished: iterate it to the end first")
        return self._response

    @property
    def partial(self) -> Response:
        """What has arrived so far."""
        return self._response or self._acc.partial()

    @property
    def partial_object(self) -> Any:
        """Structured output parsed so far (partial JSON); needs ``response_format=``."""
        if self.output is None:
            raise ModelwireError("partial_object needs a stream opened with response_format=")
        from .structured import partial_of
        return partial_of(self.partial, self.output)

    async def collect(self) -> Response:
        """Drain the stream and return the final Response."""
        while await self.next_batch() is not None:
            pass
        return self.response

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._end(None)
        aclose = getattr(self._batches, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:
                pass
        if self._close is not None:
            result = self._close()
            if hasattr(result, "__await__"):
                await result

    async def __aenter__(self) -> AsyncStream:
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
            if self.call.response_format is not None:
                from .structured import watch_stream
                watch_stream(outcome, self.call.response_format)
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
