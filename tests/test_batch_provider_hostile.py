"""``--provider-batch`` against a hostile batch server (not the well-behaved one).

A small loopback server answers each endpoint from a script the test sets:
malformed batch objects, a 429 on a poll, results for ids nobody sent, a
results_url on another host. The key must never go anywhere but the API's host.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelwire import AsyncClient
from modelwire.batch import output_lock
from modelwire.batch_remote import run_provider_batch, state_path
from modelwire.errors import ConfigurationError, MalformedResponseError, ProviderError

KEY = "sk-hostile-test-key"
IDS = ["r0", "r1", "r2"]


class Script:
    def __init__(self) -> None:
        self.polls: list[tuple[int, Any, dict[str, str]]] = []  # answered in turn...
        self.final: tuple[int, Any, dict[str, str]] = (200, {}, {})  # ...then this one
        self.create: Any = None
        self.results = b""
        self.seen: list[tuple[str, str, str]] = []  # (method, path, key header)


@contextmanager
def serving(script: Script) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _note(self) -> None:
            key = self.headers.get("authorization") or self.headers.get("x-api-key") or ""
            script.seen.append((self.command, self.path, key))

        def do_POST(self) -> None:
            self._note()
            self.rfile.read(int(self.headers.get("content-length") or 0))
            if self.path.endswith("/files"):
                return self._answer(200, {"id": "file-in", "object": "file"})
            return self._answer(200, script.create)

        def do_GET(self) -> None:
            self._note()
            if self.path.endswith(("/content", "/results")):
                return self._answer(200, script.results)
            status, body, headers = script.polls.pop(0) if script.polls else script.final
            return self._answer(status, body, headers)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _input(tmp_path: Path) -> tuple[Path, Path]:
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": i, "prompt": f"say {i}"}) + "\n" for i in IDS))
    return inp, tmp_path / "out.jsonl"


def _openai_line(cid: str) -> dict[str, Any]:
    return {"id": "req", "custom_id": cid, "error": None, "response": {
        "status_code": 200, "body": {
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"hi {cid}"}}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}}}}


def _anthropic_line(cid: str) -> dict[str, Any]:
    return {"custom_id": cid, "result": {"type": "succeeded", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": f"hi {cid}"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 2, "output_tokens": 2}}}}


def _jsonl(rows: list[Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


async def _go(url: str, inp: Path, out: Path, model: str,
              logged: list[str] | None = None) -> dict[str, int]:
    async with AsyncClient(api_keys={"openai": KEY, "anthropic": KEY},
                           base_urls={"openai": f"{url}/v1", "anthropic": url}) as client:
        return await run_provider_batch(client, inp, out, model=model, poll_interval=0,
                                        log=(logged.append if logged is not None
                                             else lambda _m: None))


def _rows(out: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}


OPENAI_DONE = (200, {"id": "batch_1", "object": "batch", "status": "completed",
                     "output_file_id": "file-out"}, {})


async def test_results_url_on_another_host_never_gets_the_key(tmp_path: Path) -> None:
    inp, out = _input(tmp_path)
    evil, script = Script(), Script()
    evil.results = _jsonl([_anthropic_line(i) for i in IDS])
    with serving(evil) as evil_url, serving(script) as url:
        script.create = {"id": "msgbatch_1", "type": "message_batch",
                         "processing_status": "in_progress"}
        script.final = (200, {"id": "msgbatch_1", "type": "message_batch",
                              "processing_status": "ended",
                              "results_url": f"{evil_url}/v1/messages/batches/msgbatch_1/results"},
                        {})
        with pytest.raises(MalformedResponseError, match="refusing to send the API key"):
            await _go(url, inp, out, "anthropic/claude-sonnet-4-5")
    assert evil.seen == []  # another port is another origin: not one request
    assert all(key == KEY for _m, _p, key in script.seen)
    assert state_path(out).exists()  # the batch is not forgotten: a rerun can resume it


async def test_server_ids_with_path_characters_are_refused(tmp_path: Path) -> None:
    inp, out = _input(tmp_path)
    script = Script()
    with serving(script) as url:
        script.create = {"id": "batch_1", "object": "batch", "status": "validating"}
        script.final = (200, {"id": "batch_1", "object": "batch", "status": "completed",
                              "output_file_id": "../../elsewhere"}, {})
        with pytest.raises(MalformedResponseError, match="not a plain id"):
            await _go(url, inp, out, "openai/gpt-4o-mini")
    assert not any("elsewhere" in path for _m, path, _k in script.seen)


async def test_malformed_batch_objects_and_a_429_poll_do_not_sink_the_run(
        tmp_path: Path) -> None:
    inp, out = _input(tmp_path)
    script = Script()
    logged: list[str] = []
    with serving(script) as url:
        script.create = {"id": "batch_1", "object": "batch", "status": "validating"}
        script.polls = [
            (429, {"error": {"message": "Too many polls", "type": "rate_limit_error"}},
             {"retry-after": "0"}),
            (200, {"id": "batch_1", "status": "in_progress", "request_counts": [1, 2],
                   "errors": ["not an object"]}, {}),
            (503, {"error": {"message": "try later"}}, {"retry-after": "0"}),
        ]
        script.final = OPENAI_DONE
        script.results = _jsonl([_openai_line(i) for i in IDS])
        counts = await _go(url, inp, out, "openai/gpt-4o-mini", logged)
    assert counts["ok"] == 3 and counts["errors"] == 0
    assert any("RateLimitError" in m for m in logged), logged
    assert sum(1 for m, p, _k in script.seen if m == "POST" and p == "/v1/batches") == 1
    assert not state_path(out).exists()


async def test_bad_result_lines_are_skipped_and_the_missing_id_gets_an_error(
        tmp_path: Path) -> None:
    inp, out = _input(tmp_path)
    script = Script()
    logged: list[str] = []
    with serving(script) as url:
        script.create = {"id": "batch_1", "object": "batch", "status": "validating"}
        script.final = OPENAI_DONE
        script.results = (_jsonl([_openai_line("r0"), _openai_line("someone-else")])
                          + b"{not json\n[1, 2]\n" + _jsonl([_openai_line("r2")]))
        counts = await _go(url, inp, out, "openai/gpt-4o-mini", logged)
    rows = _rows(out)
    assert counts == {"total": 3, "skipped": 0, "ok": 2, "errors": 1, "truncated_bytes": 0}
    assert rows["r0"]["response"]["text"] == "hi r0"
    assert rows["r2"]["response"]["text"] == "hi r2"
    assert "3 results line(s) could not be read" in rows["r1"]["error"]["message"]
    assert sum("bad results line" in m for m in logged) == 3
    assert not state_path(out).exists()


async def test_resuming_with_another_provider_or_a_corrupt_state_is_refused(
        tmp_path: Path) -> None:
    inp, out = _input(tmp_path)
    script = Script()
    with serving(script) as url:
        state_path(out).write_text(json.dumps({"provider": "anthropic",
                                               "batch_id": "msgbatch_1",
                                               "custom_ids": {i: i for i in IDS}}))
        with pytest.raises(ConfigurationError, match="submitted to 'anthropic'"):
            await _go(url, inp, out, "openai/gpt-4o-mini")
        state_path(out).write_text('{"batch_id": 5, "custom_ids": [1]}')
        with pytest.raises(ConfigurationError, match="not a batch state file"):
            await _go(url, inp, out, "openai/gpt-4o-mini")
        state_path(out).write_text('{"batch_id": "b')
        with pytest.raises(ConfigurationError, match="not valid JSON"):
            await _go(url, inp, out, "openai/gpt-4o-mini")
    assert script.seen == []  # refused before any traffic


async def test_a_bad_request_or_mixed_openai_models_refused_naming_why(tmp_path: Path) -> None:
    inp, out = _input(tmp_path)
    script = Script()
    with serving(script) as url:
        inp.write_text('{"id": "a", "prompt": "x"}\n'
                       '{"id": "b", "prompt": "x", "options": {"bogus": 1}}\n')
        with pytest.raises(ConfigurationError, match=r"request 'b': unknown argument"):
            await _go(url, inp, out, "openai/gpt-4o-mini")
        inp.write_text('{"id": "a", "prompt": "x"}\n'
                       '{"id": "b", "prompt": "x", "model": "openai/gpt-4.1"}\n')
        with pytest.raises(ConfigurationError, match="one model"):
            await _go(url, inp, out, "openai/gpt-4o-mini")
    assert script.seen == []


async def test_a_second_provider_run_on_the_same_output_submits_nothing(tmp_path: Path) -> None:
    inp, out = _input(tmp_path)
    script = Script()
    with serving(script) as url, output_lock(out), \
            pytest.raises(ConfigurationError, match="another run is writing"):
        await _go(url, inp, out, "openai/gpt-4o-mini")
    assert script.seen == []


async def test_a_vanished_batch_says_how_to_start_over(tmp_path: Path) -> None:
    inp, out = _input(tmp_path)
    script = Script()
    with serving(script) as url:
        state_path(out).write_text(json.dumps({"provider": "openai", "batch_id": "batch_old",
                                               "custom_ids": {i: i for i in IDS}}))
        script.final = (404, {"error": {"message": "No batch found", "type": "invalid_request"}},
                        {})
        with pytest.raises(ProviderError, match="delete that file to submit anew") as info:
            await _go(url, inp, out, "openai/gpt-4o-mini")
    assert info.value.status == 404 and str(state_path(out)) in str(info.value)
    assert [(m, p) for m, p, _k in script.seen] == [("GET", "/v1/batches/batch_old")]


async def test_resuming_with_another_model_is_refused(tmp_path: Path) -> None:
    inp, out = _input(tmp_path)
    script = Script()
    with serving(script) as url:
        script.create = {"id": "batch_1", "object": "batch", "status": "validating"}
        script.final = (200, {"id": "batch_1", "status": "in_progress"}, {})

        async def interrupted() -> None:
            async with AsyncClient(api_keys={"openai": KEY},
                                   base_urls={"openai": f"{url}/v1"}) as client:
                await run_provider_batch(client, inp, out, model="openai/gpt-4o-mini",
                                         poll_interval=0.01)

        task = asyncio.ensure_future(interrupted())
        while not state_path(out).exists():
            await asyncio.sleep(0.01)
        task.cancel()  # Ctrl-C while polling
        with pytest.raises(asyncio.CancelledError):
            await task
        seen = len(script.seen)
        with pytest.raises(ConfigurationError, match=r"not gpt-4\.1"):
            await _go(url, inp, out, "openai/gpt-4.1")
    assert len(script.seen) == seen  # refused before any traffic
    assert json.loads(state_path(out).read_text())["models"] == ["gpt-4o-mini"]


async def test_a_results_url_that_is_a_path_is_on_the_api(tmp_path: Path) -> None:
    inp, out = _input(tmp_path)
    script = Script()
    with serving(script) as url:
        script.create = {"id": "msgbatch_1", "processing_status": "in_progress"}
        script.final = (200, {"id": "msgbatch_1", "processing_status": "ended",
                              "results_url": "/v1/messages/batches/msgbatch_1/results"}, {})
        script.results = _jsonl([_anthropic_line(i) for i in IDS])
        counts = await _go(url, inp, out, "anthropic/claude-sonnet-4-5")
    assert counts["ok"] == 3
    assert ("GET", "/v1/messages/batches/msgbatch_1/results", KEY) in script.seen
