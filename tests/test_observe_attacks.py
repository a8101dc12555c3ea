"""Regressions from attacking tokens, cost, metrics, budgets and OTel (issue 10).

Each test pins one thing that broke: a cache key that ignored images, a budget
counter charged twice, embeddings refused under any budget, a hostile usage
report that handed a budget back or crashed ``Response.cost``, metrics rows that
grew with every model name a caller invented, a cost of 0 with no usage.
"""

from __future__ import annotations

import pytest

from modelwire import AsyncClient
from modelwire.errors import BudgetExceededError
from modelwire.mock import MockReply
from modelwire.observe.budget import Budget
from modelwire.observe.metrics import OTHER, MetricsCollector
from modelwire.observe.tokens import cache, count_tokens
from modelwire.response import Response, Usage

pytest.importorskip("bpe_openai", reason="bpe-openai (the tokens extra) is not installed")
pytest.importorskip("genai_prices", reason="genai-prices (the cost extra) is not installed")

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


# --- token counts ------------------------------------------------------------------


def test_the_count_cache_tells_an_image_apart_from_no_image() -> None:
    cache.clear()
    text_only = [{"role": "user", "content": [{"type": "text", "text": "look"}]}]
    with_image = [{"role": "user", "content": [{"type": "text", "text": "look"}, IMAGE]}]
    plain = count_tokens("openai/gpt-4o", text_only)
    pictured = count_tokens("openai/gpt-4o", with_image)
    assert not pictured.cached  # was a hit on the text-only entry: image lost, "exact"
    assert pictured.provenance == "estimate" and pictured.tokens == plain.tokens + 765
    # and the other way round, from a cold cache
    cache.clear()
    assert count_tokens("openai/gpt-4o", with_image).provenance == "estimate"
    again = count_tokens("openai/gpt-4o", text_only)
    assert not again.cached and (again.tokens, again.provenance) == (plain.tokens, "exact")


def test_a_low_detail_image_is_85_tokens() -> None:
    low = {"type": "image_url", "image_url": {"url": IMAGE["image_url"]["url"],  # type: ignore[index]
                                              "detail": "low"}}
    base = count_tokens("openai/gpt-4o", [{"role": "user", "content": "look"}]).tokens
    n = count_tokens("openai/gpt-4o", [{"role": "user", "content": [
        {"type": "text", "text": "look"}, low, IMAGE]}])
    assert n.tokens == base + 85 + 765 and n.provenance == "estimate"  # was base + 2 * 765


@pytest.mark.parametrize("model", ["openai/gpt-4o", "anthropic/claude-sonnet-4-5"])
def test_a_lone_surrogate_is_a_typed_error_not_a_unicode_crash(model: str) -> None:
    from modelwire.errors import InvalidMessageError
    with pytest.raises(InvalidMessageError, match="lone surrogate"):  # was UnicodeEncodeError
        count_tokens(model, text="a\ud800b")
    with pytest.raises(InvalidMessageError, match="lone surrogate"):
        count_tokens(model, [{"role": "user", "content": "a\udfffb"}])


def test_nested_tool_schemas_are_counted_like_flat_ones() -> None:
    props = {f"field_{i}": {"type": "string", "description": f"The field number {i}"}
             for i in range(20)}

    def tool(parameters: dict[str, object]) -> dict[str, object]:
        return {"name": "save", "description": "Save it", "parameters": parameters}
    flat = tool({"type": "object", "properties": props})
    nested = tool({"type": "object", "properties": {
        "record": {"type": "object", "properties": props}}})
    listed = tool({"type": "object", "properties": {
        "records": {"type": "array", "items": {"type": "object", "properties": props}}}})
    base = count_tokens("openai/gpt-4o", "hi").tokens
    f, n, a = (count_tokens("openai/gpt-4o", "hi", tools=[t]).tokens - base
               for t in (flat, nested, listed))
    assert f > 200 and n >= f and a >= f  # nested was ~30 tokens: 20 fields unseen
    assert n - f < 20 and a - f < 20  # the one wrapping property, not a second copy


