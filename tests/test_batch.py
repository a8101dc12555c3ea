"""Batch jobs: client.batch() and `modelwire batch`, interrupted and resumed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from modelwire import AsyncClient, Client
from modelwire.batch import BatchResult, prepare_output, read_requests, run_file
from modelwire.errors import (
    ClientRateLimitError,
    ConfigurationError,
    InvalidMessageError,
    ServerError,
)
from modelwire.middleware import RateLimit
from modelwire.mock import MockReply
from modelwire.pipeline import Call, Next, Outcome
from modelwire.testing import Fault, FaultServer

ROOT = Path(__file__).resolve().parents[1]


class InFlight:
    """A middleware that counts calls in flight (and holds each one a moment)."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    async def __call__(self, call: Call, next: Next) -> Outcome:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(0)
            return await next(call)
        finally:
            self.now -= 1


async def test_thousand_requests_bounded_in_order_with_failures() -> None:
    counter = InFlight()
    replies = [MockReply(status=500) if i % 10 == 3 else MockReply(f"answer {i}")
               for i in range(1000)]
    seen: list[str] = []
    async with AsyncClient(middleware=[counter]) as client:
        client.mock.script(*replies)
        results = await client.batch(
            [{"id": f"q{i}", "prompt": f"p{i}"} for i in range(1000)], model="mock/echo",
            concurrency=7, on_result=lambda r: seen.append(r.id))
    assert [r.id for r in results] == [f"q{i}" for i in range(1000)]
    assert counter.peak == 7
    errors = [r for r in results if not r.ok]
    assert len(errors) == 100 and all(isinstance(r.error, ServerError) for r in errors)
    assert all(r.to_dict()["error"] == {"type": "ServerError", "message": r.error.message,
                                        "status": 500, "retryable": True}
               for r in errors if r.error is not None and hasattr(r.error, "message"))
    oks = [r for r in results if r.ok]
    assert len(oks) == 900 and all(r.response and r.response.text.startswith("answer")
                                   for r in oks)
    assert sorted(seen) == sorted(r.id for r in results)  # on_result once per request


async def test_async_on_result_and_messages_and_options() -> None:
    got: list[BatchResult] = []

    async def on_result(r: BatchResult) -> None:
        got.append(r)

    async with AsyncClient(middleware=[]) as client:
        results = await client.batch([
            {"id": 1, "messages": [{"role": "user", "content": "from messages"}]},
            {"id": "b", "prompt": "with options", "options": {"max_tokens": 5}},
            {"id": "c", "prompt": "bad model", "model": "nope/x"},
            {"id": "d", "prompt": "bad option", "options": {"bogus": 1}},
        ], model="mock/echo", on_result=on_result)
        sent = client.mock.requests
    assert [r.id for r in results] == ["1", "b", "c", "d"] and len(got) == 4
    assert results[0].response is not None and results[0].response.text == "from messages"
    assert any(body.get("max_tokens") == 5 for body in sent)
    assert results[2].to_dict()["error"]["type"] == "UnknownProviderError"
    assert results[3].to_dict()["error"]["type"] == "InvalidParameterError"  # a misspelt keyword


async def test_the_rate_limiter_applies_to_every_request() -> None:
    async with AsyncClient(max_retries=0, rate_limits={
            "mock/echo": RateLimit(rpm=5, max_wait=0.0)}) as client:
        results = await client.batch([{"id": i, "prompt": "x"} for i in range(12)],
                                     model="mock/echo", concurrency=4)
    refused = [r for r in results if isinstance(r.error, ClientRateLimitError)]
    assert len(refused) == 7 and sum(r.ok for r in results) == 5


def test_sync_twin() -> None:
    with Client(middleware=[]) as client:
        results = client.batch([{"id": "a", "prompt": "hi"}, {"id": "b", "prompt": "yo"}],
                               model="mock/echo", concurrency=2)
    assert [(r.id, r.response.text if r.response else None) for r in results] == [
        ("a", "hi"), ("b", "yo")]


@pytest.mark.parametrize(("request_", "match"), [
    ({"prompt": "no id"}, "needs an \"id\""),
    ({"id": "x"}, "exactly one of"),
    ({"id": "x", "prompt": "a", "messages": []}, "exactly one of"),
    ({"id": "x", "prompt": "a", "temperature": 1}, "unknown field"),
    ({"id": "x", "prompt": "a", "options": 3}, "\"options\" must be an object"),
])
async def test_bad_requests_fail_before_any_traffic(request_: dict[str, Any],
                                                    match: str) -> None:
    async with AsyncClient(middleware=[]) as client:
        with pytest.raises(InvalidMessageError, match=match):
            await client.batch([{"id": "ok", "prompt": "fine"}, request_], model="mock/echo")
        with pytest.raises(InvalidMessageError, match="twice"):
            await client.batch([{"id": "a", "prompt": "1"}, {"id": "a", "prompt": "2"}])
        with pytest.raises(ConfigurationError, match="concurrency"):
            await client.batch([], concurrency=0)
        assert client.mock.requests == []


# --- files: resume ---------------------------------------------------------------


def _write_input(path: Path, n: int, bad: frozenset[int] = frozenset()) -> None:
    with path.open("w") as f:
        for i in range(n):
            row: dict[str, Any] = {"id": f"r{i}", "prompt": f"hello {i}"}
            if i in bad:
                row["model"] = "openai/mw-status-400"  # the fault server's permanent 400
            f.write(json.dumps(row) + "\n")


def _ids(path: Path) -> Counter[str]:
    return Counter(json.loads(line)["id"] for line in path.read_text().splitlines())


