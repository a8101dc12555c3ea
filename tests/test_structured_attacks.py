"""Regression tests from attacking structured output as a hostile model / careless caller."""

from __future__ import annotations

import dataclasses

import pydantic

from modelwire import AsyncClient
from modelwire.mock import MockReply
from modelwire.structured import output_spec
from modelwire.tools.jsonschema import strict_schema, walk


class Person(pydantic.BaseModel):
    name: str
    age: int


@dataclasses.dataclass
class Pt:
    x: int
    y: int = 3


def client() -> AsyncClient:
    return AsyncClient(middleware=[])


def add(a: int) -> int:
    return a + 1


async def test_a_tool_call_turn_is_not_parsed_as_the_answer() -> None:
    c = client()
    c.mock.script(MockReply(tool_calls=[("add", {"a": 1})]))
    r = await c.complete("mock/m", "q", tools=[add], response_format=Person)
    assert r.parsed is None and r.tool_calls[0].name == "add"


async def test_run_tools_with_response_format_parses_the_final_answer() -> None:
    c = client()
    c.mock.script(MockReply(tool_calls=[("add", {"a": 1})]), MockReply('{"name":"x","age":2}'))
    result = await c.run_tools("mock/m", "q", tools=[add], response_format=Person)
    assert result.response.parsed == Person(name="x", age=2)
    assert [s.kind for s in result.steps] == ["model", "tool", "model"]
    c.mock.script(MockReply(tool_calls=[("add", {"a": 1})]), MockReply('{"name":"y","age":3}'))
    ts = c.stream_tools("mock/m", "q", tools=[add], response_format=Person)
    async for _ in ts:
        pass
    assert ts.result.response.parsed == Person(name="y", age=3)


async def test_a_fenced_answer_after_prose_parses() -> None:
    c = client()
    c.mock.script(MockReply('Here you go:\n```json\n{"name": "Bob", "age": 4}\n```\nBye'))
    r = await c.complete("mock/m", "q", response_format=Person)
    assert r.parsed == Person(name="Bob", age=4)


async def test_a_bare_value_for_a_wrapped_root_is_accepted() -> None:
    c = client()
    c.mock.script(MockReply('[{"x": 1}]'))  # the model ignored the {"value": ...} wrapper
    r = await c.complete("mock/m", "q", response_format=list[Pt])
    assert r.parsed == [Pt(1)]


def test_strict_schemas_have_no_keywords_beside_ref() -> None:
    class Hero(pydantic.BaseModel):
        title: str
        friend: Hero | None = pydantic.Field(None, description="a friend")

    class Story(pydantic.BaseModel):
        hero: Hero = pydantic.Field(description="The hero")

    schema = output_spec(Story).openai("openai")["json_schema"]["schema"]
    bad: list[dict[str, object]] = []

    def check(node: dict[str, object]) -> dict[str, object]:
        if "$ref" in node and len(node) > 1:
            bad.append(node)
        return node

    walk(schema, check)
    assert bad == []
    assert schema["properties"]["hero"]["description"] == "The hero"
    assert schema["properties"]["hero"]["required"] == ["title", "friend"]
    assert strict_schema(schema) == schema  # still idempotent


def test_a_dict_field_is_never_closed_to_empty_by_strict_mode() -> None:
    class Tagged(pydantic.BaseModel):
        tags: dict[str, int]

    fmt = output_spec(Tagged).openai("openai")["json_schema"]
    assert fmt["strict"] is False  # strict mode would only allow {} for tags
    assert fmt["schema"]["properties"]["tags"]["additionalProperties"] == {"type": "integer"}
    assert output_spec(Tagged).responses()["format"]["strict"] is False
    assert output_spec(Person).openai("openai")["json_schema"]["strict"] is True


async def test_a_strict_tool_with_a_dict_parameter_is_refused() -> None:
    from modelwire import Tool
    from modelwire.errors import UnsupportedFeatureError

    def count(words: dict[str, int]) -> int:
        return sum(words.values())

    import pytest
    with pytest.raises(UnsupportedFeatureError, match="free keys"):
        Tool.from_function(count, strict=True)
    assert Tool.from_function(count).parameters["properties"]["words"][
        "additionalProperties"] == {"type": "integer"}


async def test_a_dict_field_round_trips_on_the_openai_wire() -> None:
    class Tagged(pydantic.BaseModel):
        tags: dict[str, int]

    c = client()
    c.mock.script(MockReply('{"tags": {"a": 1}}'))
    r = await c.complete("mock/m", "q", response_format=Tagged)
    assert r.parsed == Tagged(tags={"a": 1})
    assert c.mock.requests[-1]["response_format"]["json_schema"]["strict"] is False


async def test_retries_on_a_stream_says_why_not() -> None:
    import pytest

    from modelwire.errors import InvalidParameterError
    c = client()
    with pytest.raises(InvalidParameterError, match="not with a stream"):
        async with c.stream("mock/m", "q", response_format=Person, retries=1) as s:
            async for _ in s:
                pass


async def test_an_answer_cut_at_max_tokens_says_so() -> None:
    import pytest

    from modelwire.errors import StructuredOutputError
    c = client()
    c.mock.script(MockReply('{"name": "Bo', finish_reason="length"))
    with pytest.raises(StructuredOutputError, match="cut off at max_tokens") as info:
        await c.complete("mock/m", "q", response_format=Person, max_tokens=5)
    assert info.value.raw_text == '{"name": "Bo' and info.value.response is not None


def test_the_forced_answer_tool_wins_over_prose_before_it() -> None:
    from modelwire import ToolCall
    from modelwire.response import Response
    from modelwire.structured import finish
    spec = output_spec(Person)
    r = Response(text="Let me answer.", finish_reason="tool_calls", tool_calls=[
        ToolCall("t1", spec.name, {"name": "Ann", "age": 3}, '{"name": "Ann", "age": 3}')])
    finish(r, spec)
    assert r.parsed == Person(name="Ann", age=3) and r.tool_calls == []
    assert r.finish_reason == "stop"


async def test_a_json_schema_dict_answer_is_validated_against_the_whole_schema() -> None:
    import pytest

    from modelwire.errors import StructuredOutputError
    schema = {"type": "object", "properties": {
        "a": {"type": "string"}, "n": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["a"]}
    c = client()
    c.mock.script(MockReply('{"a": 1, "n": -1, "tags": ["x", 2]}'))
    with pytest.raises(StructuredOutputError) as info:
        await c.complete("mock/m", "q", response_format=schema)
    assert info.value.errors == ["a: 1 is not of type 'string'",
                                 "n: -1 is less than the minimum of 0",
                                 "tags.1: 2 is not of type 'string'"]
    c.mock.script(MockReply('{"n": 2}'))
    with pytest.raises(StructuredOutputError, match="a: Field required"):
        await c.complete("mock/m", "q", response_format=schema)
    c.mock.script(MockReply('{"a": "ok", "n": 2, "tags": []}'))
    assert (await c.complete("mock/m", "q", response_format=schema)).parsed == {
        "a": "ok", "n": 2, "tags": []}
