"""Wire formats for the fault server (private): routing, builders, senders.

Each builder turns one neutral :class:`Reply` into the exact bytes a provider
would send: a JSON body for a plain request, or a list of pre-encoded SSE
events for a streamed one.  Hot paths use byte templates plus the C JSON
string escaper instead of a ``json.dumps`` per event, and the senders write
events in batches of up to 64 KiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import socket
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, ClassVar

from aiohttp import web

__all__ = ["WIRES", "Reply", "Route", "WireReply", "abort", "error_body", "json_response",
           "make_reply", "models_body", "route", "send_body", "send_stream", "split", "words"]

_BATCH = 64 * 1024
_WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
_WORD_RE = re.compile(r"\s*\S+|\s+$")

_RUN = os.urandom(4).hex()
_COUNTER = itertools.count(1)


def new_id(prefix: str) -> str:
    """A process-unique id such as ``chatcmpl-mw1a2b3c4d000000000017``."""
    return f"{prefix}mw{_RUN}{next(_COUNTER):012d}"


def esc(text: str) -> bytes:
    """JSON-encode one string (quotes included) as raw UTF-8, as the providers send it.

    A lone surrogate becomes its ``\\uXXXX`` escape instead of failing.
    """
    return encode_basestring(text).encode("utf-8", "backslashreplace")


def dumps(obj: Any, separators: tuple[str, str] = (",", ":")) -> bytes:
    """JSON bytes in raw UTF-8 (compact unless ``separators`` says otherwise)."""
    text = json.dumps(obj, ensure_ascii=False, separators=separators)
    return text.encode("utf-8", "backslashreplace")


def parse_args(arguments: str) -> Any:
    """Tool arguments as an object; a deliberately malformed string stays a string."""
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        return arguments


def words(n: int) -> str:
    """``n`` filler words separated by spaces."""
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(n))


def split(text: str, n: int | None) -> list[str]:
    """Split into ``n`` near-equal pieces (``None``: one per word); joins back to ``text``."""
    if not text:
        return []
    found: list[str] = _WORD_RE.findall(text)
    if n is None or n == len(found):
        return found
    n = max(1, min(n, len(text)))
    q, r = divmod(len(text), n)
    out, pos = [], 0
    for i in range(n):
        size = q + (i < r)
        out.append(text[pos:pos + size])
        pos += size
    return out


@dataclass(slots=True)
class Reply:
    """The wire-neutral content of one successful reply."""

    model: str
    text: str
    pieces: list[str]
    # (name, arguments JSON string, argument fragments for streaming)
    tools: list[tuple[str, str, list[str]]]
    input_tokens: int
    output_tokens: int
    include_usage: bool = False


def make_reply(model: str, text: str, chunks: int | None,
               tool_calls: Sequence[tuple[str, str]], arg_chunks: int | None,
               usage: tuple[int, int] | None, request_size: int, include_usage: bool) -> Reply:
    """Split the payload for streaming; estimate usage (~4 bytes a token) unless given."""
    tools = [(name, args, split(args, 3 if arg_chunks is None else arg_chunks) or [""])
             for name, args in tool_calls]
    if usage is None:
        out = (len(text) + sum(len(a) for _, a in tool_calls)) // 4
        usage = (max(1, request_size // 4), max(1, out))
    return Reply(model, text, split(text, chunks), tools, usage[0], usage[1], include_usage)


class WireReply:
    """One reply rendered in one provider's wire format.

    Subclasses set ``pre``/``post`` so that ``pre + json_string + post`` is one
    complete text-delta event; ``bad_event`` reuses that template.
    """

    family: ClassVar[str] = "openai"
    stream_content_type: ClassVar[str] = "text/event-stream; charset=utf-8"
    sep: ClassVar[bytes] = b"\n\n"
    pre: bytes = b""
    post: bytes = b""

    def __init__(self, reply: Reply) -> None:
        self.r = reply

    def body(self) -> bytes:
        raise NotImplementedError

    def events(self) -> list[bytes]:
        """Every stream event; the last one is the wire's terminal event."""
        raise NotImplementedError

    def bad_event(self, invalid_utf8: bool) -> bytes:
        """A text event with non-UTF-8 bytes in its string, or cut mid-JSON."""
        if invalid_utf8:
            return self.pre + b'"bad \xff\xfe bytes"' + self.post
        return self.pre + b'"unterminated' + self.sep


