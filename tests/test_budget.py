"""Budgets: refusal before any traffic, charging reported cost after, per tag, per call, periods."""

from __future__ import annotations

import pytest

from modelwire import AsyncClient
from modelwire.errors import BudgetExceededError, ConfigurationError, ServerError
from modelwire.mock import MockReply
from modelwire.observe.budget import Budget
from modelwire.state.memory import MemoryStore
from modelwire.testing.fault_server import Fault, FaultServer

pytest.importorskip("genai_prices", reason="genai-prices (the cost extra) is not installed")

M = 1_000_000


async def test_token_budget_refuses_with_zero_requests() -> None:
    async with AsyncClient(budget=Budget(tokens=100, period="day")) as client:
        client.mock.script(MockReply("ok", usage=(30, 10)))
        await client.complete("mock/m", "hi", max_tokens=10)
        assert client.budgets is not None
        assert (await client.budgets.status())["client"]["tokens"] == 40  # reported, not estimate
        sent = len(client.mock.requests)
        with pytest.raises(BudgetExceededError) as info:
            await client.complete("mock/m", "x " * 200, max_tokens=10)
        assert len(client.mock.requests) == sent  # nothing went out
        assert (await client.budgets.status())["client"]["tokens"] == 40  # refused: not held
    e = info.value
    assert isinstance(e, ConfigurationError) and e.unit == "tokens" and e.limit == 100
    assert e.spent == 40 and e.retry_after is not None and 0 < e.retry_after <= 86400
    assert "budget 'client'" in str(e)


async def test_usd_budget_charges_reported_cost_then_refuses() -> None:
    async with FaultServer() as server:
        server.script(Fault.ok("answer", usage=(1_000, 100)))
        async with AsyncClient(api_keys={"openai": "k"},
                               base_urls={"openai": server.url_for("openai")},
                               budget=Budget(usd=0.0005, period="hour")) as client:
            r = await client.complete("openai/gpt-4o-mini", "hi", max_tokens=200)
            want = 1_000 * 0.15 / M + 100 * 0.60 / M
            assert r.cost.total == pytest.approx(want)
            assert client.budgets is not None
            spent = (await client.budgets.status())["client"]["usd"]
            assert spent == pytest.approx(want)
            before = len(server.requests)
            with pytest.raises(BudgetExceededError) as info:
                # 0.000210 spent + (~3k input + 1k output tokens) estimate > 0.0005
                await client.complete("openai/gpt-4o-mini", "word " * 3000, max_tokens=1000)
            assert len(server.requests) == before
    assert info.value.unit == "usd" and info.value.spent == pytest.approx(want)


async def test_streams_are_charged_when_they_finish() -> None:
    async with AsyncClient(budget=Budget(tokens=1_000, period=None)) as client:
        client.mock.script(MockReply("one two", usage=(7, 2)))
        async with client.stream("mock/m", "hi", max_tokens=50) as s:
            assert client.budgets is not None
            held = (await client.budgets.status())["client"]["tokens"]
            assert held > 50  # the estimate is reserved while the stream runs
            await s.collect()
        assert (await client.budgets.status())["client"]["tokens"] == 9


async def test_failed_calls_are_refunded() -> None:
    async with AsyncClient(budget=Budget(tokens=1_000), max_retries=0) as client:
        client.mock.script(MockReply(status=500))
        with pytest.raises(ServerError):
            await client.complete("mock/m", "hi", max_tokens=10)
        assert client.budgets is not None
        assert (await client.budgets.status())["client"]["tokens"] == 0


async def test_tag_and_per_call_budgets() -> None:
    budgets = [Budget(tokens=10_000), Budget(tokens=50, tag="batch")]
    async with AsyncClient(budget=budgets) as client:
        client.mock.script(*[MockReply("ok", usage=(40, 5)) for _ in range(3)])
        await client.complete("mock/m", "hi", max_tokens=5)  # untagged: batch not touched
        await client.complete("mock/m", "hi", max_tokens=5, tags=["batch"])
        with pytest.raises(BudgetExceededError, match="'tag:batch'"):
            await client.complete("mock/m", "hi", max_tokens=5, tags=["batch"])
        with pytest.raises(BudgetExceededError, match="'once'"):
            await client.complete("mock/m", "hi", max_tokens=500,
                                  budget=Budget(tokens=100, period=None, name="once"))
        assert client.budgets is not None
        status = await client.budgets.status()
    assert status == {"client": {"tokens": 90}, "tag:batch": {"tokens": 45}}


async def test_per_call_budget_without_a_client_budget() -> None:
    async with AsyncClient() as client:
        with pytest.raises(BudgetExceededError):
            await client.complete("mock/m", "hello " * 100, budget=Budget(tokens=10))
        assert client.mock.requests == []


async def test_period_windows_reset() -> None:
    now = [1_000_000.0]
    async with AsyncClient(budget=Budget(tokens=50, period="minute")) as client:
        assert client.budgets is not None
        client.budgets.clock = lambda: now[0]
        client.mock.script(*[MockReply("ok", usage=(40, 5)) for _ in range(2)])
        await client.complete("mock/m", "hi", max_tokens=5)
        with pytest.raises(BudgetExceededError) as info:
            await client.complete("mock/m", "hi", max_tokens=5)
        now[0] += info.value.retry_after or 0
        await client.complete("mock/m", "hi", max_tokens=5)


async def test_a_shared_store_shares_the_budget() -> None:
    store = MemoryStore()
    a = AsyncClient(state=store, budget=Budget(tokens=100))
    b = AsyncClient(state=store, budget=Budget(tokens=100))
    a.mock.script(MockReply("ok", usage=(60, 10)))
    await a.complete("mock/m", "hi", max_tokens=10)
    with pytest.raises(BudgetExceededError):
        await b.complete("mock/m", "hi", max_tokens=40)
    assert b.mock.requests == []
    await a.aclose()
    await b.aclose()


async def test_usd_budget_on_an_unpriced_model_is_a_configuration_error() -> None:
    async with AsyncClient(api_keys={"openai": "k"}, budget=Budget(usd=1.0)) as client:
        with pytest.raises(ConfigurationError, match="cannot be priced"):
            await client.complete("openai/my-finetune-xyz", "hi")


def test_budget_arguments_are_validated() -> None:
    for bad in ({}, {"usd": -1}, {"tokens": 0}, {"usd": 1, "period": "fortnight"},
                {"usd": 1, "period": -5}, {"usd": True}):
        with pytest.raises(ConfigurationError):
            Budget(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        AsyncClient(budget={"usd": 1})


async def test_per_call_budget_without_the_middleware_is_refused() -> None:
    async with AsyncClient(middleware=[]) as client:
        with pytest.raises(ConfigurationError, match="budget middleware"):
            await client.complete("mock/m", "hi", budget=Budget(tokens=10))
        assert client.mock.requests == []


def test_sync_client_budget_status() -> None:
    from modelwire import Client
    with Client(budget=Budget(tokens=1_000, name="team")) as client:
        client.mock.script(MockReply("ok", usage=(3, 2)))
        client.complete("mock/m", "hi", max_tokens=5)
        assert client.budget_status() == {"team": {"tokens": 5}}
    with Client() as client:
        assert client.budget_status() == {}
