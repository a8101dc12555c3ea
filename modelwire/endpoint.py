"""The terminal step: encode -> transport -> decode, for one target.

This is the single error boundary between the wire and the caller: transport
failures and provider error bodies leave here as typed errors tagged with
provider and model.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from .accumulate import Delta, StreamAccumulator
from .errors import InvalidMessageError, ProviderError
from .pipeline import Call, Timeouts
from .providers.base import Codec, event_decoder
from .response import Response, StreamEvent
from .streaming import AsyncStream
from .transports.base import Transport, WireRequest, WireResponse
from .wire.sse import SSEEvent, SSEParser

E = TypeVar("E", bound=ProviderError)

_DEADLINE_SLACK = 0.005  # seconds a first attempt may run past the call's deadline


def tag(err: E, call: Call) -> E:
    if not err.provider:
        err.provider = call.target.provider
    if not err.model:
        err.model = call.target.model
    return err


def _timeouts(call: Call) -> Timeouts:
    timeouts = call.timeouts
    remaining = call.remaining()
    # Shrink the total only when the deadline has really moved (a retry, a wait):
    # on a first attempt it is microseconds short of the total, and a new Timeouts
    # per call would defeat the transport's cache of its own timeout objects.
    if remaining is not None and (timeouts.total is None
                                  or remaining < timeouts.total - _DEADLINE_SLACK):
        timeouts = type(timeouts)(timeouts.connect, timeouts.read, max(remaining, 0.001))
    return timeouts


def _encode(codec: Codec, call: Call) -> WireRequest:
    try:
        return codec.encode(call)
    except UnicodeEncodeError as e:  # a lone surrogate ("\\ud800" in JSON) in some text
        raise InvalidMessageError(
            f"the request holds text that is not valid Unicode ({e.object[e.start:e.end]!r}, "
            "a lone surrogate): clean it first, e.g. text.encode('utf-8', 'replace')"
            ".decode()") from None


async def _http_error(codec: Codec, resp: WireResponse) -> ProviderError:
    body = await resp.read()
    return codec.classify_error(resp.status, resp.headers, body)


# complete() and open_stream() each inline the send (no shared coroutine): one
# coroutine frame fewer per call is measurable at hundreds of calls in flight.


async def complete(call: Call, codec: Codec, transport: Transport) -> Response:
    started = time.perf_counter()
    request = _encode(codec, call)
    try:
        resp = await transport.send(request, _timeouts(call))
        if resp.status >= 400:
            raise await _http_error(codec, resp)
        body = await resp.read()
        response = codec.decode(body, resp.headers, call)
    except ProviderError as e:
        raise tag(e, call) from None
    response.latency = time.perf_counter() - started
    response.provider = call.target.provider
    if not response.model:
        response.model = call.target.model
    return response


async def open_stream(call: Call, codec: Codec, transport: Transport) -> AsyncStream:
    started = time.perf_counter()
    request = _encode(codec, call)
    try:
        resp = await transport.send(request, _timeouts(call))
        if resp.status >= 400:
            raise await _http_error(codec, resp)
    except ProviderError as e:
        raise tag(e, call) from None
    acc = StreamAccumulator(call.target.provider, call.target.model, started)
    stream = AsyncStream(_batches(call, codec, resp, acc), acc, resp.aclose)
    await stream._prime()
    return stream


async def _batches(call: Call, codec: Codec, resp: WireResponse,
                   acc: StreamAccumulator) -> AsyncIterator[list[StreamEvent]]:
    parser = SSEParser()
    feed, decode, add = parser.feed, event_decoder(codec), acc.feed
    try:
        async for chunk in resp.iter_chunks():
            events = feed(chunk)
            if events:
                batch = _accumulate(events, decode, add)
                if batch:
                    yield batch
        batch = _accumulate(parser.close(), decode, add)
        if batch:
            yield batch
    except ProviderError as e:
        raise tag(e, call) from None
    finally:
        await resp.aclose()


def _accumulate(events: list[SSEEvent], decode: Callable[[SSEEvent], list[Delta]],
                add: Callable[[list[Delta]], list[StreamEvent]]) -> list[StreamEvent]:
    """Decode a network chunk's events and feed the accumulator once, not per event."""
    deltas: list[Delta] = []
    try:
        for sse in events:
            deltas += decode(sse)
    except ProviderError:
        if deltas:
            add(deltas)  # events before the bad one still belong to the partial response
        raise
    return add(deltas) if deltas else []
