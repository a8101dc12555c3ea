"""Structured output: response_format on every wire, parsed values, repair, partial objects."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from aiohttp import web
from pydantic import BaseModel
from typing_extensions import TypedDict

from modelwire import AsyncClient, Client, StructuredOutputError
from modelwire.errors import ConfigurationError, UnsupportedFeatureError
from modelwire.mock import MockReply
from modelwire.pipeline import Call, Target
from modelwire.registry import get_codec, get_spec
from modelwire.structured import output_spec
from modelwire.testing import Fault, FaultServer
from modelwire.transports.base import WireRequest
from modelwire.transports.local_request import parse as parse_local
from modelwire.types import Tool, to_messages


class City(BaseModel):
    name: str
    population: int
    country: str = "FR"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Pair(TypedDict):
    left: str
    right: str


PARIS = '{"name": "Paris", "population": 2100000}'


def encode(provider: str, fmt: Any, **options: Any) -> dict[str, Any]:
    spec = get_spec(provider)
    call = Call(messages=to_messages("hi"), target=Target(spec, "m", "http://127.0.0.1:1", "k",
                                                          options),
                response_format=output_spec(fmt))
    return json.loads(get_codec(spec).encode(call).body)  # type: ignore[no-any-return]


# --- request fields per wire ------------------------------------------------------


def test_openai_gets_strict_json_schema() -> None:
    rf = encode("openai", City)["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    schema = rf["json_schema"]["schema"]
    assert rf["json_schema"]["name"] == "City"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name", "population", "country"]


def test_llamacpp_server_and_local_model_get_grammar_constrained_json() -> None:
    rf = encode("llamacpp", City)["response_format"]
    assert rf == {"type": "json_object", "schema": output_spec(City).schema}
    body = encode("local", City)
    req = WireRequest("POST", "local://chat/completions", {}, json.dumps(body).encode())
    kwargs = parse_local(req).kwargs
    assert kwargs["response_format"]["type"] == "json_object"
    assert kwargs["response_format"]["schema"]["required"] == ["name", "population", "country"]


def test_responses_gets_text_format() -> None:
    fmt = encode("openai-responses", Point)["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["strict"] is True and fmt["name"] == "Point"


def test_anthropic_gets_a_forced_tool_and_refuses_other_tools() -> None:
    body = encode("anthropic", City)
    assert body["tool_choice"] == {"type": "tool", "name": "City"}
    assert body["tools"][0]["name"] == "City"
    assert body["tools"][0]["input_schema"]["required"] == ["name", "population"]
    spec = get_spec("anthropic")
    call = Call(messages=to_messages("hi"), target=Target(spec, "m", "http://x", "k"),
                tools=[Tool("other")], response_format=output_spec(City))
    with pytest.raises(UnsupportedFeatureError, match="cannot be combined with tools"):
        get_codec(spec).encode(call)


def test_gemini_gets_response_schema_or_json_schema() -> None:
    gen = encode("gemini", City)["generationConfig"]
    assert gen["responseMimeType"] == "application/json"
    assert gen["responseSchema"]["type"] == "OBJECT"
    gen = encode("gemini", City, tool_schema="json")["generationConfig"]
    assert gen["responseJsonSchema"]["required"] == ["name", "population"]


def test_response_format_kinds_and_mistakes() -> None:
    assert output_spec(Pair).schema["required"] == ["left", "right"]
    wrapped = output_spec(list[Point])
    assert wrapped.wrapped and wrapped.schema["properties"]["value"]["type"] == "array"
    assert wrapped.parse('{"value": [{"x": 1, "y": 2}]}') == [Point(1, 2)]
    plain = output_spec({"title": "my thing!", "type": "object",
                         "properties": {"a": {"type": "integer"}}, "required": ["a"]})
    assert plain.name == "my_thing_" and plain.parse('{"a": 1}') == {"a": 1}
    with pytest.raises(StructuredOutputError, match="a: Field required"):
        plain.parse("{}")
    with pytest.raises(ConfigurationError, match="object root"):
        output_spec({"type": "array"})
    with pytest.raises(ConfigurationError, match="response_format must be"):
        output_spec(42)


async def test_text_completion_refuses_response_format() -> None:
    c = AsyncClient(middleware=[])
    with pytest.raises(UnsupportedFeatureError, match="needs a chat call"):
        await c.complete_text("mock/m", "x", response_format=City)
    assert c.mock.requests == []


# --- the answer: parsed, errors, repair ---------------------------------------------


async def test_parsed_value_from_the_mock() -> None:
    c = AsyncClient(middleware=[])
    c.mock.script(MockReply(PARIS))
    r = await c.complete("mock/m", "biggest city?", response_format=City)
    assert r.parsed == City(name="Paris", population=2100000)
    assert c.mock.requests[0]["response_format"]["type"] == "json_schema"


async def test_strict_null_for_a_defaulted_field_means_the_default() -> None:
    c = AsyncClient(middleware=[])
    c.mock.script(MockReply('{"name": "Nice", "population": 1, "country": null}'))
    r = await c.complete("mock/m", "x", response_format=City)
    assert r.parsed.country == "FR"


async def test_invalid_output_raises_with_raw_text_and_errors() -> None:
    c = AsyncClient(middleware=[])
    c.mock.script(MockReply('{"name": "Paris", "population": "many"}'))
    with pytest.raises(StructuredOutputError) as e:
        await c.complete("mock/m", "x", response_format=City)
    assert e.value.raw_text == '{"name": "Paris", "population": "many"}'
    assert e.value.errors[0].startswith("population: Input should be a valid integer")
    assert e.value.response is not None and e.value.response.text == e.value.raw_text
    c.mock.script(MockReply("Paris, about two million"))
    with pytest.raises(StructuredOutputError, match="not valid JSON"):
        await c.complete("mock/m", "x", response_format=City)


async def test_retries_let_the_model_repair_its_answer() -> None:
    c = AsyncClient(middleware=[])
    c.mock.script(MockReply('{"name": "Paris"}'), MockReply("```json\n" + PARIS + "\n```"))
    r = await c.complete("mock/m", "x", response_format=City, retries=1)
    assert r.parsed.population == 2100000
    repair = c.mock.requests[1]["messages"]
    assert repair[1] == {"role": "assistant", "content": '{"name": "Paris"}'}
    assert "population: Field required" in repair[2]["content"]
    c.mock.script(MockReply("{}"), MockReply("{}"))
    with pytest.raises(StructuredOutputError):
        await c.complete("mock/m", "x", response_format=City, retries=1)
    assert c.mock.pending == 0
    with pytest.raises(ConfigurationError, match="retries"):
        await c.complete("mock/m", "x", retries=2)


async def test_stream_shows_the_partial_object_then_the_parsed_value() -> None:
    c = AsyncClient(middleware=[])
    c.mock.script(MockReply('{"name": "Lyon", "population": 500000}', text_chunks=6))
    seen: list[Any] = []
    async with c.stream("mock/m", "x", response_format=City) as s:
        async for _ in s:
            seen.append(s.partial_object)
    assert {"name": "Lyon"} in seen  # a partial object before the end
    assert seen[-1] == {"name": "Lyon", "population": 500000}
    assert s.response.parsed == City(name="Lyon", population=500000)


async def test_a_stream_whose_answer_does_not_validate_raises_at_its_end() -> None:
    c = AsyncClient(middleware=[])
    c.mock.script(MockReply('{"name": 1}'))
    with pytest.raises(StructuredOutputError):
        async with c.stream("mock/m", "x", response_format=City) as s:
            async for _ in s:
                pass


def test_sync_client_structured() -> None:
    with Client(middleware=[]) as c:
        c.mock.script(MockReply('{"x": 1, "y": 2}'))
        assert c.complete("mock/m", "x", response_format=Point).parsed == Point(1, 2)


# --- the other wires, end to end ---------------------------------------------------


async def test_anthropic_forced_tool_answer_becomes_text_and_parsed() -> None:
    async with FaultServer() as server:
        c = AsyncClient(middleware=[], base_urls={"anthropic": server.url_for("anthropic")},
                        api_keys={"anthropic": "k"})
        server.script(Fault.ok("", tool_calls=[("City", PARIS)]),
                      Fault.ok("", tool_calls=[("City", PARIS)]))
        r = await c.complete("anthropic/claude-x", "x", response_format=City)
        assert r.parsed == City(name="Paris", population=2100000)
        assert json.loads(r.text) == json.loads(PARIS) and r.tool_calls == []
        assert r.finish_reason == "stop"
        assert server.requests[0].json["tool_choice"] == {"type": "tool", "name": "City"}
        async with c.stream("anthropic/claude-x", "x", response_format=City) as s:
            partials = [s.partial_object async for _ in s]
        assert s.response.parsed.name == "Paris" and partials[-1]["population"] == 2100000
        await c.aclose()


async def test_gemini_json_answer_parsed() -> None:
    async with FaultServer() as server:
        c = AsyncClient(middleware=[], base_urls={"gemini": server.url_for("gemini")},
                        api_keys={"gemini": "k"})
        server.script(Fault.ok(PARIS))
        r = await c.complete("gemini/g", "x", response_format=City)
        assert r.parsed.name == "Paris"
        gen = server.requests[0].json["generationConfig"]
        assert gen["responseMimeType"] == "application/json"
        await c.aclose()


async def test_responses_json_answer_parsed() -> None:
    bodies: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.json_response({"id": "r", "status": "completed", "output": [
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": PARIS}]}]})

    app = web.Application()
    app.router.add_post("/v1/responses", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    c = AsyncClient(middleware=[], base_urls={"openai-responses": f"http://127.0.0.1:{port}/v1"},
                    api_keys={"openai-responses": "k"})
    try:
        r = await c.complete("openai-responses/gpt-x", "x", response_format=City)
    finally:
        await c.aclose()
        await runner.cleanup()
    assert r.parsed.population == 2100000
    assert bodies[0]["text"]["format"]["name"] == "City"


@pytest.mark.llama
async def test_local_model_answers_grammar_constrained_json() -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    c = AsyncClient(middleware=[])
    try:
        r = await c.complete("local/smollm2-135m-instruct",
                             "Give a point with x=1 and y=2 as JSON.", response_format=Point,
                             temperature=0, seed=7, max_tokens=40)
    finally:
        await c.aclose()
    assert isinstance(r.parsed, Point)  # the grammar only allows {"x": int, "y": int}
