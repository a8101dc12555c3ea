"""OpenTelemetry: GenAI-convention spans and metrics, checked with the SDK's in-memory exporters."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is not installed")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from modelwire import AsyncClient
from modelwire.errors import ServerError
from modelwire.middleware import RetryPolicy
from modelwire.mock import MockReply
from modelwire.observe.otel import OpenTelemetry

FAST = RetryPolicy(initial=0.0, max_wait=0.0, jitter=0.0)


def setup(record_content: bool = False) -> tuple[OpenTelemetry, InMemorySpanExporter,
                                                 InMemoryMetricReader]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    return (OpenTelemetry(tracer_provider=tp, meter_provider=mp,
                          record_content=record_content), exporter, reader)


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


async def test_a_call_is_one_client_span_with_genai_attributes() -> None:
    otel, exporter, reader = setup()
    async with AsyncClient(otel=otel) as client:
        client.mock.script(MockReply("secret answer", usage=(11, 2)))
        await client.complete("mock/m1", "secret prompt", temperature=0.2, max_tokens=50)
    (span,) = exporter.get_finished_spans()
    a = span.attributes
    assert span.name == "chat m1" and span.kind is SpanKind.CLIENT
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "mock"
    assert a["gen_ai.request.model"] == "m1" and a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.usage.input_tokens"] == 11 and a["gen_ai.usage.output_tokens"] == 2
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    # content is not recorded unless asked
    assert not any("secret" in str(v) for v in a.values())
    points = metric_points(reader)
    assert points["gen_ai.client.operation.duration"][0].count == 1
    tokens = {p.attributes["gen_ai.token.type"]: p.sum
              for p in points["gen_ai.client.token.usage"]}
    assert tokens == {"input": 11, "output": 2}


async def test_content_is_recorded_only_on_opt_in() -> None:
    otel, exporter, _ = setup(record_content=True)
    async with AsyncClient(otel=otel) as client:
        client.mock.script(MockReply("the answer"))
        await client.complete("mock/m1", "the prompt")
    a = exporter.get_finished_spans()[0].attributes
    assert json.loads(a["gen_ai.input.messages"])[0]["parts"][0]["content"] == "the prompt"
    assert json.loads(a["gen_ai.output.messages"])[0]["parts"][0]["content"] == "the answer"


async def test_retries_and_fallbacks_are_span_events_and_errors_set_status() -> None:
    otel, exporter, reader = setup()
    async with AsyncClient(otel=otel, max_retries=1, retry=FAST,
                           fallbacks=["mock/backup"]) as client:
        client.mock.script(MockReply(status=500), MockReply(status=500), MockReply("ok"))
        await client.complete("mock/main", "hi")
        client.mock.script(MockReply(status=500), MockReply(status=500))
        with pytest.raises(ServerError):
            await client.complete("mock/main", "hi", fallbacks=[])
    ok, failed = exporter.get_finished_spans()
    names = [e.name for e in ok.events]
    assert names == ["modelwire.retry", "modelwire.fallback"]
    assert ok.events[1].attributes["modelwire.to"] == "mock/backup"
    assert ok.attributes["modelwire.served_by"] == "mock/backup"
    assert ok.status.status_code is not StatusCode.ERROR
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "ServerError"
    durations = metric_points(reader)["gen_ai.client.operation.duration"]
    assert {p.attributes.get("error.type") for p in durations} == {None, "ServerError"}


async def test_a_stream_span_ends_with_its_final_event() -> None:
    otel, exporter, _ = setup()
    async with AsyncClient(otel=otel) as client:
        client.mock.script(MockReply("one two three", usage=(4, 3)))
        async with client.stream("mock/s", "hi") as s:
            assert exporter.get_finished_spans() == ()
            await s.collect()
    (span,) = exporter.get_finished_spans()
    assert span.attributes["gen_ai.usage.output_tokens"] == 3
    assert span.attributes["modelwire.time_to_first_token_s"] >= 0


def test_bad_otel_option_is_a_configuration_error() -> None:
    from modelwire.errors import ConfigurationError
    with pytest.raises(ConfigurationError):
        AsyncClient(otel="yes")


async def test_a_stream_closed_early_ends_its_span() -> None:
    otel, exporter, _ = setup()
    async with AsyncClient(otel=otel) as client:
        client.mock.script(MockReply("a b c d e f g h"))
        async with client.stream("mock/s", "hi") as s:
            async for _ in s:
                break
    (span,) = exporter.get_finished_spans()
    assert [e.name for e in span.events] == ["modelwire.stream_abandoned"]


async def test_provider_names_follow_the_conventions() -> None:
    from modelwire.testing.fault_server import Fault, FaultServer
    otel, exporter, _ = setup()
    async with FaultServer() as server:
        server.script(Fault.ok("hi"))
        async with AsyncClient(otel=otel, api_keys={"gemini": "k"},
                               base_urls={"gemini": server.url_for("gemini")}) as client:
            await client.complete("gemini/gemini-2.5-flash", "hi")
    (span,) = exporter.get_finished_spans()
    assert span.attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert span.attributes["server.address"] == "127.0.0.1"
    assert "modelwire.served_by" not in span.attributes


async def test_embeddings_are_an_embeddings_operation_with_input_tokens_only() -> None:
    otel, exporter, reader = setup()
    async with AsyncClient(otel=otel) as client:
        await client.embed("mock/emb", ["hello", "world"])
    (span,) = exporter.get_finished_spans()
    assert span.name == "embeddings emb"  # was "chat emb"
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert "gen_ai.usage.input_tokens" in span.attributes
    assert "gen_ai.usage.output_tokens" not in span.attributes
    assert "gen_ai.response.finish_reasons" not in span.attributes
    kinds = {p.attributes["gen_ai.token.type"]
             for p in metric_points(reader)["gen_ai.client.token.usage"]}
    assert kinds == {"input"}
