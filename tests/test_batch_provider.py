"""`modelwire batch --provider-batch`: OpenAI Batch and Anthropic Message Batches
against a loopback server that speaks those endpoints."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from batch_api_server import KEY, BatchAPIServer, running
from typer.testing import CliRunner

from modelwire import AsyncClient
from modelwire.batch_remote import custom_id, run_provider_batch, state_path
from modelwire.cli.app import app
from modelwire.errors import UnsupportedFeatureError

IDS = ["a1", "needs mapping/ü 2", "c3", "d4-FAIL", "e5"]


def _input(path: Path) -> Path:
    with path.open("w") as f:
        for rid in IDS:
            text = f"hello {rid}" + (" FAIL" if "FAIL" in rid else "")
            f.write(json.dumps({"id": rid, "messages": [{"role": "user", "content": text}],
                                "options": {"max_tokens": 20}}) + "\n")
    return path


def _client(server: BatchAPIServer) -> AsyncClient:
    return AsyncClient(api_keys={"openai": KEY, "anthropic": KEY},
                       base_urls={"openai": f"{server.url}/v1", "anthropic": server.url},
                       env={})


def _rows(out: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len({r["id"] for r in rows})  # one line per id
    return {r["id"]: r for r in rows}


def _check(rows: dict[str, dict[str, Any]], provider: str) -> None:
    assert set(rows) == set(IDS)
    for rid in IDS:
        if "FAIL" in rid:
            err = rows[rid]["error"]
            assert err["type"] == "BadRequestError" and "refused" in err["message"]
            assert err["retryable"] is False
        else:
            resp = rows[rid]["response"]
            assert resp["text"] == f"echo: hello {rid}"
            assert resp["provider"] == provider
            assert resp["usage"]["output_tokens"] == 3 and resp["usage"]["source"] == "reported"


@pytest.mark.parametrize(("model", "create"), [
    ("openai/gpt-4o-mini", ("POST", "/v1/batches")),
    ("anthropic/claude-sonnet-4-5", ("POST", "/v1/messages/batches")),
])
async def test_provider_batch_end_to_end(tmp_path: Path, model: str,
                                         create: tuple[str, str]) -> None:
    inp, out = _input(tmp_path / "in.jsonl"), tmp_path / "out.jsonl"
    with running(BatchAPIServer(polls_to_finish=3)) as server:
        async with _client(server) as client:
            counts = await run_provider_batch(client, inp, out, model=model, poll_interval=0)
        assert server.count(*create) == 1
        (batch,) = server.batches.values()
    assert counts == {"total": 5, "skipped": 0, "ok": 4, "errors": 1, "truncated_bytes": 0}
    _check(_rows(out), model.split("/")[0])
    assert batch["polls"] == 3
    # what was submitted is what the chat codec sends, keyed by API-safe custom ids
    key = "body" if model.startswith("openai") else "params"
    sent = {r["custom_id"]: r[key] for r in batch["requests"]}
    assert set(sent) == {custom_id(i) for i in IDS}
    assert custom_id("needs mapping/ü 2").startswith("mw-")
    assert all(body.get("max_tokens") == 20 or body.get("max_completion_tokens") == 20
               for body in sent.values())
    assert not state_path(out).exists()


async def test_interrupted_polling_resumes_the_same_batch(tmp_path: Path) -> None:
    inp, out = _input(tmp_path / "in.jsonl"), tmp_path / "out.jsonl"
    with running(BatchAPIServer(polls_to_finish=10**6)) as server:
        async with _client(server) as client:
            task = asyncio.ensure_future(run_provider_batch(
                client, inp, out, model="openai/gpt-4o-mini", poll_interval=0.01))
            while not (state_path(out).exists() and server.batches
                       and next(iter(server.batches.values()))["polls"] >= 2):
                await asyncio.sleep(0.01)
            task.cancel()  # Ctrl-C while polling
            with pytest.raises(asyncio.CancelledError):
                await task
        state = json.loads(state_path(out).read_text())
        assert state["batch_id"] == "batch_1" and not out.exists()

        server.polls_to_finish = 0
        async with _client(server) as client:
            counts = await run_provider_batch(client, inp, out, model="openai/gpt-4o-mini",
                                              poll_interval=0)
        assert server.count("POST", "/v1/batches") == 1  # not submitted (or paid) twice
        assert server.count("POST", "/v1/files") == 1
    assert counts["ok"] == 4 and counts["errors"] == 1
    _check(_rows(out), "openai")
    assert not state_path(out).exists()


async def test_results_already_written_are_not_written_twice(tmp_path: Path) -> None:
    """Killed while writing results: the rerun writes only the missing ones."""
    inp, out = _input(tmp_path / "in.jsonl"), tmp_path / "out.jsonl"
    with running(BatchAPIServer(polls_to_finish=1)) as server:
        async with _client(server) as client:
            await run_provider_batch(client, inp, out, model="anthropic/claude-sonnet-4-5",
                                     poll_interval=0)
        lines = out.read_text().splitlines()
        # put back the state and keep only two results, as if killed mid-way
        batch_id = next(iter(server.batches))
        state_path(out).write_text(json.dumps({"provider": "anthropic", "batch_id": batch_id,
                                               "custom_ids": {custom_id(i): i for i in IDS}}))
        out.write_text("\n".join(lines[:2]) + "\n" + lines[2][:10])
        async with _client(server) as client:
            counts = await run_provider_batch(client, inp, out,
                                              model="anthropic/claude-sonnet-4-5",
                                              poll_interval=0)
        assert server.count("POST", "/v1/messages/batches") == 1
    assert counts["skipped"] == 2 and counts["ok"] + counts["errors"] == 3
    _check(_rows(out), "anthropic")


async def test_providers_without_a_batch_api_are_refused(tmp_path: Path) -> None:
    inp, out = _input(tmp_path / "in.jsonl"), tmp_path / "out.jsonl"
    async with AsyncClient() as client:
        with pytest.raises(UnsupportedFeatureError, match="--provider-batch"):
            await run_provider_batch(client, inp, out, model="mock/echo")


def test_cli_provider_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inp, out = _input(tmp_path / "in.jsonl"), tmp_path / "out.jsonl"
    with running(BatchAPIServer(polls_to_finish=2)) as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        result = CliRunner().invoke(app, [
            "batch", str(inp), "-o", str(out), "-m", "openai/gpt-4o-mini",
            "--provider-batch", "--poll-interval", "0"])
    assert result.exit_code == 1, result.output  # one request failed
    assert "4 ok, 1 errors, 0 already done (of 5)" in result.stderr
    _check(_rows(out), "openai")