def test_an_unknown_provider_is_an_error_not_a_silent_estimate() -> None:
    from modelwire.errors import UnknownProviderError
    with pytest.raises(UnknownProviderError, match="opneai"):  # was a chars/4 estimate
        count_tokens("opneai/gpt-4o", text="hello")


def test_an_estimate_cached_for_one_provider_keeps_the_others_method() -> None:
    cache.clear()
    anthropic = count_tokens("anthropic/claude-sonnet-4-5", text="same words")
    groq = count_tokens("groq/llama-3.1-8b-instant", text="same words")
    assert "asks the provider" in anthropic.method
    assert "asks the provider" not in groq.method  # groq has no count endpoint


async def test_client_count_tokens_resolves_aliases_like_complete() -> None:
    async with AsyncClient(aliases={"fast": ["openai/gpt-4o-mini"]},
                           api_keys={"openai": "k"}, config=False) as client:
        c = await client.count_tokens("fast", "hello there")
    want = count_tokens("openai/gpt-4o-mini", "hello there", use_cache=False)
    assert c.model == "openai/gpt-4o-mini" and (c.tokens, c.provenance) == (want.tokens, "exact")


# --- cost from hostile usage ---------------------------------------------------------


@pytest.mark.parametrize(("usage", "why"), [
    (Usage(-1_000, 10, source="reported"), "input_tokens=-1000"),
    (Usage(1_000, -10, source="reported"), "output_tokens=-10"),
    (Usage(100, 10, cached_input_tokens=1_000, source="reported"), "exceed the 100 input"),
    (Usage(10_000, 1, cached_input_tokens=6_000, cache_write_tokens=8_000, source="reported"),
     "exceed the 10000 input"),
    (Usage(10**15, 1, source="reported"), "implausible"),  # was $2.5e9, charged as is
])
def test_cost_of_impossible_usage_is_unknown_with_a_reason(usage: Usage, why: str) -> None:
    c = Response(usage=usage, provider="anthropic", model="claude-sonnet-4-5").cost
    assert c.total is None and c.reason is not None and why in c.reason  # was a ValueError


def test_reasoning_above_output_leaves_the_reasoning_share_unknown() -> None:
    c = Response(usage=Usage(100, 10, 110, reasoning_tokens=1_000, source="reported"),
                 provider="openai", model="o3").cost
    assert c.total == pytest.approx(100 * 2 / 1e6 + 10 * 8 / 1e6)  # o3: $2 in, $8 out
    assert c.reasoning is None and c.reason is not None and "reasoning" in c.reason


# --- budgets -------------------------------------------------------------------------


async def test_an_implausible_usage_report_does_not_exhaust_the_budget() -> None:
    async with AsyncClient(budget=Budget(tokens=1_000, period=None)) as client:
        client.mock.script(MockReply("ok", usage=Usage(10**15, 5, source="reported")),
                           MockReply("ok", usage=(10, 5)))
        await client.complete("mock/m", "hi", max_tokens=5)
        await client.complete("mock/m", "hi", max_tokens=5)  # was BudgetExceededError
        assert (await client.budget_status())["client"]["tokens"] < 1_000
        assert client.metrics is not None
        row = client.metrics.snapshot(cost=False)["models"]["mock/m"]
        assert row["input_tokens"] == 10 and row["usage_unreported"] == 1
    from modelwire.observe import cost, metrics
    assert metrics.PLAUSIBLE_TOKENS == cost.PLAUSIBLE_TOKENS


