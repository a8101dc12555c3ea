"""A hostile HTTP server on 127.0.0.1 for tests: it answers every request with
exactly the scripted status, headers and bytes (no wire knowledge at all), and
records every request it receives, so a test can assert that none arrived.

    async with RawServer() as server:
        server.script(Raw(200, b'{"choices": [{"message": null}]}'))
        client = AsyncClient(base_urls={"openai": server.url + "/v1"}, ...)
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Raw:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {
        "content-type": "application/json"})
    pieces: tuple[bytes, ...] = ()  # if set: the body, sent as separate network writes

    @classmethod
    def json(cls, obj: Any, status: int = 200) -> Raw:
        return cls(status, json.dumps(obj).encode())

    @classmethod
    def sse(cls, *events: Any, done: bool = False) -> Raw:
        """``data:`` events (objects are JSON-encoded), optionally ``[DONE]``."""
        lines = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
        if done:
            lines.append("data: [DONE]\n\n")
        return cls(200, "".join(lines).encode(), {"content-type": "text/event-stream"})

    @classmethod
    def sse_paced(cls, *events: Any, done: bool = False) -> Raw:
        """Like :meth:`sse`, each event in its own network write (a later bad
        event then reaches the client after the first one was delivered)."""
        whole = cls.sse(*events, done=done)
        pieces = tuple(p + b"\n\n" for p in whole.body.split(b"\n\n") if p)
        return cls(200, b"", whole.headers, pieces)


class RawServer:
    def __init__(self) -> None:
        self.queue: deque[Raw] = deque()
        self.default = Raw(500, b'{"error": {"message": "nothing scripted"}}')
        self.requests: list[tuple[str, str, bytes]] = []  # method, path+query, body
        self._runner: web.AppRunner | None = None
        self.url = ""

    def script(self, *replies: Raw) -> None:
        self.queue.extend(replies)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs, await request.read()))
        reply = self.queue.popleft() if self.queue else self.default
        if not reply.pieces:
            return web.Response(status=reply.status, body=reply.body, headers=reply.headers)
        resp = web.StreamResponse(status=reply.status, headers=reply.headers)
        await resp.prepare(request)
        for piece in reply.pieces:
            await resp.write(piece)
            await asyncio.sleep(0.005)  # pacing only, so writes arrive apart
        await resp.write_eof()
        return resp

    async def __aenter__(self) -> RawServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
