"""The terminal step: encode -> transport -> decode, for one target.

This is the single error boundary between the wire and the caller: transport
failures and provider error bodies leave here as typed errors tagged with
provider and model.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TypeVar

from .accumulate import StreamAccumulator
from .errors import ProviderError
from .pipeline import Call
from .providers.base import Codec, event_decoder
from .response import Response, StreamEvent
from .streaming import AsyncStream
from .transports.base import Transport, WireResponse
from .wire.sse import SSEParser

E = TypeVar("E", bound=ProviderError)


def tag(err: E, call: Call) -> E:
    if not err.provider:
        err.provider = call.target.provider
    if not err.model:
        err.model = call.target.model
    return err


async def _send(call: Call, codec: Codec, transport: Transport) -> WireResponse:
    request = codec.encode(call)
    timeouts = call.timeouts
    remaining = call.remaining()
    if remaining is not None and (timeouts.total is None or remaining < timeouts.total):
        timeouts = type(timeouts)(timeouts.connect, timeouts.read, max(remaining, 0.001))
    try:
        resp = await transport.send(request, timeouts)
    except ProviderError as e:
        raise tag(e, call) from None
    if resp.status >= 400:
        try:
            body = await resp.read()
        except ProviderError as e:
            raise tag(e, call) from None
        raise tag(codec.classify_error(resp.status, resp.headers, body), call)
    return resp


async def complete(call: Call, codec: Codec, transport: Transport) -> Response:
    started = time.perf_counter()
    resp = await _send(call, codec, transport)
    try:
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
    resp = await _send(call, codec, transport)
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
            batch: list[StreamEvent] = []
            for sse in feed(chunk):
                batch += add(decode(sse))
            if batch:
                yield batch
        batch = []
        for sse in parser.close():
            batch += add(decode(sse))
        if batch:
            yield batch
    except ProviderError as e:
        raise tag(e, call) from None
    finally:
        await resp.aclose()