async def test_a_negative_usage_report_does_not_hand_the_budget_back() -> None:
    async with AsyncClient(budget=Budget(tokens=1_000, period=None)) as client:
        client.mock.script(MockReply("ok", usage=Usage(-1_000_000, 5, -999_995,
                                                       source="reported")),
                           MockReply("ok", usage=(10, 5)))
        await client.complete("mock/m", "hi", max_tokens=5)
        spent = (await client.budget_status())["client"]["tokens"]
        assert spent > 0  # the estimate is kept, not replaced by -999995
        metrics = client.metrics
        assert metrics is not None
        row = metrics.snapshot(cost=False)["models"]["mock/m"]
        assert row["input_tokens"] == 0 and row["usage_unreported"] == 1


async def test_a_per_call_budget_sharing_the_client_counter_charges_once() -> None:
    async with AsyncClient(budget=Budget(tokens=10_000)) as client:
        client.mock.script(MockReply("ok", usage=(40, 5)),
                           MockReply("ok", usage=(40, 5)))
        await client.complete("mock/m", "hi", max_tokens=5, budget=Budget(tokens=500))
        assert (await client.budget_status()) == {"client": {"tokens": 45}}  # was 90
        # the tighter limit of the two still decides
        with pytest.raises(BudgetExceededError) as info:
            await client.complete("mock/m", "hi", max_tokens=5, budget=Budget(tokens=50))
        assert info.value.limit == 50
        assert (await client.budget_status()) == {"client": {"tokens": 45}}


async def test_budgets_of_one_name_and_two_periods_are_two_counters() -> None:
    budgets = [Budget(tokens=10_000, period="day"), Budget(tokens=10_000, period="hour")]
    async with AsyncClient(budget=budgets) as client:
        client.mock.script(MockReply("ok", usage=(40, 5)))
        await client.complete("mock/m", "hi", max_tokens=5)
        status = await client.budget_status()
    assert status == {"client/day": {"tokens": 45}, "client/hour": {"tokens": 45}}


async def test_embeddings_work_under_a_budget_and_are_charged() -> None:
    async with AsyncClient(budget=Budget(tokens=10_000)) as client:
        r = await client.embed("mock/m", ["hello", "world"])  # was InvalidMessageError
        assert len(r.vectors) == 2
        assert (await client.budget_status())["client"]["tokens"] == r.usage.input_tokens
        # no output is estimated for an embedding: a 3-token budget admits 2 inputs
        await client.embed("mock/m", "one", budget=Budget(tokens=3, name="tiny"))


async def test_a_call_alone_over_the_limit_says_what_to_lower() -> None:
    async with AsyncClient(budget=Budget(tokens=500)) as client:
        with pytest.raises(BudgetExceededError) as info:
            await client.complete("mock/m", "hi")  # output estimate: 1024 tokens
        assert client.mock.requests == []
    assert "max_tokens" in str(info.value) and "alone" in str(info.value)


# --- metrics -------------------------------------------------------------------------


def test_metrics_rows_are_bounded_whatever_model_names_callers_send() -> None:
    m = MetricsCollector(max_models=3)
    r = Response(usage=Usage(10, 5, 15, source="reported"))
    for i in range(10):
        s = m.stats(f"openai/user-model-{i}")
        s.calls += 1
        m.record_response(f"openai/user-model-{i}", r, 0.1)
    snap = m.snapshot()
    assert len(snap["models"]) == 4 and OTHER in snap["models"]
    assert snap["totals"]["calls"] == 10 and snap["totals"]["input_tokens"] == 100
    assert snap["over_max_models"] == 14  # every recording past the limit is counted
    assert snap["models"][OTHER]["cost_usd"] is None and snap["models"][OTHER]["cost_note"]
    m.reset()
    assert "over_max_models" not in m.snapshot()


