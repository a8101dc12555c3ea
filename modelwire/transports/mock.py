"""The ``mock`` provider's transport: scripted replies on the real OpenAI wire.

The mock row uses the OpenAI codec, so this transport receives exactly what
OpenAI would (``/chat/completions`` or ``/completions`` JSON) and answers with
the bytes OpenAI sends: a JSON body, or SSE chunks (role chunk, content and
tool-call deltas, a finish chunk, the ``stream_options.include_usage`` usage
chunk when asked for, ``data: [DONE]``). Nothing above the transport knows it
is talking to a mock. What to answer comes from :class:`modelwire.mock.MockReply`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..errors import (
    ConfigurationError,
    ProviderConnectionError,
    ResponseTooLargeError,
    timeout_error,
)
from ..mock import MockReply
from ..pipeline import Timeouts
from .base import WireRequest

_WORD = re.compile(r"\s*\S+|\s+$")


class MockTransport:
    """FIFO of scripted replies plus a log of the requests received.

    Safe to script from another thread than the one running the event loop
    (the sync ``Client`` runs its loop on a private thread).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[MockReply] = deque()
        self._requests: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"<MockTransport pending={self.pending} requests={len(self._requests)}>"

    def script(self, *replies: MockReply) -> None:
        """Queue replies; each request takes the oldest. None queued: echo."""
        for i, r in enumerate(replies):
            if not isinstance(r, MockReply):
                raise ConfigurationError(
                    f"mock.script() takes MockReply objects; argument {i} is {r!r}"
                )
        with self._lock:
            self._queue.extend(replies)

    def clear(self) -> None:
        """Forget queued replies and recorded requests."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The JSON request bodies received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """Scripted replies not used yet."""
        with self._lock:
            return len(self._queue)

    async def send(self, request: WireRequest, timeouts: Timeouts) -> MockResponse:
        started = time.monotonic()
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            return _refuse(400, "the request body is not a JSON object", timeouts, started)
        path = request.url.split("?", 1)[0].rstrip("/")
        if path.endswith("/embeddings"):
            return await self._embeddings(body, timeouts, started)
        if not path.endswith("/completions"):
            return _refuse(404, f"the mock serves /chat/completions and /completions, "
                                f"not {path.split('://', 1)[-1]!r}", timeouts, started)
        text_mode = not path.endswith("/chat/completions")
        with self._lock:
            self._requests.append(body)
            reply = self._queue.popleft() if self._queue else None
            rid = f"{'cmpl' if text_mode else 'chatcmpl'}-mock{next(self._ids)}"
        if reply is None:
            reply = _echo(body, text_mode)
        await _pause(reply.latency, timeouts, started, "the request")
        headers = {"x-request-id": rid, **reply.headers}
        if reply.status >= 400:
            headers.setdefault("content-type", "application/json")
            return MockResponse(reply.status, headers, reply.error_body(), None, reply,
                                timeouts, started)
        if text_mode and (reply.tool_calls or reply.reasoning):
            raise ConfigurationError(  # the legacy wire has no field for them: never drop
                "MockReply.tool_calls and .reasoning cannot be sent on the text completions wire"
            )
        wire = _Wire(body, reply, rid, text_mode)
        if body.get("stream"):
            headers.setdefault("content-type", "text/event-stream; charset=utf-8")
            return MockResponse(reply.status, headers, b"", wire.events(), reply,
                                timeouts, started, lead=0 if text_mode else 1)
        headers.setdefault("content-type", "application/json")
        return MockResponse(reply.status, headers, wire.body(), None, reply, timeouts, started)

    async def _embeddings(self, body: dict[str, Any], timeouts: Timeouts,
                          started: float) -> MockResponse:
        """Deterministic 8-dimension unit vectors (from a hash of each text).

        A queued reply is used only when it is an error (status >= 400), so
        embedding failures can be scripted without disturbing chat replies.
        """
        with self._lock:
            self._requests.append(body)
            head = self._queue[0] if self._queue else None
            reply = self._queue.popleft() if head is not None and head.status >= 400 else None
        if reply is not None:
            await _pause(reply.latency, timeouts, started, "the request")
            headers = {"content-type": "application/json", **reply.headers}
            return MockResponse(reply.status, headers, reply.error_body(), None, reply,
                                timeouts, started)
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return _refuse(400, "'input' must be a string or a list of strings", timeouts,
                           started)
        data = [{"object": "embedding", "index": i, "embedding": mock_vector(t)}
                for i, t in enumerate(texts)]
        words = sum(len(t.split()) for t in texts)
        out = {"object": "list", "data": data, "model": body.get("model"),
               "usage": {"prompt_tokens": words, "total_tokens": words}}
        return MockResponse(200, {"content-type": "application/json"},
                            json.dumps(out).encode(), None, MockReply(), timeouts, started)

    async def aclose(self) -> None:
        """Nothing to release; the script survives so a client can be reused."""


class MockResponse:
    __slots__ = ("_body", "_closed", "_events", "_lead", "_reply", "_started", "_timeouts",
                 "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes,
                 events: list[bytes] | None, reply: MockReply, timeouts: Timeouts,
                 started: float, lead: int = 0) -> None:
        self.status = status
        self._lead = lead
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in headers.items()}
        self._body = body
        self._events = events
        self._reply = reply
        self._timeouts = timeouts
        self._started = started
        self._closed = False

    async def read(self, max_bytes: int | None = None) -> bytes:
        body = await self._read()
        if max_bytes is not None and len(body) > max_bytes:
            raise ResponseTooLargeError(
                f"the response body is larger than max_response_bytes={max_bytes} bytes",
                limit=max_bytes)
        return body

    async def _read(self) -> bytes:
        if self._events is not None:  # a stream read whole
            return b"".join(self._events)
        if self.status < 400 and self._reply.disconnect_after is not None:
            raise ProviderConnectionError(
                "connection failed while reading: reset by peer (scripted by the mock)")
        if self.status < 400 and self._reply.truncate_after is not None:
            return self._body[: len(self._body) // 2]
        return self._body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        events = self._events if self._events is not None else [self._body]
        reply, last = self._reply, len(events) - 1  # never cut after the terminal event
        reset = None if reply.disconnect_after is None else min(reply.disconnect_after, last)
        cut = None if reply.truncate_after is None else min(reply.truncate_after, last)
        lead = self._lead  # the role chunk goes out with the first delta, as servers do
        for i, event in enumerate(events):
            if self._closed:
                return
            if i > lead:
                await _pause(reply.chunk_delay, self._timeouts, self._started,
                             "waiting for the next stream event")
            if i == reset:
                raise ProviderConnectionError(
                    f"connection lost mid-stream: reset by peer after {i} events "
                    "(scripted by the mock)")
            if i == cut:
                return
            yield event

    async def aclose(self) -> None:
        self._closed = True


def _refuse(status: int, message: str, timeouts: Timeouts, started: float) -> MockResponse:
    reply = MockReply(status=status, error=message)
    return MockResponse(status, {"content-type": "application/json"}, reply.error_body(), None,
                        reply, timeouts, started)


async def _pause(seconds: float, timeouts: Timeouts, started: float, what: str) -> None:
    """Sleep like a slow server; past the read gap or the total budget, time out."""
    if seconds <= 0:
        return
    limits = [(t, "read") for t in (timeouts.read,) if t is not None]
    if timeouts.total is not None:
        limits.append((max(timeouts.total - (time.monotonic() - started), 0.0), "total"))
    if limits:
        limit, name = min(limits)
        if seconds > limit:
            await asyncio.sleep(limit)
            raise timeout_error(name, getattr(timeouts, name), what)
    await asyncio.sleep(seconds)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _input_words(body: Mapping[str, Any]) -> int:
    prompt = body.get("prompt")
    words = len(prompt.split()) if isinstance(prompt, str) else 0
    for m in body.get("messages") or ():
        if isinstance(m, dict):
            words += len(_text_of(m.get("content")).split())
    return words


def _echo(body: Mapping[str, Any], text_mode: bool) -> MockReply:
    """No script: answer with the last user message (the prompt in text mode)."""
    if text_mode:
        text = _text_of(body.get("prompt"))
    else:
        users = [m for m in body.get("messages") or () if isinstance(m, dict)
                 and m.get("role") == "user"]
        text = _text_of(users[-1].get("content")) if users else ""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    pieces = _WORD.findall(text)
    if isinstance(limit, int) and 0 < limit < len(pieces):  # one token per word
        return MockReply("".join(pieces[:limit]).rstrip(), finish_reason="length")
    return MockReply(text)


def _split(text: str, n: int | None) -> list[str]:
    """``n`` near-equal pieces (None: one per word) that join back to ``text``."""
    if not text:
        return []
    if n is None:
        return list(_WORD.findall(text)) or [text]
    n = min(n, len(text))
    q, r = divmod(len(text), n)
    out, pos = [], 0
    for i in range(n):
        size = q + (i < r)
        out.append(text[pos:pos + size])
        pos += size
    return out


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


class _Wire:
    """One reply in OpenAI's chat/text completion shapes."""

    def __init__(self, body: Mapping[str, Any], reply: MockReply, rid: str,
                 text_mode: bool) -> None:
        self.reply = reply
        self.text_mode = text_mode
        self.model = str(body.get("model") or "echo")
        options = body.get("stream_options")
        self.include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        inp, out = reply.usage_for(_input_words(body))
        self.usage = {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}
        self.head = {"id": rid, "object": "text_completion" if text_mode else "chat.completion",
                     "created": int(time.time()), "model": self.model}

    def body(self) -> bytes:
        r = self.reply
        if self.text_mode:
            choice: dict[str, Any] = {"text": r.text, "index": 0, "logprobs": None,
                                      "finish_reason": r.wire_finish_reason}
        else:
            message: dict[str, Any] = {"role": "assistant", "content": r.text or None,
                                       "refusal": None}
            if r.reasoning:
                message["reasoning_content"] = r.reasoning
            if r.calls:
                message["tool_calls"] = [
                    {"id": c.id, "type": "function",
                     "function": {"name": c.name, "arguments": c.raw_arguments}}
                    for c in r.calls
                ]
            choice = {"index": 0, "message": message, "logprobs": None,
                      "finish_reason": r.wire_finish_reason}
        obj = {**self.head, "choices": [choice], "usage": self.usage, "system_fingerprint": None}
        return json.dumps(obj, ensure_ascii=False).encode()

    def _chunk(self, choice: dict[str, Any] | None) -> bytes:
        obj: dict[str, Any] = dict(self.head)
        obj["object"] = "text_completion" if self.text_mode else "chat.completion.chunk"
        obj["choices"] = [choice] if choice is not None else []
        if self.include_usage:  # OpenAI: null on every chunk but the last
            obj["usage"] = self.usage if choice is None else None
        return _sse(obj)

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        if self.text_mode:
            return self._chunk({"text": delta.get("content", ""), "index": 0,
                                "logprobs": None, "finish_reason": finish})
        return self._chunk({"index": 0, "delta": delta, "logprobs": None,
                            "finish_reason": finish})

    def events(self) -> list[bytes]:
        r = self.reply
        out = [] if self.text_mode else [self._delta({"role": "assistant", "content": ""})]
        if r.reasoning and not self.text_mode:
            out += [self._delta({"reasoning_content": piece})
                    for piece in _split(r.reasoning, r.text_chunks)]
        out += [self._delta({"content": piece}) for piece in _split(r.text, r.text_chunks)]
        for i, c in enumerate(r.calls):
            out.append(self._delta({"tool_calls": [{
                "index": i, "id": c.id, "type": "function",
                "function": {"name": c.name, "arguments": ""}}]}))
            out += [self._delta({"tool_calls": [{"index": i, "function": {"arguments": a}}]})
                    for a in _split(c.raw_arguments, r.arg_chunks)]
        out.append(self._delta({}, r.wire_finish_reason))
        if self.include_usage:
            out.append(self._chunk(None))
        out.append(b"data: [DONE]\n\n")
        return out


def mock_vector(text: str, dims: int = 8) -> list[float]:
    """The mock's embedding of ``text``: a unit vector from its SHA-256 (stable)."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [b / 127.5 - 1.0 for b in digest[:dims]]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]
