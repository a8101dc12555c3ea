"""Missing extras fail with MissingDependencyError naming the pip command; otel=True works
with the API's global (no-op) providers."""

from __future__ import annotations

import sys

import pytest

from modelwire import AsyncClient
from modelwire.errors import MissingDependencyError
from modelwire.response import Usage


def test_missing_tokenizer_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelwire.observe import tokens
    tokens.openai_tokenizer.cache_clear()
    monkeypatch.setitem(sys.modules, "bpe_openai", None)
    try:
        with pytest.raises(MissingDependencyError, match="bpe-openai"):
            tokens.count_tokens("openai/gpt-4o", text="hi", use_cache=False)
    finally:
        tokens.openai_tokenizer.cache_clear()


def test_missing_price_table_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelwire.observe.cost import cost_of
    monkeypatch.setitem(sys.modules, "genai_prices", None)
    with pytest.raises(MissingDependencyError, match="genai-prices"):
        cost_of("openai", "gpt-4o", Usage(1, 1, 2, source="reported"))


def test_missing_otel_and_prometheus_name_their_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(MissingDependencyError, match="opentelemetry-api"):
        AsyncClient(otel=True)
    from modelwire.observe.metrics import MetricsCollector
    from modelwire.observe.prometheus import register
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(MissingDependencyError, match="prometheus-client"):
        register(MetricsCollector())


async def test_otel_true_uses_the_global_providers() -> None:
    pytest.importorskip("opentelemetry", reason="opentelemetry-api is not installed")
    async with AsyncClient(otel=True) as client:
        r = await client.complete("mock/echo", "hi")
    assert r.text == "hi"