def test_made_up_model_names_do_not_push_answering_models_out() -> None:
    from modelwire.errors import NotFoundError
    m = MetricsCollector(max_models=3)
    for i in range(5):  # a gateway's callers invent model names: each one a 404
        m.stats(f"openai/made-up-{i}").calls += 1
        m.record_error(f"openai/made-up-{i}", NotFoundError("no such model"))
    m.stats("openai/gpt-4o").calls += 1
    m.record_response("openai/gpt-4o", Response(usage=Usage(10, 5, 15, source="reported")),
                      0.1)
    snap = m.snapshot()
    assert "openai/gpt-4o" in snap["models"]  # was folded into (other) with the 404s
    assert snap["models"]["openai/gpt-4o"]["cost_usd"] is not None
    assert len(snap["models"]) <= 4 and snap["totals"]["errors"] == 5  # nothing lost
    assert snap["totals"]["calls"] == 6


def test_metrics_cost_without_any_reported_usage_is_unknown_not_zero() -> None:
    m = MetricsCollector()
    m.stats("openai/gpt-4o").calls += 1
    m.record_response("openai/gpt-4o", Response(usage=Usage()), 0.1)
    snap = m.snapshot()
    row = snap["models"]["openai/gpt-4o"]
    assert row["cost_usd"] is None and "no call reported usage" in row["cost_note"]
    assert snap["totals"]["cost_unpriced_models"] == ["openai/gpt-4o"]  # not a silent 0
    # some reported, some not: a figure, said to be a lower bound
    m.record_response("openai/gpt-4o", Response(usage=Usage(1_000, 0, 1_000,
                                                            source="reported")), 0.1)
    row = m.snapshot()["models"]["openai/gpt-4o"]
    assert row["cost_usd"] == pytest.approx(1_000 * 2.5 / 1e6)
    assert "lower bound" in row["cost_note"]
    # a free model stays 0 with its reason
    m.record_response("mock/m", Response(usage=Usage()), 0.1)
    assert m.snapshot()["models"]["mock/m"]["cost_usd"] == 0.0


async def test_a_paid_fallback_of_a_free_model_is_held_to_the_budget() -> None:
    from modelwire.testing.fault_server import Fault, FaultServer
    async with FaultServer() as server:
        server.script(Fault.ok("paid", usage=(1_000, 100)))
        async with AsyncClient(api_keys={"openai": "k"},
                               base_urls={"openai": server.url_for("openai")},
                               max_retries=0, budget=Budget(usd=0.001, period=None)) as client:
            await client.complete("openai/gpt-4o", "hi", max_tokens=10)  # $0.0035: spent
            sent = len(server.requests)
            client.mock.script(MockReply("free"))
            r = await client.complete("mock/m", "hi", max_tokens=10,
                                      fallbacks=["openai/gpt-4o"])
            assert r.text == "free"  # a free model still serves past the USD limit
            client.mock.script(MockReply(status=500))
            with pytest.raises(BudgetExceededError):  # was: sent to gpt-4o, past the limit
                await client.complete("mock/m", "hi", max_tokens=10,
                                      fallbacks=["openai/gpt-4o"])
            assert len(server.requests) == sent


async def test_concurrent_calls_never_pass_a_limit_on_their_estimates() -> None:
    import asyncio
    async with AsyncClient(budget=Budget(tokens=1_000, period=None)) as client:
        client.mock.script(*[MockReply("ok", usage=(40, 60)) for _ in range(50)])

        async def one() -> bool:
            try:
                await client.complete("mock/m", "hi", max_tokens=60)
            except BudgetExceededError:
                return False
            return True
        served = sum(await asyncio.gather(*(one() for _ in range(50))))
        spent = (await client.budget_status())["client"]["tokens"]
        assert 0 < served < 50 and len(client.mock.requests) == served  # refused: unsent
        # each reserved >= its actual 100 tokens, so the settled total stays in the limit
        assert spent == 100 * served <= 1_000


