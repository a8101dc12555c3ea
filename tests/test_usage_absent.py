"""A server that reports no usage (llama.cpp's server streams no usage chunk):
usage is absent (None counts, source "none"), never 0/0 presented as reported."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from modelwire import AsyncClient, Client
from modelwire.cli.app import app
from modelwire.response import Usage

CHUNKS = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"},
                  "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
]


class _NoUsage(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        common = {"id": "chatcmpl-1", "created": 1, "model": "m"}
        if body.get("stream"):
            payload = b"".join(
                b"data: " + json.dumps({**common, "object": "chat.completion.chunk", **c}).encode()
                + b"\n\n" for c in CHUNKS) + b"data: [DONE]\n\n"
            content_type = "text/event-stream"
        else:
            payload = json.dumps({**common, "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hello"},
                 "finish_reason": "stop"}]}).encode()
            content_type = "application/json"
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoUsage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _absent(usage: Usage) -> None:
    assert usage.source == "none"
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (None, None, None)


async def test_stream_and_complete_without_usage_report_none(base_url: str) -> None:
    async with AsyncClient(base_urls={"llamacpp": base_url}, env={}) as client:
        async with client.stream("llamacpp/m", "hi") as stream:
            events = [e async for e in stream]
        assert stream.response.text == "Hello" and events
        _absent(stream.response.usage)
        _absent((await client.complete("llamacpp/m", "hi")).usage)


def test_sync_client_too(base_url: str) -> None:
    with Client(base_urls={"llamacpp": base_url}, env={}) as client:
        with client.stream("llamacpp/m", "hi") as stream:
            assert "".join(getattr(e, "text", "") for e in stream) == "Hello"
        _absent(stream.response.usage)


@pytest.mark.parametrize("extra", [[], ["--no-stream"]])
def test_cli_json_prints_null_counts(base_url: str, monkeypatch: pytest.MonkeyPatch,
                                     extra: list[str]) -> None:
    monkeypatch.setenv("LLAMACPP_BASE_URL", base_url)
    result = CliRunner().invoke(app, ["chat", "-m", "llamacpp/m", "--json", *extra, "hi"])
    assert result.exit_code == 0, result.stderr
    usage = json.loads(result.stdout)["usage"]
    assert usage["source"] == "none"
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (
        None, None, None)


def test_a_later_report_fills_absent_counts_and_a_zero_never_erases_one() -> None:
    reported = Usage(7, 0, 7, source="reported")
    merged = Usage().merged(reported).merged(Usage(0, 3, 0, source="reported"))
    assert (merged.input_tokens, merged.output_tokens, merged.total_tokens,
            merged.source) == (7, 3, 10, "reported")
    _absent(Usage().merged(Usage()))
