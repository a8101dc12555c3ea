"""The terminal step: encode -> transport -> decode, for one target.

This is the single error boundary between the wire and the caller: transport
failures and provider error bodies leave here as typed errors tagged with
provider and model. Each request is logged here at DEBUG (logger
``modelwire``): target, outcome, time, request id and the key, masked.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .accumulate import DONE, Delta, Done, Finish, Meta, StreamAccumulator, ToolCallChunk
from .errors import (
    InvalidMessageError,
    MalformedResponseError,
    ProviderError,
    RedirectError,
    RequestTimeoutError,
    ResponseTooLargeError,
    UnsupportedFeatureError,
    timeout_error,
)
from .hooks import log_request, logger
from .pipeline import Call, Timeouts
from .providers.base import Codec, event_decoder
from .response import ReasoningDelta, Response, StreamEvent, TextDelta, Usage, UsageUpdate
from .streaming import AsyncStream
from .transports.base import Transport, WireRequest, WireResponse
from .wire.sse import SSEEvent, SSEParser

E = TypeVar("E", bound=ProviderError)

_DEADLINE_SLACK = 0.005  # seconds a first attempt may run past the call's deadline


def tag(err: E, call: Call) -> E:
    key = call.target.api_key
    if key and key in err.message:  # a body excerpt from a server that echoed the key
        err.message = err.message.replace(key, "[redacted]")
        err.args = (err.message,)
    if not err.provider:
        err.provider = call.target.provider
    if not err.model:
        err.model = call.target.model
    return err


def _boundary(err: E, call: Call) -> E:
    """Tag ``err``; a total timeout names the call's total, not what was left of it."""
    tag(err, call)
    if isinstance(err, RequestTimeoutError) and err.limit == "total":
        total = call.timeouts.total
        if total is not None and err.seconds is not None and err.seconds != total:
            err.message = err.message.replace(f"Timeouts.total={err.seconds:g}s",
                                              f"Timeouts.total={total:g}s")
            err.args = (err.message,)
            err.seconds = total
    return err


def _timeouts(call: Call) -> Timeouts:
    timeouts = call.timeouts
    remaining = call.remaining()
    # Shrink the total only when the deadline has really moved (a retry, a wait):
    # on a first attempt it is microseconds short of the total, and a new Timeouts
    # per call would defeat the transport's cache of its own timeout objects.
    if remaining is not None and (timeouts.total is None
                                  or remaining < timeouts.total - _DEADLINE_SLACK):
        timeouts = type(timeouts)(timeouts.connect, timeouts.read, max(remaining, 0.001),
                                  timeouts.first_event)
    return timeouts


def _encode(encode: Callable[[Call], WireRequest], call: Call) -> WireRequest:
    try:
        return encode(call)
    except UnicodeEncodeError as e:  # a lone surrogate ("\\ud800" in JSON) in some text
        raise InvalidMessageError(
            f"the request holds text that is not valid Unicode ({e.object[e.start:e.end]!r}, "
            "a lone surrogate): clean it first, e.g. text.encode('utf-8', 'replace')"
            ".decode()") from None


async def _http_error(codec: Codec, resp: WireResponse, call: Call) -> ProviderError:
    if resp.status < 400:  # a 3xx: never followed, so the key never leaves for another host
        await resp.aclose()
        return _redirect(resp.status, resp.headers.get("location"))
    body = await resp.read(call.max_response_bytes)
    return codec.classify_error(resp.status, resp.headers, body)


def _redirect(status: int, location: str | None) -> RedirectError:
    host: str | None = None
    if location:
        try:
            parts = urlsplit(location)
            host = parts.hostname
            if host and parts.port:
                host = f"{host}:{parts.port}"
        except ValueError:
            host = None
    where = (f"to host {host!r}" if host else
             "to another path" if location else "without a Location header")
    return RedirectError(
        f"the server answered HTTP {status}, a redirect {where}; redirects are never "
        "followed (the API key would travel with them): set the base URL to the final "
        "address", status=status, location=host)


# complete() and open_stream() each inline the send (no shared coroutine): one
# coroutine frame fewer per call is measurable at hundreds of calls in flight.


