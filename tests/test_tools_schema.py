"""Tool.from_function / @modelwire.tool: schema, docstrings, validation, per-provider cache."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from typing import Any, Literal, Optional

import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict

import modelwire
from modelwire.errors import ConfigurationError
from modelwire.pipeline import Call, Target
from modelwire.registry import get_codec, get_spec
from modelwire.tools import ArgumentsError, FunctionTool
from modelwire.tools.jsonschema import strict_schema
from modelwire.types import Tool, to_messages, to_tools


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Options(TypedDict):
    verbose: bool


class Filter(BaseModel):
    field: str
    values: list[int]


def search(query: str, limit: int = 5, kind: Literal["web", "news"] = "web",
           near: Optional[Point] = None, opts: Options | None = None,  # noqa: UP045
           filters: list[Filter] | None = None) -> list[str]:
    """Search the index.

    Longer text about searching.

    Args:
        query: What to look for.
        limit: How many results.
    """
    return [query] * limit


def test_schema_from_hints_and_docstring() -> None:
    t = Tool.from_function(search)
    assert isinstance(t, FunctionTool) and isinstance(t, Tool)
    assert t.name == "search"
    assert t.description == "Search the index.\n\nLonger text about searching."
    p = t.parameters
    assert p["type"] == "object" and p["required"] == ["query"]
    props = p["properties"]
    assert props["query"] == {"type": "string", "description": "What to look for."}
    assert props["limit"] == {"type": "integer", "default": 5, "description": "How many results."}
    assert props["kind"]["enum"] == ["web", "news"]
    assert {"type": "null"} in props["near"]["anyOf"]
    assert set(p["$defs"]) == {"Point", "Options", "Filter"}
    assert p["$defs"]["Point"]["required"] == ["x", "y"]
    assert p["$defs"]["Filter"]["properties"]["values"] == {"type": "array",
                                                           "items": {"type": "integer"}}
    assert all("title" not in d for d in p["$defs"].values())


def test_validation_converts_nested_types_and_reports_briefly() -> None:
    t = Tool.from_function(search)
    pos, kw = t.validate({"query": "q", "near": {"x": 1, "y": 2},
                          "filters": [{"field": "a", "values": [1]}]})
    assert pos == []
    assert kw["near"] == Point(1.0, 2.0) and isinstance(kw["filters"][0], Filter)
    assert kw["limit"] == 5
    with pytest.raises(ArgumentsError) as e:
        t.validate({"kind": "video", "limit": "many"})
    msg = str(e.value)
    assert "query: Field required" in msg and "kind:" in msg and "limit:" in msg
    assert "http" not in msg  # no pydantic doc URLs
    with pytest.raises(ArgumentsError, match="bogus: Extra inputs"):
        t.validate({"query": "q", "bogus": 1})


def test_decorator_keeps_function_callable_and_takes_options() -> None:
    @modelwire.tool
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    @modelwire.tool(name="danger", requires_approval=True, timeout=2.5)
    async def delete(path: str) -> str:
        return path

    assert add(2, 3) == 5 and not add.is_async
    assert delete.name == "danger" and delete.requires_approval and delete.timeout == 2.5
    assert delete.is_async and delete.description == ""


def test_positional_only_parameters_are_passed_positionally() -> None:
    def f(a: int, /, b: int) -> int:
        return a - b
    t = Tool.from_function(f)
    pos, kw = t.validate({"a": 5, "b": 2})
    assert t(*pos, **kw) == 3


def test_unusable_functions_are_configuration_errors() -> None:
    def star(*args: int) -> None: ...

    def weird(x: object) -> None: ...  # object: pydantic gives {} (any), which is fine

    with pytest.raises(ConfigurationError, match=r"\*args"):
        Tool.from_function(star)
    assert Tool.from_function(weird).parameters["properties"]["x"] == {}
    with pytest.raises(ConfigurationError, match="timeout"):
        Tool.from_function(weird, timeout=0)
    with pytest.raises(ConfigurationError, match="needs a function"):
        Tool.from_function(42)  # type: ignore[arg-type]


def test_strict_schema_closes_objects_and_makes_optionals_nullable() -> None:
    t = Tool.from_function(search, strict=True)
    p = t.parameters
    assert p["additionalProperties"] is False
    assert p["required"] == list(p["properties"])
    assert "default" not in json.dumps(p["properties"]["limit"])
    assert {"type": "null"} in p["properties"]["limit"]["anyOf"]
    assert all(d["additionalProperties"] is False for d in p["$defs"].values())
    assert strict_schema(p) == p  # idempotent
    # strict mode sends null for "not given": the default applies, not None
    _, kw = t.validate({"query": "q", "limit": None, "kind": None, "near": None,
                        "opts": None, "filters": None})
    assert kw["limit"] == 5 and kw["kind"] == "web" and kw["near"] is None


def test_plain_functions_are_accepted_as_tools_and_built_once() -> None:
    first, = to_tools([search])
    second, = to_tools([search])
    assert isinstance(first, FunctionTool) and first is second


def test_a_property_named_title_survives_title_stripping() -> None:
    def note(title: str, body: str = "") -> None: ...
    assert "title" in Tool.from_function(note).parameters["properties"]


# --- per-provider translation, cached on the tool -----------------------------


def _call(provider: str, tools: list[Tool], **options: Any) -> Call:
    spec = get_spec(provider)
    target = Target(spec, "m", "http://127.0.0.1:1", "k", options)
    return Call(messages=to_messages("hi"), target=target, tools=tools)


@pytest.mark.parametrize("provider,path", [
    ("openai", ("tools", 0, "function", "parameters")),
    ("openai-responses", ("tools", 0, "parameters")),
    ("anthropic", ("tools", 0, "input_schema")),
    ("gemini", ("tools", 0, "functionDeclarations", 0, "parameters")),
])
def test_each_codec_translates_once_per_tool(provider: str, path: tuple[Any, ...]) -> None:
    t = Tool.from_function(search)
    codec = get_codec(get_spec(provider))
    bodies = [json.loads(codec.encode(_call(provider, [t])).body) for _ in range(3)]
    assert bodies[0] == bodies[1] == bodies[2]
    node: Any = bodies[0]
    for key in path:
        node = node[key]
    assert "query" in json.dumps(node)
    assert len(t._wire) == 1  # one cached translation for this provider
    # later calls reuse the cached translation instead of rebuilding it
    key = next(iter(t._wire))
    t._wire[key] = {"name": "cached-marker"}
    again = json.loads(codec.encode(_call(provider, [t])).body)
    assert '{"name": "cached-marker"}' in json.dumps(again["tools"])


def test_gemini_schema_dialect_and_json_option_are_cached_separately() -> None:
    t = Tool.from_function(search)
    codec = get_codec(get_spec("gemini"))
    plain = json.loads(codec.encode(_call("gemini", [t])).body)
    decl = plain["tools"][0]["functionDeclarations"][0]
    assert decl["parameters"]["type"] == "OBJECT"
    assert "$defs" not in json.dumps(decl) and "additionalProperties" not in json.dumps(decl)
    as_json = json.loads(codec.encode(_call("gemini", [t], tool_schema="json")).body)
    assert "$defs" in as_json["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]
    assert len(t._wire) == 2


def test_openai_strict_flag_reaches_the_wire() -> None:
    t = Tool.from_function(search, strict=True)
    body = json.loads(get_codec(get_spec("openai")).encode(_call("openai", [t])).body)
    fn = body["tools"][0]["function"]
    assert fn["strict"] is True and fn["parameters"]["additionalProperties"] is False
    resp = json.loads(get_codec(get_spec("openai-responses")).encode(
        _call("openai-responses", [t])).body)
    assert resp["tools"][0]["strict"] is True
    # a dict-schema Tool(strict=True) is rewritten for the wire, the Tool itself untouched
    d = Tool("f", "", {"type": "object", "properties": {"a": {"type": "string"}}}, strict=True)
    fn = json.loads(get_codec(get_spec("openai")).encode(_call("openai", [d])).body)[
        "tools"][0]["function"]
    assert fn["parameters"]["required"] == ["a"] and "required" not in d.parameters


def test_import_modelwire_stays_lean() -> None:
    code = ("import sys, modelwire; "
            "print(sorted(m for m in ('pydantic', 'pydantic_core', 'jiter', 'docstring_parser')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