def _null_usage(r: Reply) -> bytes:
    return b',"usage":null' if r.include_usage else b""


class OpenAIChat(WireReply):
    """OpenAI Chat Completions (``chat.completion`` / ``chat.completion.chunk``)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply)
        self.head = b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,"model":%s,' \
            b'"system_fingerprint":"fp_modelwire","choices":[' % (
                new_id("chatcmpl-").encode(), int(time.time()), esc(reply.model))
        self.tail = b',"logprobs":null,"finish_reason":null}]%s}\n\n' % _null_usage(reply)
        self.pre = self.head + b'{"index":0,"delta":{"content":'
        self.post = b"}" + self.tail

    def _usage(self) -> dict[str, Any]:
        i, o = self.r.input_tokens, self.r.output_tokens
        return {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}

    def body(self) -> bytes:
        r = self.r
        message: dict[str, Any] = {"role": "assistant", "content": r.text if r.text or not r.tools
                                   else None, "refusal": None, "annotations": []}
        if r.tools:
            message["tool_calls"] = [{"id": new_id("call_"), "type": "function",
                                      "function": {"name": n, "arguments": a}}
                                     for n, a, _ in r.tools]
        choice = {"index": 0, "message": message, "logprobs": None,
                  "finish_reason": "tool_calls" if r.tools else "stop"}
        return dumps({"id": new_id("chatcmpl-"), "object": "chat.completion",
                      "created": int(time.time()), "model": r.model, "choices": [choice],
                      "usage": self._usage(), "service_tier": "default",
                      "system_fingerprint": "fp_modelwire"})

    def events(self) -> list[bytes]:
        r, pre, post, tail = self.r, self.pre, self.post, self.tail
        delta = self.head + b'{"index":0,"delta":'
        out = [delta + b'{"role":"assistant","content":"","refusal":null}' + tail]
        out.extend([pre + esc(p) + post for p in r.pieces])
        for i, (name, _, frags) in enumerate(r.tools):
            out.append(delta + b'{"tool_calls":[{"index":%d,"id":%s,"type":"function","function":'
                       b'{"name":%s,"arguments":""}}]}' % (i, esc(new_id("call_")), esc(name))
                       + tail)
            arg = delta + b'{"tool_calls":[{"index":%d,"function":{"arguments":' % i
            out.extend([arg + esc(f) + b"}}]}" + tail for f in frags])
        out.append(delta + b'{},"logprobs":null,"finish_reason":"%s"}]%s}\n\n' % (
            b"tool_calls" if r.tools else b"stop", _null_usage(r)))
        if r.include_usage:
            out.append(self.head + b'],"usage":' + dumps(self._usage()) + b"}\n\n")
        out.append(b"data: [DONE]\n\n")
        return out


class OpenAIText(OpenAIChat):
    """OpenAI legacy Completions (``text_completion``); tool calls are ignored."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply)
        self.head = b'data: {"id":"%s","object":"text_completion","created":%d,"choices":[' % (
            new_id("cmpl-").encode(), int(time.time()))
        self.tail = b'],"model":%s%s}\n\n' % (esc(reply.model), _null_usage(reply))
        self.pre = self.head + b'{"text":'
        self.post = b',"index":0,"logprobs":null,"finish_reason":null}' + self.tail

    def _usage(self) -> dict[str, Any]:
        i, o = self.r.input_tokens, self.r.output_tokens
        return {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o}

    def body(self) -> bytes:
        r = self.r
        choice = {"text": r.text, "index": 0, "logprobs": None, "finish_reason": "stop"}
        return dumps({"id": new_id("cmpl-"), "object": "text_completion",
                      "created": int(time.time()), "model": r.model, "choices": [choice],
                      "usage": self._usage()})

    def events(self) -> list[bytes]:
        r, pre, post = self.r, self.pre, self.post
        out = [pre + esc(p) + post for p in r.pieces]
        out.append(pre + b'"","index":0,"logprobs":null,"finish_reason":"stop"}' + self.tail)
        if r.include_usage:
            out.append(self.head + b'],"model":%s,"usage":%s}\n\n' % (
                esc(r.model), dumps(self._usage())))
        out.append(b"data: [DONE]\n\n")
        return out


