"""A raw asyncio socket server on 127.0.0.1 that sends exactly the bytes a test wants.

No HTTP framework in the way: each accepted connection has its request read
(request line, headers, a Content-Length body), recorded, and handed to the
test's handler with the stream writer. The handler writes whatever it likes
(keeps the connection open after a terminal event, a 302, HTML with status
200, a body without end...) and may await ``conn.closed_by_client`` to learn
when the client hung up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Conn:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    closed_by_client: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def head(self, status: int = 200, headers: dict[str, str] | None = None,
                   reason: str = "OK") -> None:
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    async def sse_head(self) -> None:
        """Status and headers of an open-ended SSE response (no length, keep-alive)."""
        await self.head(200, {"Content-Type": "text/event-stream", "Connection": "keep-alive",
                              "Cache-Control": "no-cache"})

    async def full(self, status: int, body: bytes, content_type: str = "application/json",
                   headers: dict[str, str] | None = None) -> None:
        hdrs = {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}
        await self.head(status, hdrs)
        await self.send(body)

    async def hold(self, seconds: float = 30.0) -> None:
        """Keep the connection open until the client closes it (or ``seconds``)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.closed_by_client.wait(), seconds)

    def reset(self) -> None:
        """Abort the TCP connection (RST)."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            import socket
            import struct
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Handler = Callable[[Conn], Awaitable[None]]


class HostileServer:
    """``async with HostileServer(handler) as srv:`` then ``srv.url`` (``http://127.0.0.1:PORT``).

    ``handler`` may also be a list: the n-th connection gets the n-th handler (the
    last one repeats). ``srv.conns`` lists every request received.
    """

    def __init__(self, handler: Handler | list[Handler]) -> None:
        self._handlers = handler if isinstance(handler, list) else [handler]
        self.conns: list[Conn] = []
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def __aenter__(self) -> HostileServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            while True:  # keep-alive: one connection may carry several requests
                conn = await self._read_request(reader, writer)
                if conn is None:
                    return
                self.conns.append(conn)
                handler = self._handlers[min(len(self.conns) - 1, len(self._handlers) - 1)]
                watcher = asyncio.ensure_future(self._watch(conn))
                try:
                    await handler(conn)
                finally:
                    watcher.cancel()
                    if reader._eof or writer.is_closing():  # type: ignore[attr-defined]
                        conn.closed_by_client.set()  # the watcher may not have looked yet
                if conn.closed_by_client.is_set() or writer.is_closing():
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # a cancelled handler (server shutdown) ends quietly
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    async def _watch(conn: Conn) -> None:
        # EOF from the client, seen without reading: a keep-alive client's next
        # request stays in the buffer for the next _read_request (reading even one
        # byte here would eat it, and a pending read would collide with that one).
        reader = conn.reader
        while not reader._eof:  # type: ignore[attr-defined]  # the protocol's EOF flag
            await asyncio.sleep(0.01)
        conn.closed_by_client.set()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> Conn | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Conn(method, path, headers, body, reader, writer)


@contextlib.asynccontextmanager
async def serving(handler: Handler | list[Handler]) -> AsyncIterator[HostileServer]:
    async with HostileServer(handler) as srv:
        yield srv


# --- wire snippets ------------------------------------------------------------

def openai_event(text: str) -> bytes:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
             "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def openai_finish(reason: str = "stop") -> bytes:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
             "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


OPENAI_DONE = b"data: [DONE]\n\n"


def openai_body(text: str) -> bytes:
    return json.dumps({
        "id": "c1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }).encode()


def anthropic_events(text: str) -> bytes:
    def ev(name: str, payload: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()
    return b"".join([
        ev("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [], "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        ev("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}}),
        ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "text_delta", "text": text}}),
        ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                             "usage": {"output_tokens": 2}}),
        ev("message_stop", {"type": "message_stop"}),
    ])


def gemini_events(text: str) -> bytes:
    first = {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}}]}
    last = {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]},
                            "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2}}
    return b"".join(b"data: " + json.dumps(x).encode() + b"\r\n\r\n" for x in (first, last))