async def complete(call: Call, codec: Codec, transport: Transport) -> Response:
    started = time.perf_counter()
    request = _encode(codec.encode, call)
    try:
        resp = await transport.send(request, _timeouts(call))
        if resp.status >= 300:
            raise await _http_error(codec, resp, call)
        body = await resp.read(call.max_response_bytes)
        response = codec.decode(body, resp.headers, call)
    except ProviderError as e:
        if logger.isEnabledFor(10):  # logging.DEBUG
            log_request(call.target, f"failed: {type(e).__name__}",
                        time.perf_counter() - started, e.request_id)
        raise _boundary(e, call) from None
    response.latency = time.perf_counter() - started
    response.provider = call.target.provider
    if not response.model:
        response.model = call.target.model
    if logger.isEnabledFor(10):
        log_request(call.target, "answered", response.latency, response.request_id)
    return response



async def verb(call: Call, codec: Any,
               transport: Transport, encode: Callable[[Call], WireRequest],
               decode: Callable[[bytes, Mapping[str, str], Call], Response]) -> Response:
    """One exchange for a codec's other verbs (count tokens, embed): the same
    limits and error boundary as complete()."""
    started = time.perf_counter()
    request = _encode(encode, call)
    try:
        resp = await transport.send(request, _timeouts(call))
        if resp.status >= 300:
            raise await _http_error(codec, resp, call)
        response = decode(await resp.read(call.max_response_bytes), resp.headers, call)
    except ProviderError as e:
        raise _boundary(e, call) from None
    response.latency = time.perf_counter() - started
    response.provider = call.target.provider
    if not response.model:
        response.model = call.target.model
    return response


def count_tokens(call: Call, codec: Any, transport: Transport) -> Awaitable[Response]:
    """The count-tokens verb (Anthropic, Gemini): the prompt's input tokens as the
    provider counts them, in ``usage.input_tokens`` of an otherwise empty Response."""
    def decode(body: bytes, headers: Mapping[str, str], call: Call) -> Response:
        n = codec.decode_count_tokens(body, headers, call)
        if n < 0:  # a count below zero is no count (one check for every codec)
            raise MalformedResponseError(
                f"the count-tokens answer has a negative count ({n})",
                provider=call.target.provider, model=call.target.model, body=body[:500])
        return Response(usage=Usage(n, 0, n, source="reported"))
    return verb(call, codec, transport, codec.encode_count_tokens, decode)


def embed(call: Call, codec: Any, transport: Transport) -> Awaitable[Response]:
    """The embedding verbs of a codec (``encode_embed`` / ``decode_embed``)."""
    if getattr(codec, "encode_embed", None) is None:
        raise UnsupportedFeatureError(
            f"provider {call.target.provider!r} has no embeddings endpoint in modelwire; "
            "use openai, azure, gemini, mistral or an OpenAI-compatible server")
    return verb(call, codec, transport, codec.encode_embed, codec.decode_embed)


def open_stream(call: Call, codec: Codec, transport: Transport) -> Awaitable[AsyncStream]:
    """A primed stream. With ``Timeouts.first_event`` the attempt is bounded by it."""
    first = call.timeouts.first_event
    if first is None:
        return _open_stream(call, codec, transport)
    return _first_event_bounded(call, codec, transport, first)


async def _first_event_bounded(call: Call, codec: Codec, transport: Transport,
                               seconds: float) -> AsyncStream:
    try:  # wait_for, not asyncio.timeout: that one is Python 3.11+
        return await asyncio.wait_for(_open_stream(call, codec, transport), seconds)
    except asyncio.TimeoutError:
        pass
    error = timeout_error("first_event", seconds, "waiting for the stream's first event")
    raise tag(error, call)  # outside the except clause: no __context__


async def _open_stream(call: Call, codec: Codec, transport: Transport) -> AsyncStream:
    started = time.perf_counter()
    request = _encode(codec.encode, call)
    try:
        resp = await transport.send(request, _timeouts(call))
        if resp.status >= 300:
            raise await _http_error(codec, resp, call)
    except ProviderError as e:
        if logger.isEnabledFor(10):  # logging.DEBUG
            log_request(call.target, f"stream failed: {type(e).__name__}",
                        time.perf_counter() - started, e.request_id)
        raise _boundary(e, call) from None
    acc = StreamAccumulator(call.target.provider, call.target.model, started)
    stream = AsyncStream(_batches(call, codec, resp, acc), acc, resp.aclose)
    try:
        await stream._prime()
    except asyncio.CancelledError:  # the first_event timeout: release the connection
        await stream.aclose()
        raise
    if logger.isEnabledFor(10):
        log_request(call.target, "stream opened (first event)",
                    time.perf_counter() - started, stream.partial.request_id)
    return stream


