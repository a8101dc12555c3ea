"""Cost: genai-prices against hand-computed figures from providers' published prices."""

from __future__ import annotations

import math

import pytest

from modelwire import AsyncClient
from modelwire.mock import MockReply
from modelwire.observe.cost import cost_of, estimate_cost
from modelwire.response import Usage
from modelwire.testing.fault_server import Fault, FaultServer

pytest.importorskip("genai_prices", reason="genai-prices (the cost extra) is not installed")

M = 1_000_000


def close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def test_openai_gpt4o_with_cached_input() -> None:
    # Published: $2.50 / M input, $1.25 / M cached input, $10.00 / M output.
    u = Usage(10_000, 2_000, 12_000, cached_input_tokens=4_000, source="reported")
    c = cost_of("openai", "gpt-4o-2024-08-06", u)
    assert close(c.input, 6_000 * 2.50 / M)
    assert close(c.cached_input, 4_000 * 1.25 / M)
    assert close(c.output, 2_000 * 10.00 / M)
    assert close(c.total, 0.015 + 0.005 + 0.02)
    assert c.usage_source == "reported" and c.priced_model == "gpt-4o"
    assert c.price_table and c.price_table.startswith("genai-prices ")


def test_anthropic_sonnet_cache_read_and_write() -> None:
    # Published: $3 / M input, $15 / M output, cache writes $3.75 / M, cache hits $0.30 / M.
    # modelwire's input_tokens includes cache reads and writes.
    u = Usage(10_000, 1_000, 11_000, cached_input_tokens=2_000, cache_write_tokens=1_000,
              source="reported")
    c = cost_of("anthropic", "claude-sonnet-4-5-20250929", u)
    assert close(c.input, 7_000 * 3 / M)
    assert close(c.cached_input, 2_000 * 0.30 / M)
    assert close(c.cache_write, 1_000 * 3.75 / M)
    assert close(c.output, 1_000 * 15 / M)
    assert close(c.total, 0.021 + 0.0006 + 0.00375 + 0.015)


def test_reasoning_tokens_are_a_share_of_output() -> None:
    # o4-mini published: $1.10 / M input, $4.40 / M output (reasoning billed as output).
    u = Usage(1_000, 3_000, 4_000, reasoning_tokens=2_000, source="reported")
    c = cost_of("openai", "o4-mini", u)
    assert close(c.output, 3_000 * 4.40 / M)
    assert close(c.reasoning, 2_000 * 4.40 / M)
    assert close(c.total, 1_000 * 1.10 / M + 3_000 * 4.40 / M)  # reasoning not added twice


def test_gemini_flash() -> None:
    # Published (gemini-2.5-flash, text): $0.30 / M input, $2.50 / M output.
    c = cost_of("gemini", "gemini-2.5-flash", Usage(100_000, 10_000, 110_000, source="reported"))
    assert close(c.total, 0.03 + 0.025)


def test_unknown_model_has_no_cost_and_a_reason() -> None:
    c = cost_of("openai", "gpt-nonexistent-9", Usage(10, 10, 20, source="reported"))
    assert c.total is None and not c.known
    assert c.reason and "gpt-nonexistent-9" in c.reason
    c = cost_of("somecustom", "m", Usage(10, 10, 20, source="reported"))
    assert c.total is None and "somecustom" in (c.reason or "")
    c = cost_of("openai", "gpt-4o", Usage())
    assert c.total is None and "no usage" in (c.reason or "")


def test_estimated_usage_is_named_as_such() -> None:
    c = estimate_cost("openai/gpt-4o-mini", 1_000_000, 1_000_000)
    assert close(c.total, 0.15 + 0.60) and c.usage_source == "estimated"


async def test_mock_calls_cost_zero_with_a_reason() -> None:
    async with AsyncClient() as client:
        client.mock.script(MockReply("hi", usage=(100, 5)))
        r = await client.complete("mock/echo", "hello")
    assert r.cost.total == 0.0 and r.cost.reason and "mock" in r.cost.reason


@pytest.mark.parametrize("stream", [False, True])
async def test_calls_and_streams_carry_cost(stream: bool) -> None:
    async with FaultServer() as server:
        server.script(Fault.ok("four words of answer", usage=(1_000, 4)))
        async with AsyncClient(api_keys={"openai": "k"},
                               base_urls={"openai": server.url_for("openai")}) as client:
            if stream:
                async with client.stream("openai/gpt-4o-mini", "hi") as s:
                    r = await s.collect()
            else:
                r = await client.complete("openai/gpt-4o-mini", "hi")
    assert r.usage.source == "reported" and r.usage.input_tokens == 1_000
    assert close(r.cost.total, 1_000 * 0.15 / M + 4 * 0.60 / M)
    assert r.cost is r.cost  # computed once


def test_long_context_tier_applies_to_every_part() -> None:
    # Claude Sonnet 4.5 above 200k prompt tokens (published): $6 / M input, $22.50 / M
    # output, cache hits $0.60 / M, cache writes $7.50 / M.
    u = Usage(300_000, 1_000, 301_000, cached_input_tokens=100_000, cache_write_tokens=50_000,
              source="reported")
    c = cost_of("anthropic", "claude-sonnet-4-5", u)
    assert close(c.input, 150_000 * 6 / M)
    assert close(c.cached_input, 100_000 * 0.60 / M)
    assert close(c.cache_write, 50_000 * 7.50 / M)
    assert close(c.output, 1_000 * 22.50 / M)
    assert close(c.total, 0.9 + 0.06 + 0.375 + 0.0225)
