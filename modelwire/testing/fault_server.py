"""A fake LLM provider server on 127.0.0.1 that injects faults on request.

It speaks three real wire formats, streamed and not: OpenAI Chat Completions
(``POST .../chat/completions``, legacy ``.../completions``, ``GET .../models``),
Anthropic Messages (``POST .../v1/messages``, ``GET .../v1/models``) and Google
Gemini (``POST .../v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse``, ``GET .../v1beta/models``).

Scripting, in process::

    async with FaultServer() as server:
        server.script(Fault.status(429, retry_after=0.1), Fault.ok("hi"))
        ...  # point a client at server.url_for("openai"): 1st call 429, 2nd "hi"
        assert server.requests[0].json["model"] == "gpt-4o"

Each model request pops one fault from the FIFO queue; when it is empty the
model name decides (``mw-stream-N``, ``mw-tools-N``, ``mw-status-CODE``) and
otherwise ``server.default`` (``Fault.ok()``) applies.  Faults are frozen
dataclasses, so ``dataclasses.replace(Fault.stall(2, 1.0), text="...")``
combines a failure with a payload.  For sync tests use
``with FaultServer.run_in_thread() as server: ...``.

Out of process: ``python -m modelwire.testing.fault_server --port 0`` prints
``LISTENING http://127.0.0.1:PORT`` and serves until killed (model-name rules
only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import re
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ._wires import (
    WIRES,
    abort,
    error_body,
    json_response,
    make_reply,
    models_body,
    route,
    send_body,
    send_stream,
    words,
)

__all__ = ["Fault", "FaultServer", "RecordedRequest"]

DEFAULT_TEXT = "Hello from the fault server."
HTML_PAGE = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
             b"<body><h1>Bad Gateway</h1><p>The upstream server is unavailable.</p></body></html>")
_RULE_RE = re.compile(r"(?:.*/)?mw-(stream|tools|status)-(\d+)")


@dataclass(frozen=True, slots=True)
class Fault:
    """What the server does with one model request.  Build with the classmethods.

    Every fault carries the payload of a successful reply (``text``,
    ``tool_calls``...) that it streams before or around the failure, and
    ``delay`` seconds are slept before the response headers in every case.
    ``after_events`` counts stream events (SSE events, including the first
    role/``message_start`` one); for non-streamed requests the failure hits
    the middle of the JSON body instead.
    """

    kind: str = "ok"
    text: str = DEFAULT_TEXT
    tool_calls: tuple[tuple[str, str], ...] = ()
    chunks: int | None = None
    arg_chunks: int | None = None
    usage: tuple[int, int] | None = None
    delay: float = 0.0
    status_code: int = 200
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    after_events: int = 0
    seconds: float = 0.0

    @classmethod
    def ok(cls, text: str = DEFAULT_TEXT, tool_calls: Sequence[tuple[str, str]] | None = None,
           chunks: int | None = None, usage: tuple[int, int] | None = None, delay: float = 0.0,
           arg_chunks: int | None = None) -> Fault:
        """A valid reply.  ``tool_calls``: ``(name, arguments_json)`` pairs.

        ``chunks``: text deltas when streaming (default one per word);
        ``arg_chunks``: fragments per tool call's arguments (default 3);
        ``usage``: ``(input_tokens, output_tokens)`` (default: estimated);
        ``delay``: seconds before the response headers.
        """
        return cls("ok", text, tuple(tool_calls or ()), chunks, arg_chunks, usage, delay)

    @classmethod
    def status(cls, code: int, body: bytes | str | Mapping[str, Any] | None = None,
               headers: Mapping[str, str] | None = None, *,
               retry_after: float | None = None) -> Fault:
        """An HTTP error (e.g. 429, 500, 502, 503, 529) with the wire's own error JSON.

        ``retry_after`` sets both ``retry-after`` (whole seconds) and ``retry-after-ms``.
        """
        if not 100 <= code <= 599:
            raise ValueError(f"bad status code {code}")
        if isinstance(body, str):
            body = body.encode()
        elif body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        hdrs = dict(headers or {})
        if retry_after is not None:
            hdrs.setdefault("retry-after", str(math.ceil(retry_after)))
            hdrs.setdefault("retry-after-ms", str(round(retry_after * 1000)))
        return cls("status", status_code=code, body=body, headers=tuple(hdrs.items()))

    @classmethod
    def slow_first_byte(cls, seconds: float) -> Fault:
        """Sleep ``seconds`` before sending the response headers, then reply normally."""
        return cls("slow_first_byte", delay=_nonneg(seconds))

    @classmethod
    def stall(cls, after_events: int, seconds: float) -> Fault:
        """Streaming: sleep ``seconds`` between event ``after_events`` and the next."""
        return cls("stall", after_events=_nonneg(after_events), seconds=_nonneg(seconds))

    @classmethod
    def reset_before_headers(cls) -> Fault:
        """Abort the TCP connection (RST) before any response byte."""
        return cls("reset_before_headers")

    @classmethod
    def reset_mid_stream(cls, after_events: int) -> Fault:
        """Send ``after_events`` stream events, then abort the connection (RST)."""
        return cls("reset_mid_stream", after_events=_nonneg(after_events))

    @classmethod
    def cut_stream(cls, after_events: int) -> Fault:
        """Send at most ``after_events`` events, then end cleanly without the terminal event."""
        return cls("cut_stream", after_events=_nonneg(after_events))

    @classmethod
    def malformed_chunk(cls, after_events: int) -> Fault:
        """After ``after_events`` good events, one ``data:`` line of invalid JSON, then the rest."""
        return cls("malformed_chunk", after_events=_nonneg(after_events))

    @classmethod
    def invalid_utf8(cls, after_events: int) -> Fault:
        """After ``after_events`` good events, a data line with non-UTF-8 bytes, then the rest."""
        return cls("invalid_utf8", after_events=_nonneg(after_events))

    @classmethod
    def hold_open(cls, seconds: float) -> Fault:
        """Streaming: send every event, terminal one included, then keep the connection
        open ``seconds`` before ending the body (a client must not wait for the end)."""
        return cls("hold_open", seconds=_nonneg(seconds))

    @classmethod
    def trailing_bytes(cls) -> Fault:
        """Streaming: after the terminal event, a whole second answer ("INJECTED") and
        a broken event, in the same write (none of it belongs to the answer)."""
        return cls("trailing_bytes")

    @classmethod
    def queued(cls, seconds: float) -> Fault:
        """Stall ``seconds`` before the first event, sending SSE keep-alive comments
        every 0.1 s (as a provider does while a model is queued); non-streamed
        requests get their headers after ``seconds`` instead."""
        return cls("queued", seconds=_nonneg(seconds))

    @classmethod
    def redirect(cls, location: str = "https://elsewhere.example/v1/chat/completions",
                 code: int = 302) -> Fault:
        """A 3xx pointing at another host (a client must not follow it with its key)."""
        if not 300 <= code <= 399:
            raise ValueError(f"not a redirect status: {code}")
        return cls("status", status_code=code, body=b"", headers=(("Location", location),))

    @classmethod
    def html(cls, status: int = 200) -> Fault:
        """An HTML page (a proxy's or a captive portal's) with ``status``, to any request."""
        return cls("html", status_code=status)

    @classmethod
    def error_200(cls) -> Fault:
        """The wire's own 500 error JSON, sent with status 200 (to streams too)."""
        return cls("error_200")

    @classmethod
    def wrong_shape(cls, after_events: int) -> Fault:
        """Valid JSON of the wrong shape: the answer's text is the number 42 (the
        whole body; streaming: one text event after ``after_events`` good ones)."""
        return cls("wrong_shape", after_events=_nonneg(after_events))

    @classmethod
    def large(cls, size_bytes: int, *, one_event: bool = False) -> Fault:
        """A valid reply whose text is about ``size_bytes`` long, streamed in ~1 KiB
        deltas (``one_event=True``: all of it in a single event)."""
        text = (words(max(1, size_bytes // 5)) + " ")[: max(1, size_bytes)]
        chunks = 1 if one_event else max(1, math.ceil(len(text) / 1024))
        return cls("large", text, chunks=chunks)


def _nonneg(value: int | float) -> Any:
    if value < 0:
        raise ValueError("fault parameters must be >= 0")
    return value


@functools.lru_cache(maxsize=256)
def fault_for_model(model: str) -> Fault | None:
    """The model-name rule: ``mw-stream-N``, ``mw-tools-N``, ``mw-status-CODE``; else None."""
    m = _RULE_RE.fullmatch(model)
    if m is None:
        return None
    kind, n = m.group(1), int(m.group(2))
    if kind == "stream":
        return Fault.ok(words(n), chunks=n) if n > 0 else Fault.ok("")
    if kind == "tools":
        args = json.dumps({"query": "x" * max(n, 1)})
        return Fault.ok("", tool_calls=[("lookup", args)], arg_chunks=max(n, 1))
    return Fault.status(n) if 100 <= n <= 599 else None


@dataclass(slots=True)
class RecordedRequest:
    """One request as the server saw it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    wire: str | None = None
    stream: bool = False


class FaultServer:
    """The fault-injecting server on ``host`` (default 127.0.0.1), port 0 = any free port.

    ``server.script(*faults)`` queues faults (thread-safe), ``server.default``
    is used when the queue is empty, ``server.requests`` lists what arrived
    and ``server.reset()`` clears both.  Example::

        async with FaultServer() as server:
            server.script(Fault.reset_mid_stream(after_events=3))
            client = MyClient(base_url=server.url_for("anthropic"))
            ...  # the first streamed call dies after 3 events, the next succeeds

    ``record=False`` stops recording requests (for long benchmark runs).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, record: bool = True) -> None:
        self.host = host
        self.port = port
        self.default: Fault = Fault.ok()
        self.record = record
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._runner: web.AppRunner | None = None

    # -- scripting -----------------------------------------------------------
    def script(self, *faults: Fault) -> None:
        """Append faults to the FIFO queue; each model request pops one."""
        with self._lock:
            self._queue.extend(faults)

    def reset(self) -> None:
        """Clear the fault queue and the recorded requests; restore ``default``."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self.default = Fault.ok()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far."""
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> int:
        """How many scripted faults are still queued."""
        return len(self._queue)

    def _next_fault(self, model: str) -> Fault:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return fault_for_model(model) or self.default

    # -- lifecycle -----------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` once started."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url_for(self, wire: str) -> str:
        """The base URL a client of ``wire`` (openai, anthropic, gemini) should use."""
        if wire == "openai":
            return self.base_url + "/v1"
        if wire in ("anthropic", "gemini"):
            return self.base_url
        raise ValueError(f"unknown wire {wire!r}; expected openai, anthropic or gemini")

    async def start(self) -> None:
        """Bind and start serving (port 0 picks a free port)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.25)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=4096)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FaultServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    @contextlib.contextmanager
    def run_in_thread(cls, host: str = "127.0.0.1", port: int = 0) -> Iterator[FaultServer]:
        """``with FaultServer.run_in_thread() as server:`` for sync code.

        The server runs its own event loop in a daemon thread; ``script()``,
        ``reset()`` and ``requests`` are safe to use from the calling thread.
        """
        server = cls(host, port)
        loop = asyncio.new_event_loop()
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(server.start())
            except BaseException as exc:  # reported to the caller's thread
                errors.append(exc)
                return
            finally:
                started.set()
            loop.run_forever()
            loop.run_until_complete(server.stop())
            loop.close()

        thread = threading.Thread(target=run, name="modelwire-fault-server", daemon=True)
        thread.start()
        started.wait()
        if errors:
            raise errors[0]
        try:
            yield server
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)

    # -- serving -------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        rt = route(request.method, request.path, request.query, headers)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        stream = False
        if rt is not None and rt.wire != "models" and isinstance(body, dict):
            stream = rt.stream or body.get("stream") is True
        if self.record:
            rec = RecordedRequest(request.method, request.path, dict(request.query), headers, body,
                                  rt.family if rt else None, stream)
            with self._lock:
                self._requests.append(rec)
        if rt is None:
            msg = f"no route for {request.method} {request.path}"
            return json_response(404, error_body("openai", 404, msg))
        if rt.wire == "models":
            return json_response(200, models_body(rt.family))
        if not isinstance(body, dict):
            msg = "request body must be a JSON object"
            return json_response(400, error_body(rt.family, 400, msg))
        model = rt.model or str(body.get("model", ""))
        fault = self._next_fault(model)
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.kind == "reset_before_headers":
            abort(request)
            return web.Response()
        if fault.kind == "html":
            return web.Response(status=fault.status_code, body=HTML_PAGE,
                                content_type="text/html", charset="utf-8")
        if fault.kind == "error_200":
            return json_response(200, error_body(rt.family, 500))
        if fault.kind == "status":
            payload = fault.body
            if payload is None:
                payload = error_body(rt.family, fault.status_code)
            return json_response(fault.status_code, payload, dict(fault.headers))
        options = body.get("stream_options")
        usage = isinstance(options, dict) and options.get("include_usage") is True
        reply = make_reply(model, fault.text, fault.chunks, fault.tool_calls, fault.arg_chunks,
                           fault.usage, len(raw), usage)
        wire = WIRES[rt.wire](reply)
        try:
            if stream:
                extra: list[bytes] = []
                if fault.kind == "trailing_bytes":
                    injected = make_reply(model, "INJECTED", None, (), None, None, len(raw),
                                          usage)
                    extra = [*WIRES[rt.wire](injected).events(), wire.bad_event(False)]
                return await send_stream(request, wire, fault.kind, fault.after_events,
                                         fault.seconds, extra)
            if fault.kind == "queued":  # no events to keep alive with: a slow first byte
                await asyncio.sleep(fault.seconds)
            return await send_body(request, wire, fault.kind, fault.seconds)
        except ConnectionError:  # the client went away
            return web.Response()


async def _serve(host: str, port: int) -> None:
    server = FaultServer(host, port, record=False)
    await server.start()
    print(f"LISTENING {server.base_url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: serve until killed, faults chosen by model name."""
    parser = argparse.ArgumentParser(prog="python -m modelwire.testing.fault_server",
                                     description="Fault-injecting fake LLM provider server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()