def _sse(name: bytes, data: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


def _block_delta(index: int, kind: bytes, field: bytes) -> bytes:
    return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,' \
        b'"delta":{"type":"%s","%s":' % (index, kind, field)


class Anthropic(WireReply):
    """Anthropic Messages (``message`` / named SSE events)."""

    family = "anthropic"
    pre = _block_delta(0, b"text_delta", b"text")
    post = b"}}\n\n"

    def _usage(self, output: int) -> dict[str, Any]:
        return {"input_tokens": self.r.input_tokens, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0, "output_tokens": output}

    def body(self) -> bytes:
        r = self.r
        content: list[dict[str, Any]] = [{"type": "text", "text": r.text}] if (
            r.text or not r.tools) else []
        content.extend({"type": "tool_use", "id": new_id("toolu_"), "name": n,
                        "input": parse_args(a)} for n, a, _ in r.tools)
        return dumps({"id": new_id("msg_"), "type": "message", "role": "assistant",
                      "model": r.model, "content": content,
                      "stop_reason": "tool_use" if r.tools else "end_turn",
                      "stop_sequence": None, "usage": self._usage(r.output_tokens)})

    def events(self) -> list[bytes]:
        r, post = self.r, self.post
        start: dict[str, Any] = {"id": new_id("msg_"), "type": "message", "role": "assistant",
                                 "model": r.model, "content": [], "stop_reason": None,
                                 "stop_sequence": None, "usage": self._usage(1)}
        out = [_sse(b"message_start", dumps({"type": "message_start", "message": start}))]
        # (content block, delta kind, delta field, escaped delta values) per block
        blocks: list[tuple[bytes, bytes, bytes, list[bytes]]] = []
        if r.text or not r.tools:
            blocks.append((b'{"type":"text","text":""}', b"text_delta", b"text",
                           [esc(p) for p in r.pieces]))
        for name, _, frags in r.tools:
            block = b'{"type":"tool_use","id":%s,"name":%s,"input":{}}' % (
                esc(new_id("toolu_")), esc(name))
            blocks.append((block, b"input_json_delta", b"partial_json", [esc(f) for f in frags]))
        for i, (block, kind, field, items) in enumerate(blocks):
            out.append(_sse(b"content_block_start", b'{"type":"content_block_start","index":%d,'
                            b'"content_block":%s}' % (i, block)))
            if i == 0:
                out.append(_sse(b"ping", b'{"type": "ping"}'))
            pre = _block_delta(i, kind, field)
            out.extend([pre + item + post for item in items])
            out.append(_sse(b"content_block_stop",
                            b'{"type":"content_block_stop","index":%d}' % i))
        out.append(_sse(b"message_delta", b'{"type":"message_delta","delta":{"stop_reason":"%s",'
                        b'"stop_sequence":null},"usage":{"output_tokens":%d}}' % (
                            b"tool_use" if r.tools else b"end_turn", r.output_tokens)))
        out.append(_sse(b"message_stop", b'{"type":"message_stop"}'))
        return out


class Gemini(WireReply):
    """Google Gemini ``generateContent`` / ``streamGenerateContent?alt=sse``."""

    family = "gemini"
    stream_content_type = "text/event-stream"
    sep = b"\r\n\r\n"
    start = b"data: "

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply)
        r = reply
        meta = b', "modelVersion": %s, "responseId": "%s"}' % (esc(r.model), new_id("").encode())
        self.head = self.start + b'{"candidates": [{"content": {"parts": '
        self.mid = b', "role": "model"}, "index": 0}], "usageMetadata": {"promptTokenCount": ' \
            b'%d, "totalTokenCount": %d}' % (r.input_tokens, r.input_tokens) + meta + self.sep
        self.fin = b', "role": "model"}, "finishReason": "STOP", "index": 0}], "usageMetadata": ' \
            b'{"promptTokenCount": %d, "candidatesTokenCount": %d, "totalTokenCount": %d}' % (
                r.input_tokens, r.output_tokens, r.input_tokens + r.output_tokens) + meta + self.sep
        self.pre = self.head + b'[{"text": '
        self.post = b"}]" + self.mid

    def body(self) -> bytes:
        r = self.r
        parts: list[dict[str, Any]] = [{"text": r.text}] if r.text or not r.tools else []
        parts.extend({"functionCall": {"name": n, "args": parse_args(a)}} for n, a, _ in r.tools)
        usage = {"promptTokenCount": r.input_tokens, "candidatesTokenCount": r.output_tokens,
                 "totalTokenCount": r.input_tokens + r.output_tokens}
        candidate = {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP",
                     "index": 0}
        return dumps({"candidates": [candidate], "usageMetadata": usage,
                      "modelVersion": r.model, "responseId": new_id("")}, (", ", ": "))

    def events(self) -> list[bytes]:
        r, head = self.r, self.head
        parts = [b'[{"text": ' + esc(p) + b"}]" for p in r.pieces]
        parts.extend(b'[{"functionCall": %s}]' % dumps(
            {"name": n, "args": parse_args(a)}, (", ", ": ")) for n, a, _ in r.tools)
        last = parts.pop() if parts else b'[{"text": ""}]'
        return [head + p + self.mid for p in parts] + [head + last + self.fin]


class GeminiArray(Gemini):
    """``streamGenerateContent`` without ``alt=sse``: one chunked JSON array ("]" ends it)."""

    stream_content_type = "application/json; charset=UTF-8"
    sep = b""
    start = b",\r\n"

    def events(self) -> list[bytes]:
        out = super().events()
        out[0] = b"[" + out[0][len(self.start):]
        return [*out, b"]"]


WIRES: dict[str, type[WireReply]] = {"openai": OpenAIChat, "openai-text": OpenAIText,
                                     "anthropic": Anthropic, "gemini": Gemini,
                                     "gemini-array": GeminiArray}

_MESSAGES = {400: "Bad request", 401: "Invalid API key", 403: "Permission denied",
             404: "Model not found", 408: "Request timeout", 409: "Conflict",
             413: "Request too large", 429: "Rate limit exceeded", 500: "Internal server error",
             502: "Bad gateway", 503: "Service unavailable", 504: "Gateway timeout",
             529: "Overloaded"}
_OPENAI = {400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
           403: ("permission_error", None), 404: ("invalid_request_error", "model_not_found"),
           429: ("requests", "rate_limit_exceeded")}
_ANTHROPIC = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
              404: "not_found_error", 408: "timeout_error", 413: "request_too_large",
              429: "rate_limit_error", 529: "overloaded_error", 503: "overloaded_error"}
