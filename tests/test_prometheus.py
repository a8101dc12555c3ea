"""Prometheus: the text exposition of client.metrics, scraped over HTTP on 127.0.0.1."""

from __future__ import annotations

import urllib.request

import pytest

pytest.importorskip("prometheus_client", reason="prometheus-client is not installed")

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from modelwire import AsyncClient
from modelwire.errors import ConfigurationError, RateLimitError
from modelwire.mock import MockReply
from modelwire.observe.prometheus import register, serve


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


async def test_scrape_over_http() -> None:
    registry = CollectorRegistry()
    async with AsyncClient(max_retries=0) as client:
        assert client.metrics is not None
        register(client.metrics, registry)
        client.mock.script(MockReply("a b", usage=(10, 2)), MockReply("c", usage=(5, 1)),
                           MockReply(status=429))
        await client.complete("mock/m", "hi")
        async with client.stream("mock/m", "hi") as s:
            await s.collect()
        with pytest.raises(RateLimitError):
            await client.complete("mock/m", "hi")
        server = serve(0, registry=registry)
        try:
            url = f"http://127.0.0.1:{server.server_port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
        finally:
            server.shutdown()
            server.server_close()
    got = samples(text)
    m = {("provider", "mock"), ("model", "m")}
    assert got[("modelwire_calls_total", frozenset(m))] == 3
    assert got[("modelwire_errors_total", frozenset(m | {("error_type", "RateLimitError")}))] == 1
    assert got[("modelwire_tokens_total", frozenset(m | {("direction", "input")}))] == 15
    assert got[("modelwire_tokens_total", frozenset(m | {("direction", "output")}))] == 3
    assert got[("modelwire_cost_usd_total", frozenset(m))] == 0.0
    assert got[("modelwire_latency_seconds_count", frozenset(m))] == 2
    assert got[("modelwire_latency_seconds", frozenset(m | {("quantile", "0.99")}))] > 0
    assert got[("modelwire_ttft_seconds_count", frozenset(m))] == 1
    assert "# TYPE modelwire_latency_seconds summary" in text


def test_register_needs_a_collector() -> None:
    with pytest.raises(ConfigurationError, match="metrics=False"):
        register(None, CollectorRegistry())  # type: ignore[arg-type]


def test_serve_on_a_taken_port_is_a_configuration_error() -> None:
    registry = CollectorRegistry()
    first = serve(0, registry=registry)
    assert first.server_address[0] == "127.0.0.1"  # loopback unless asked otherwise
    try:
        with pytest.raises(ConfigurationError, match="port="):  # was a raw OSError
            serve(first.server_port, registry=registry)
    finally:
        first.shutdown()
        first.server_close()


def test_registering_twice_is_refused_not_a_doubled_exposition() -> None:
    registry = CollectorRegistry()
    client = AsyncClient()
    assert client.metrics is not None
    register(client.metrics, registry)
    with pytest.raises(ConfigurationError, match="already registered"):  # was accepted:
        register(client.metrics, registry)  # every series twice, a failed scrape
    assert sum(1 for _ in registry.collect()) > 0
