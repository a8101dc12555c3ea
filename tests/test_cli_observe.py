"""``modelwire bench``, ``tokens`` and ``cost`` against the mock (in-process CliRunner)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

import modelwire.cli.app as cli_app
from modelwire import AsyncClient
from modelwire.cli.app import app
from modelwire.mock import MockReply

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def test_bench_json_counts_calls_errors_and_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    def factory() -> AsyncClient:
        c = AsyncClient(max_retries=0)
        c.mock.script(*[MockReply("one two three", usage=(5, 3)) for _ in range(4)],
                      MockReply(status=400))
        return c
    monkeypatch.setattr(cli_app, "new_client", factory)
    result = invoke("bench", "-m", "mock/a", "hello", "-n", "5", "--concurrency", "2", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["model"] == "mock/a" and row["calls"] == 5 and row["ok"] == 4
    assert row["errors"] == {"BadRequestError": 1}
    assert row["ttft_p50_s"] is not None and row["latency_p95_s"] >= row["latency_p50_s"]
    assert row["output_tokens_per_s"] > 0
    assert row["cost_per_call_usd"] == 0.0 and "mock" in row["cost_note"]


def test_bench_table_for_two_models() -> None:
    result = invoke("bench", "-m", "mock/a", "-m", "mock/b", "hi there", "-n", "3")
    assert result.exit_code == 0, result.output
    assert "mock/a" in result.stdout and "mock/b" in result.stdout
    assert "3/3" in result.stdout and "TTFT p50/p95" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_bench_needs_a_model() -> None:
    result = invoke("bench", "hi")
    assert result.exit_code == 2 and "--model" in result.stderr


def test_tokens_command() -> None:
    result = invoke("tokens", "-m", "openai/gpt-4o", "hello world")
    assert result.exit_code == 0 and result.stdout.startswith("2 tokens (exact")
    result = invoke("tokens", "-m", "openai/gpt-4o", "--chat", "--json", "hello world")
    assert json.loads(result.stdout)["tokens"] == 9
    result = invoke("tokens", "-m", "nomodel", "x")
    assert result.exit_code == 2 and "InvalidModelError" in result.stderr


def test_cost_command() -> None:
    pytest.importorskip("genai_prices", reason="genai-prices is not installed")
    # gpt-4o: $2.50 / M input, $1.25 / M cached, $10 / M output
    result = invoke("cost", "-m", "openai/gpt-4o", "--input", "1000000", "--output", "1000",
                    "--cached", "500000", "--json")
    assert result.exit_code == 0
    c = json.loads(result.stdout)
    assert c["total"] == pytest.approx(1.25 + 0.625 + 0.01)
    assert c["usage_source"] == "estimated"
    result = invoke("cost", "-m", "openai/gpt-unknown-zz", "--input", "10")
    assert result.exit_code == 1 and "no price" in result.stderr
    result = invoke("cost", "-m", "openai/gpt-4o", "--input", "1", "--cached", "2")
    assert result.exit_code == 2


@pytest.mark.llama
def test_bench_runs_against_the_local_model() -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    result = invoke("bench", "-m", "local/smollm2-135m-instruct", "Say hi", "-n", "2",
                    "--max-tokens", "4", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["ok"] == 2 and row["ttft_p50_s"] is not None
    assert row["cost_per_call_usd"] == 0.0 and "local" in row["cost_note"]


def test_tokens_resolves_an_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_app, "new_client", lambda: AsyncClient(
        aliases={"fast": ["openai/gpt-4o"]}, api_keys={"openai": "k"}, config=False))
    result = invoke("tokens", "-m", "fast", "--json", "hello world")
    assert result.exit_code == 0, result.output  # was InvalidModelError
    out = json.loads(result.stdout)
    assert (out["tokens"], out["provenance"], out["model"]) == (2, "exact", "openai/gpt-4o")


def test_bench_interrupted_prints_what_it_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    import modelwire.cli.observe as observe
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT has a non-default handler here, so asyncio.run cannot catch it")
    real, finished = observe._one, []

    async def one(*args: Any) -> None:
        await real(*args)
        finished.append(1)
        if len(finished) == 7:  # Ctrl-C, as the terminal sends it
            signal.raise_signal(signal.SIGINT)
    monkeypatch.setattr(observe, "_one", one)
    result = invoke("bench", "-m", "mock/a", "-m", "mock/b", "hi", "-n", "1000",
                    "-c", "1", "--json")
    assert result.exit_code == 130  # was 130 with nothing printed
    (row,) = json.loads(result.stdout)  # mock/b never started
    assert row["model"] == "mock/a" and row["calls"] == row["ok"] >= 7
    assert "interrupted" in result.stderr


def test_cost_resolves_an_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("genai_prices", reason="genai-prices is not installed")
    monkeypatch.setattr(cli_app, "new_client", lambda: AsyncClient(
        aliases={"big": ["openai/gpt-4o"]}, api_keys={"openai": "k"}, config=False))
    result = invoke("cost", "-m", "big", "--input", "1000000", "--json")
    assert result.exit_code == 0, result.output  # was InvalidModelError
    assert json.loads(result.stdout)["total"] == pytest.approx(2.5)
    result = invoke("cost", "-m", "nosuchalias", "--input", "1")
    assert result.exit_code == 2 and "InvalidModelError" in result.stderr