def test_half_written_last_line_is_cut_and_redone(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_input(inp, 5)
    out.write_text('{"id":"r0","response":{"text":"done before"}}\n{"id":"r1","resp')
    state = prepare_output(out)
    assert state.done == {"r0": True} and state.truncated == len('{"id":"r1","resp')

    async def go() -> dict[str, int]:
        async with AsyncClient(middleware=[]) as client:
            return await run_file(client, inp, out, model="mock/echo")

    counts = asyncio.run(go())
    assert counts == {"total": 5, "skipped": 1, "ok": 4, "errors": 0, "truncated_bytes": 0}
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert _ids(out) == Counter({f"r{i}": 1 for i in range(5)})
    assert rows[0]["response"]["text"] == "done before"  # never redone


def test_output_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("hello, I am someone's notes\n")
    with pytest.raises(ConfigurationError, match="not a batch result line"):
        prepare_output(out)
    assert out.read_text() == "hello, I am someone's notes\n"


def test_retry_errors_drops_error_lines(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"id":"a","response":{}}\n{"id":"b","error":{"type":"ServerError"}}\n')
    assert prepare_output(out).done == {"a": True, "b": False}
    assert prepare_output(out, retry_errors=True).done == {"a": True}
    assert out.read_text() == '{"id":"a","response":{}}\n'


def test_input_errors_name_the_line(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": "a", "prompt": "x"}\n\n{"id": "a", "prompt": "y"}\n')
    with pytest.raises(InvalidMessageError, match=r"in.jsonl:3: id 'a' appears twice"):
        read_requests(inp)
    inp.write_text('{"id": "a", "prompt": "x"}\n{nope\n')
    with pytest.raises(InvalidMessageError, match=r"in.jsonl:2: not valid JSON"):
        read_requests(inp)


# --- the real program, killed and resumed ------------------------------------------


def _start(inp: Path, out: Path, server: FaultServer, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "sk-fake",
           "OPENAI_BASE_URL": server.url_for("openai")}
    return subprocess.Popen(
        [sys.executable, "-m", "modelwire.cli", "batch", str(inp), "-o", str(out),
         "-m", "openai/gpt-4o-mini", "--concurrency", "8", "--no-progress", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_lines(proc: subprocess.Popen[bytes], out: Path, n: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= n:
            return
        time.sleep(0.02)
    err = proc.stderr.read() if proc.stderr else b""
    raise AssertionError(f"the batch ended or stalled before {n} lines "
                         f"(rc={proc.poll()}, stderr={err!r})")


def test_thousand_requests_killed_interrupted_and_resumed(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    bad = frozenset(range(405, 1000, 20))  # 30 permanent 400s (model name rule)
    _write_input(inp, 1000, bad)
    with FaultServer.run_in_thread() as server:
        slow = Fault.ok(delay=0.01)  # slow enough to interrupt mid-run
        server.default = slow
        # 10 transient 503s spread over the first ~250 requests (a queued fault wins
        # over the model-name rule, so the permanent 400s come later): each is retried
        server.script(*([Fault.status(503)] + [slow] * 24) * 10)

        proc = _start(inp, out, server)
        _wait_for_lines(proc, out, 150)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)  # reaps it and closes its pipes
        first = _ids(out)
        assert 150 <= sum(first.values()) < 1000 and max(first.values()) == 1

        proc = _start(inp, out, server)
        _wait_for_lines(proc, out, sum(first.values()) + 150)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        second = _ids(out)
        assert sum(second.values()) < 1000 and max(second.values()) == 1

        with out.open("ab") as f:  # as if killed in the middle of a write
            f.write(b'{"id":"r999","respo')
        proc = _start(inp, out, server)
        _, err = proc.communicate(timeout=120)
        assert server.pending == 0  # every scripted 503 was served (and retried: see below)
    assert proc.returncode == 1, err  # some results are errors: exit 1
    assert b"half-written last line" in err
    left_bad = sum(1 for i in bad if f"r{i}" not in second)
    left_ok = 1000 - len(second) - left_bad
    assert f"{left_ok} ok, {left_bad} errors, {len(second)} already done".encode() in err
    final = _ids(out)
    assert final == Counter({f"r{i}": 1 for i in range(1000)})  # exactly one result per id
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    for i in range(1000):
        row = rows[f"r{i}"]
        if i in bad:
            assert row["error"]["type"] == "BadRequestError" and row["error"]["status"] == 400
            assert row["error"]["retryable"] is False
        else:
            assert row["response"]["text"] == "Hello from the fault server."
    assert not out.read_bytes().endswith(b"\x00") and out.read_bytes().endswith(b"\n")


def test_progress_counts_tokens_and_reported_cost() -> None:
    from modelwire.cli.batch import Progress
    from modelwire.response import Response, Usage

    p = Progress(enabled=False)
    p.start(3, 0)
    p.update(BatchResult("a", response=Response(usage=Usage(2, 3, 5),
                                                raw={"total_cost_usd": 0.25})))
    p.update(BatchResult("b", response=Response(usage=Usage(1, 1, 2))))
    p.update(BatchResult("c", error=ServerError("down")))
    assert (p.tokens, p.cost, p.costed, p.errors) == (7, 0.25, 1, 1)


def test_cli_progress_bar_and_resume_message(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from modelwire.cli.app import app

    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_input(inp, 30)
    args = ["batch", str(inp), "-o", str(out), "-m", "mock/echo", "--progress"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "30/30" in first.stderr and "/s" in first.stderr and "tok" in first.stderr
    assert "30 ok, 0 errors, 0 already done (of 30)" in first.stderr
    again = CliRunner().invoke(app, args)
    assert "30 of 30 ids already in the output" in again.stderr
    assert _ids(out) == Counter({f"r{i}": 1 for i in range(30)})