def test_a_snapshot_stays_json_whatever_was_recorded() -> None:
    import json
    import math

    from modelwire.observe.metrics import Histogram
    h = Histogram()
    for v in (math.inf, -1.0, math.nan, 0.0, 0.0):
        h.add(v)
    assert h.summary() == {"count": 2, "mean": 0.0, "min": 0.0, "max": 0.0,
                           "p50": 0.0, "p95": 0.0, "p99": 0.0}  # inf made the mean inf
    m = MetricsCollector()
    m.stats("a/b").calls += 1
    m.record_response("a/b", Response(usage=Usage(1, 1, 2, source="reported")), math.inf)
    json.loads(json.dumps(m.snapshot(cost=False), allow_nan=False))


async def test_a_budgeted_local_call_with_tools_is_estimated_not_refused_as_unsupported() -> None:
    tools = [{"name": "f", "description": "d", "parameters": {"type": "object",
                                                              "properties": {}}}]
    async with AsyncClient() as client:
        # the local tokenizer cannot count tools, so the reservation is the chars/4
        # estimate (was UnsupportedFeatureError before any budget arithmetic)
        with pytest.raises(BudgetExceededError):
            await client.complete("local/smollm2-135m-instruct", "hi", tools=tools,
                                  max_tokens=50, budget=Budget(tokens=10))


def test_counting_a_large_text_does_not_copy_it_into_a_json_document() -> None:
    import tracemalloc
    text = "ab 🌍 汉 " * 200_000  # ~1.4M chars, stored 4 bytes each (the emoji)
    utf8 = len(text.encode())
    cache.clear()
    tracemalloc.start()
    try:
        n = count_tokens("openai/gpt-4o", text=text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n.tokens > 0 and not n.cached
    # its bytes for the hash + the UTF-8 copy the tokenizer binding reads: ~2.3x;
    # was ~4.7x (a JSON copy of the text first, then that copy's bytes)
    assert peak < 3 * utf8


def test_a_sync_stream_left_by_break_is_counted_as_abandoned() -> None:
    import gc

    from modelwire import Client
    with Client() as client:
        client.mock.script(MockReply("a b c d e f"), MockReply("x y"))
        for _ in client.stream("mock/m", "hi"):
            break  # the Stream is dropped unclosed
        gc.collect()
        assert client.metrics is not None
        row = client.metrics.snapshot(cost=False)["models"]["mock/m"]
        assert (row["calls"], row["streams_abandoned"]) == (1, 1)  # was: no row at all
        held = client.stream("mock/m", "hi")
        for _ in held:
            break
        for _ in held:  # a Stream still held is not closed: it reads on where it stopped
            pass
        assert held.response.text == "x y"


def test_snapshots_while_threads_call_never_fail_and_nothing_is_lost() -> None:
    import threading

    from modelwire import Client
    collector = MetricsCollector()
    clients = [Client(metrics=collector) for _ in range(3)]
    stop = threading.Event()
    problems: list[Exception] = []

    def call(client: Client) -> None:
        for _ in range(200):
            client.complete("mock/m", "hi")

    def snap() -> None:  # never raises mid-recording; not an atomic cut (see metrics)
        import json
        while not stop.is_set():
            try:
                json.dumps(collector.snapshot(cost=False), allow_nan=False)
            except Exception as e:  # any failure is the finding
                problems.append(e)
    workers = [threading.Thread(target=call, args=(c,)) for c in clients]
    watcher = threading.Thread(target=snap)
    watcher.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    watcher.join()
    for c in clients:
        c.close()
    row = collector.snapshot(cost=False)["models"]["mock/m"]
    assert problems == [] and row["calls"] == row["successes"] == 600
    assert row["latency"]["count"] == 600


async def test_a_usd_budget_on_an_azure_deployment_says_why_it_cannot_price_it() -> None:
    from modelwire.errors import ConfigurationError
    async with AsyncClient(api_keys={"azure": "k"},
                           base_urls={"azure": "https://example.openai.azure.com"},
                           budget=Budget(usd=1.0)) as client:
        with pytest.raises(ConfigurationError, match="deployment name") as info:
            await client.complete("azure/prod-chat", "hi", max_tokens=5)
    assert "token budget" in str(info.value)