async def _batches(call: Call, codec: Codec, resp: WireResponse,
                   acc: StreamAccumulator) -> AsyncIterator[list[StreamEvent]]:
    parser = SSEParser(call.max_event_bytes)
    feed, decode, add = parser.feed, event_decoder(codec), acc.feed
    try:
        chunks = resp.iter_chunks()
        if "event-stream" not in resp.headers.get("content-type", "text/event-stream"):
            head = b""
            async for head in chunks:
                if head.strip():
                    break
            if not _looks_like_sse(head):  # a JSON error, an HTML page, a whole answer
                body = await _rest(head, chunks, call.max_response_bytes)
                batch = add(_whole_answer(codec, resp, body, call))
                if batch:
                    yield batch
                return
            chunks = _prepend(head, chunks)  # SSE under another label: parse it as SSE
        async for chunk in chunks:
            events = feed(chunk)
            if events:
                batch = _accumulate(events, decode, add)
                if batch:
                    yield batch
                if acc.done:  # the terminal event: whatever follows is not the answer
                    return
        batch = _accumulate(parser.close(), decode, add)
        if batch:
            yield batch
    except ProviderError as e:
        raise _boundary(e, call) from None
    finally:
        await resp.aclose()


def _accumulate(events: list[SSEEvent], decode: Callable[[SSEEvent], list[Delta]],
                add: Callable[[list[Delta]], list[StreamEvent]]) -> list[StreamEvent]:
    """Decode a network chunk's events and feed the accumulator once, not per event.

    The accumulator stops at the terminal event (``Done``); events after it in
    the same chunk are decoded with the rest, and if one of them fails to
    decode, that is not an error of the answer, which was already complete.
    """
    deltas: list[Delta] = []
    try:
        for sse in events:
            deltas += decode(sse)
    except ProviderError:
        if any(type(d) is Done for d in deltas):
            return add(deltas)
        if deltas:
            add(deltas)  # events before the bad one still belong to the partial response
        raise
    return add(deltas) if deltas else []


# --- a streaming request answered with something other than SSE --------------

_SSE_STARTS = (b"data:", b"event:", b":", b"id:", b"retry:")
_TAGS = re.compile(r"<[^>]*>")


def _looks_like_sse(head: bytes) -> bool:
    return head.lstrip().startswith(_SSE_STARTS)


async def _prepend(head: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield head
    async for chunk in chunks:
        yield chunk


async def _rest(head: bytes, chunks: AsyncIterator[bytes], max_bytes: int) -> bytes:
    parts, size = [head], len(head)
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLargeError(
                f"the non-SSE answer to a streaming request is larger than "
                f"max_response_bytes={max_bytes} bytes; the connection was closed",
                limit=max_bytes)
        parts.append(chunk)
    return b"".join(parts)


def _whole_answer(codec: Codec, resp: WireResponse, body: bytes, call: Call) -> list[Delta]:
    """A non-SSE body by its content type: an error body is that typed error, a
    whole JSON answer becomes the deltas of a one-answer stream, else malformed."""
    kind = resp.headers.get("content-type", "") or "no content type"
    payload: Any = None
    if "json" in kind or body.lstrip()[:1] in (b"{", b"["):
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            payload = None
    if payload is not None:
        first = payload[0] if isinstance(payload, list) and payload else payload
        if isinstance(first, Mapping) and ("error" in first or "detail" in first):
            raise codec.classify_error(resp.status, resp.headers, body)
        if isinstance(payload, Mapping):
            return _deltas_of(codec.decode(body, resp.headers, call))
    text = body[:2000].decode("utf-8", "replace")
    excerpt = " ".join(_TAGS.sub(" ", text).split())[:200]
    raise MalformedResponseError(
        f"a streaming request was answered with {kind.split(';')[0]} instead of "
        f"text/event-stream (HTTP {resp.status}): {excerpt!r}", status=resp.status)


def _deltas_of(response: Response) -> list[Delta]:
    out: list[Delta] = [Meta(response.request_id, response.model or None)]
    if response.reasoning:
        out.append(ReasoningDelta(response.reasoning))
    if response.text:
        out.append(TextDelta(response.text))
    for i, c in enumerate(response.tool_calls):
        out.append(ToolCallChunk(i, c.id, c.name, c.raw_arguments, complete=True))
    out.append(UsageUpdate(response.usage))
    out += [Finish(response.finish_reason, response.raw_finish_reason), DONE]
    return out