_GOOGLE = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
           500: "INTERNAL", 501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def error_body(family: str, status: int, message: str | None = None) -> bytes:
    """The error JSON a provider family sends for ``status``."""
    msg = message or f"modelwire fault server: {_MESSAGES.get(status, f'HTTP {status}')}"
    if family == "anthropic":
        kind = _ANTHROPIC.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return dumps({"type": "error", "error": {"type": kind, "message": msg},
                      "request_id": new_id("req_")})
    if family == "gemini":
        status_name = _GOOGLE.get(status, "UNKNOWN")
        return json.dumps({"error": {"code": status, "message": msg, "status": status_name}}
                          ).encode()
    default = ("server_error" if status >= 500 else "invalid_request_error", None)
    kind, code = _OPENAI.get(status, default)
    return dumps({"error": {"message": msg, "type": kind, "param": None, "code": code}})


_MODEL_IDS = ("mw-default", "mw-stream-10", "mw-tools-4", "mw-status-429")


def models_body(family: str) -> bytes:
    """A models list in the family's shape (useful for health checks)."""
    if family == "anthropic":
        data = [{"type": "model", "id": m, "display_name": m,
                 "created_at": "2025-01-01T00:00:00Z"} for m in _MODEL_IDS]
        return dumps({"data": data, "has_more": False, "first_id": _MODEL_IDS[0],
                      "last_id": _MODEL_IDS[-1]})
    if family == "gemini":
        methods = ["generateContent", "streamGenerateContent", "countTokens"]
        return json.dumps({"models": [{"name": f"models/{m}", "version": "001", "displayName": m,
                                       "supportedGenerationMethods": methods}
                                      for m in _MODEL_IDS]}).encode()
    return dumps({"object": "list", "data": [{"id": m, "object": "model", "created": 1735689600,
                                              "owned_by": "modelwire"} for m in _MODEL_IDS]})


@dataclass(slots=True)
class Route:
    """Where a request goes: a key of ``WIRES`` (or ``"models"``) and its error family."""

    wire: str
    family: str
    stream: bool = False
    model: str = ""


