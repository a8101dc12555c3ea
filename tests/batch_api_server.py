"""A loopback server speaking the OpenAI Batch and Anthropic Message Batches APIs.

Shapes follow the providers' API references: OpenAI ``POST /v1/files``
(multipart, purpose=batch), ``POST /v1/batches``, ``GET /v1/batches/{id}``,
``GET /v1/files/{id}/content``; Anthropic ``POST /v1/messages/batches``,
``GET /v1/messages/batches/{id}``, ``GET {results_url}``. A batch ends after
``polls_to_finish`` polls. Each request is answered ``echo: <last user text>``,
or with an invalid-request error when that text contains ``FAIL``.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

KEY = "sk-batch-test"
_CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _last_user_text(body: dict[str, Any]) -> str:
    for m in reversed(body["messages"]):
        if m["role"] == "user":
            c = m["content"]
            return c if isinstance(c, str) else "".join(p.get("text", "") for p in c)
    raise ValueError("no user message")


class BatchAPIServer:
    def __init__(self, polls_to_finish: int = 2) -> None:
        self.polls_to_finish = polls_to_finish
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[str, str]] = []  # (method, path)
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- OpenAI ---------------------------------------------------------------

    def _openai_auth(self, request: web.Request) -> None:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            raise web.HTTPUnauthorized(text=json.dumps({"error": {
                "message": "Incorrect API key provided", "type": "invalid_request_error",
                "code": "invalid_api_key", "param": None}}), content_type="application/json")

    async def upload(self, request: web.Request) -> web.Response:
        self._openai_auth(request)
        form = await request.post()
        assert form["purpose"] == "batch", form
        field = form["file"]
        assert isinstance(field, web.FileField)
        content = field.file.read()
        for line in content.splitlines():  # validate as the API would
            row = json.loads(line)
            assert set(row) == {"custom_id", "method", "url", "body"}, row
            assert row["method"] == "POST" and row["url"] == "/v1/chat/completions"
            assert "model" in row["body"] and "messages" in row["body"]
            assert "stream" not in row["body"]
        fid = f"file-{len(self.files) + 1}"
        self.files[fid] = content
        return web.json_response({"id": fid, "object": "file", "bytes": len(content),
                                  "created_at": 1700000000, "filename": field.filename,
                                  "purpose": "batch"})

    async def create_openai(self, request: web.Request) -> web.Response:
        self._openai_auth(request)
        body = await request.json()
        assert body == {"input_file_id": body["input_file_id"],
                        "endpoint": "/v1/chat/completions", "completion_window": "24h"}, body
        lines = [json.loads(x) for x in self.files[body["input_file_id"]].splitlines()]
        bid = f"batch_{len(self.batches) + 1}"
        self.batches[bid] = {"kind": "openai", "requests": lines, "polls": 0,
                             "input_file_id": body["input_file_id"]}
        return web.json_response(self._openai_object(bid))

    def _openai_object(self, bid: str) -> dict[str, Any]:
        b = self.batches[bid]
        done = b["polls"] >= self.polls_to_finish
        failed = sum("FAIL" in _last_user_text(r["body"]) for r in b["requests"])
        total = len(b["requests"])
        return {
            "id": bid, "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
            "input_file_id": b["input_file_id"], "completion_window": "24h",
            "status": "completed" if done else ("validating" if b["polls"] == 0
                                                else "in_progress"),
            "output_file_id": b.get("output_file_id"), "error_file_id": b.get("error_file_id"),
            "created_at": 1700000000, "in_progress_at": None, "expires_at": 1700086400,
            "completed_at": 1700000100 if done else None, "failed_at": None,
            "request_counts": {"total": total, "completed": total - failed if done else 0,
                               "failed": failed if done else 0},
            "metadata": None,
        }

    async def poll_openai(self, request: web.Request) -> web.Response:
        self._openai_auth(request)
        bid = request.match_info["id"]
        b = self.batches[bid]
        b["polls"] += 1
        if b["polls"] >= self.polls_to_finish and "output_file_id" not in b:
            ok, bad = [], []
            for i, r in enumerate(b["requests"]):
                text = _last_user_text(r["body"])
                if "FAIL" in text:
                    bad.append({"id": f"batch_req_{i}", "custom_id": r["custom_id"],
                                "response": {"status_code": 400, "request_id": f"req_{i}",
                                             "body": {"error": {
                                                 "message": "This request was refused.",
                                                 "type": "invalid_request_error",
                                                 "param": None, "code": None}}},
                                "error": None})
                    continue
                ok.append({"id": f"batch_req_{i}", "custom_id": r["custom_id"], "response": {
                    "status_code": 200, "request_id": f"req_{i}", "body": {
                        "id": f"chatcmpl-{i}", "object": "chat.completion",
                        "created": 1700000000, "model": r["body"]["model"],
                        "choices": [{"index": 0, "message": {
                            "role": "assistant", "content": f"echo: {text}"},
                            "logprobs": None, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 9, "completion_tokens": 3,
                                  "total_tokens": 12}}}, "error": None})
            ok.reverse()  # output order is not input order
            b["output_file_id"] = self._file(ok)
            if bad:
                b["error_file_id"] = self._file(bad)
        return web.json_response(self._openai_object(bid))

    def _file(self, rows: list[dict[str, Any]]) -> str:
        fid = f"file-{len(self.files) + 1}"
        self.files[fid] = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
        return fid

    async def content(self, request: web.Request) -> web.Response:
        self._openai_auth(request)
        return web.Response(body=self.files[request.match_info["id"]],
                            content_type="application/octet-stream")

    # --- Anthropic --------------------------------------------------------------

    def _anthropic_auth(self, request: web.Request) -> None:
        assert request.headers.get("anthropic-version") == "2023-06-01"
        if request.headers.get("x-api-key") != KEY:
            raise web.HTTPUnauthorized(text=json.dumps({"type": "error", "error": {
                "type": "authentication_error", "message": "invalid x-api-key"}}),
                content_type="application/json")

    async def create_anthropic(self, request: web.Request) -> web.Response:
        self._anthropic_auth(request)
        body = await request.json()
        assert set(body) == {"requests"}
        for r in body["requests"]:
            assert set(r) == {"custom_id", "params"} and _CUSTOM_ID.match(r["custom_id"]), r
            assert {"model", "max_tokens", "messages"} <= set(r["params"])
            assert "stream" not in r["params"]
        bid = f"msgbatch_{len(self.batches) + 1:03d}"
        self.batches[bid] = {"kind": "anthropic", "requests": body["requests"], "polls": 0}
        return web.json_response(self._anthropic_object(bid))

    def _anthropic_object(self, bid: str) -> dict[str, Any]:
        b = self.batches[bid]
        done = b["polls"] >= self.polls_to_finish
        n = len(b["requests"])
        failed = sum("FAIL" in _last_user_text(r["params"]) for r in b["requests"])
        return {
            "id": bid, "type": "message_batch",
            "processing_status": "ended" if done else "in_progress",
            "request_counts": {"processing": 0 if done else n,
                               "succeeded": n - failed if done else 0,
                               "errored": failed if done else 0, "canceled": 0, "expired": 0},
            "ended_at": "2024-09-24T18:40:00Z" if done else None,
            "created_at": "2024-09-24T18:37:24.100435Z",
            "expires_at": "2024-09-25T18:37:24.100435Z", "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{bid}/results" if done else None,
        }

    async def poll_anthropic(self, request: web.Request) -> web.Response:
        self._anthropic_auth(request)
        bid = request.match_info["id"]
        self.batches[bid]["polls"] += 1
        return web.json_response(self._anthropic_object(bid))

    async def results_anthropic(self, request: web.Request) -> web.Response:
        self._anthropic_auth(request)
        b = self.batches[request.match_info["id"]]
        rows = []
        for i, r in enumerate(b["requests"]):
            text = _last_user_text(r["params"])
            if "FAIL" in text:
                result: dict[str, Any] = {"type": "errored", "error": {"type": "error", "error": {
                    "type": "invalid_request_error", "message": "This request was refused."}}}
            else:
                result = {"type": "succeeded", "message": {
                    "id": f"msg_{i}", "type": "message", "role": "assistant",
                    "model": r["params"]["model"],
                    "content": [{"type": "text", "text": f"echo: {text}"}],
                    "stop_reason": "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": 9, "output_tokens": 3}}}
            rows.append({"custom_id": r["custom_id"], "result": result})
        rows.reverse()
        return web.Response(body=b"".join(json.dumps(r).encode() + b"\n" for r in rows),
                            content_type="application/binary")

    # --- lifecycle --------------------------------------------------------------

    def _app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            self.log.append((request.method, request.path))
            return await handler(request)  # type: ignore[no-any-return]

        app = web.Application(middlewares=[record])
        app.router.add_post("/v1/files", self.upload)
        app.router.add_post("/v1/batches", self.create_openai)
        app.router.add_get("/v1/batches/{id}", self.poll_openai)
        app.router.add_get("/v1/files/{id}/content", self.content)
        app.router.add_post("/v1/messages/batches", self.create_anthropic)
        app.router.add_get("/v1/messages/batches/{id}", self.poll_anthropic)
        app.router.add_get("/v1/messages/batches/{id}/results", self.results_anthropic)
        return app

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.log if m == method and p == path)


@contextmanager
def running(server: BatchAPIServer) -> Iterator[BatchAPIServer]:
    """Serve on 127.0.0.1 from a thread of its own (usable from sync and async tests)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner = web.AppRunner(server._app())

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        server.url = f"http://127.0.0.1:{port}"
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    ready.wait(10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