def route(method: str, path: str, query: Mapping[str, str],
          headers: Mapping[str, str]) -> Route | None:
    """Pick the wire from the path suffix (any prefix is accepted)."""
    path = path.rstrip("/")
    if method == "GET":
        if path.endswith("/v1beta/models"):
            return Route("models", "gemini")
        if path.endswith("/models"):
            anthropic = "anthropic-version" in headers or "x-api-key" in headers
            return Route("models", "anthropic" if anthropic else "openai")
        return None
    if method != "POST":
        return None
    if path.endswith("/chat/completions"):
        return Route("openai", "openai")
    if path.endswith("/completions"):
        return Route("openai-text", "openai")
    if path.endswith("/v1/messages"):
        return Route("anthropic", "anthropic")
    head, sep, verb = path.rpartition(":")
    if sep and "/models/" in head and verb in ("generateContent", "streamGenerateContent"):
        stream = verb == "streamGenerateContent"
        wire = "gemini-array" if stream and query.get("alt") != "sse" else "gemini"
        return Route(wire, "gemini", stream, head.rsplit("/models/", 1)[1])
    return None


def json_response(status: int, body: bytes, headers: Mapping[str, str] | None = None,
                  ) -> web.Response:
    return web.Response(status=status, body=body,
                        headers={"Content-Type": "application/json", **(headers or {})})


def abort(request: web.Request) -> None:
    """Reset the connection: SO_LINGER 0 turns the close into a TCP RST."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _flush_then_abort(request: web.Request) -> None:
    """Let what was written leave the process (at most ~1 s), then reset."""
    transport = request.transport
    for _ in range(1000):
        if transport is None or transport.is_closing() or not transport.get_write_buffer_size():
            break
        await asyncio.sleep(0.001)
    abort(request)


async def _write_all(resp: web.StreamResponse, events: Sequence[bytes]) -> None:
    batch: list[bytes] = []
    size = 0
    for event in events:
        batch.append(event)
        size += len(event)
        if size >= _BATCH:
            await resp.write(b"".join(batch))
            batch, size = [], 0
    if batch:
        await resp.write(b"".join(batch))


async def send_stream(request: web.Request, wire: WireReply, kind: str, n: int,
                      seconds: float, extra: list[bytes] | None = None) -> web.StreamResponse:
    """Stream ``wire``'s events, applying fault ``kind`` after event ``n``
    (``extra``: bytes sent after the terminal event, for ``trailing_bytes``)."""
    events = wire.events()
    headers = {"Content-Type": wire.stream_content_type, "Cache-Control": "no-cache"}
    resp = web.StreamResponse(headers=headers)
    await resp.prepare(request)
    if kind == "queued":
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while loop.time() < until:
            await resp.write(b": keep-alive\n\n")
            await asyncio.sleep(min(0.1, max(until - loop.time(), 0.0)))
        await _write_all(resp, events)
    elif kind == "hold_open":
        await _write_all(resp, events)
        await asyncio.sleep(seconds)
    elif kind == "trailing_bytes":
        await resp.write(b"".join([*events, *(extra or ())]))
    elif kind == "stall":
        await _write_all(resp, events[:n])
        await asyncio.sleep(seconds)
        await _write_all(resp, events[n:])
    elif kind == "reset_mid_stream":
        await _write_all(resp, events[:n])
        await _flush_then_abort(request)
        return resp
    elif kind == "cut_stream":
        await _write_all(resp, events[: min(n, len(events) - 1)])
    elif kind in ("malformed_chunk", "invalid_utf8"):
        bad = wire.bad_event(kind == "invalid_utf8")
        await _write_all(resp, [*events[:n], bad, *events[n:]])
    elif kind == "wrong_shape":  # a text event whose text is a number
        await _write_all(resp, [*events[:n], wire.pre + b"42" + wire.post, *events[n:]])
    else:
        await _write_all(resp, events)
    await resp.write_eof()
    return resp


async def send_body(request: web.Request, wire: WireReply, kind: str,
                    seconds: float) -> web.StreamResponse:
    """Send ``wire``'s JSON body, applying fault ``kind`` to the middle of it."""
    body = wire.body()
    half = len(body) // 2
    if kind == "cut_stream":
        body = body[:half]
    elif kind == "malformed_chunk":
        body = b"{," + body[1:]
    elif kind == "invalid_utf8":
        body = body[:-1] + b',"x_modelwire":"bad \xff\xfe bytes"}'
    elif kind == "wrong_shape":  # the answer's text as a number
        body = body.replace(esc(wire.r.text), b"42", 1)
    elif kind in ("stall", "reset_mid_stream"):
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[:half])
        if kind == "reset_mid_stream":
            await _flush_then_abort(request)
            return resp
        await asyncio.sleep(seconds)
        await resp.write(body[half:])
        await resp.write_eof()
        return resp
    return json_response(200, body)
