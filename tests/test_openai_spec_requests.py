"""Every Chat Completions and Responses request shape the codecs emit is valid
per OpenAI's published OpenAPI document (tests/fixtures/openapi: request
schemas extracted by extract.py, ``nullable`` translated, MIT licence kept).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from modelwire import AsyncClient
from modelwire.registry import get_codec
from modelwire.response import ToolCall
from modelwire.types import ImagePart, Message, TextPart, Tool

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema validates the spec")

SCHEMA = Path(__file__).parent / "fixtures" / "openapi" / "openai_requests.schema.json"
PNG = "data:image/png;base64,iVBORw0KGgo="
WEATHER = Tool("weather", "Weather for a city", {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
CLOCK = Tool("clock")


@functools.cache
def validator(root: str) -> Any:
    defs = json.loads(SCHEMA.read_text(encoding="utf-8"))["$defs"]
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "$ref": f"#/$defs/{root}", "$defs": defs}
    cls = jsonschema.Draft202012Validator
    cls.check_schema(schema)
    return cls(schema)


def errors(root: str, body: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
            for e in validator(root).iter_errors(body)]


def encode(model: str, messages: Any, **kw: Any) -> dict[str, Any]:
    client = AsyncClient(middleware=[], api_keys={"openai": "sk-test",
                                                  "openai-responses": "sk-test"})
    call = client.build_call(model, messages, **kw)
    request = get_codec(call.target.spec).encode(call)
    assert request.body is not None
    body: dict[str, Any] = json.loads(request.body)
    return body


HISTORY = [
    Message("system", "Be brief."),
    Message("user", [TextPart("What is this?"), ImagePart("https://x.test/cat.png", "low"),
                     ImagePart(PNG)]),
    Message("assistant", "Let me look it up.", [
        ToolCall("call_1", "weather", {"city": "Paris"}, '{"city": "Paris"}')]),
    Message("tool", '{"temp": 21}', tool_call_id="call_1"),
    Message("assistant", "", [
        ToolCall("call_2", "weather", None, '{"city": "Par', "not valid JSON (...)")]),
    Message("tool", "error: arguments were not valid JSON", tool_call_id="call_2"),
    Message("assistant", "It is 21 degrees in Paris."),
    Message("system", "Answer in French from now on."),
    Message("user", "And tomorrow?", name="ann"),
]
CUSTOM = [Message("user", "grep"),
          Message("assistant", "", [ToolCall("call_9", "grep", None, "*.py TODO",
                                             "a custom (free-form) tool call: ...")]),
          Message("tool", "a.py:1", tool_call_id="call_9")]


def _custom() -> list[Message]:
    from modelwire.accumulate import CUSTOM_TOOL_INPUT
    msgs = list(CUSTOM)
    msgs[1] = Message("assistant", "", [ToolCall("call_9", "grep", None, "*.py TODO",
                                                 CUSTOM_TOOL_INPUT)])
    return msgs


CHAT_CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "text": ("hi", {}),
    "history with images, tools, results, bad args": (HISTORY, {}),
    "sampling": ("hi", {"temperature": 0.3, "top_p": 0.9, "max_tokens": 64, "seed": 7,
                        "stop": ["END", "STOP"]}),
    "stop string": ("hi", {"stop": "END"}),
    "tools auto": ("hi", {"tools": [WEATHER, CLOCK], "tool_choice": "auto"}),
    "tools none": ("hi", {"tools": [WEATHER], "tool_choice": "none"}),
    "tools required": ("hi", {"tools": [WEATHER], "tool_choice": "required"}),
    "tool named": ("hi", {"tools": [WEATHER], "tool_choice": "weather"}),
    "tool dict": ("hi", {"tools": [WEATHER], "tool_choice": {
        "type": "function", "function": {"name": "weather"}}}),
    "custom tool call history": (_custom(), {}),
    "extra": ("hi", {"extra": {"user": "u1", "logit_bias": {"50256": -100},
                               "response_format": {"type": "json_object"}}}),
}


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("case", sorted(CHAT_CASES))
def test_chat_completions_requests_are_spec_valid(case: str, stream: bool) -> None:
    messages, kw = CHAT_CASES[case]
    body = encode("openai/gpt-4o", messages, stream=stream, **kw)
    assert errors("CreateChatCompletionRequest", body) == []
    if stream:
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


RESPONSES_CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "text": ("hi", {}),
    "history with images, tools, results, bad args": (HISTORY, {}),
    "tool result with an image": ([
        Message("user", "look"),
        Message("assistant", "", [ToolCall("c1", "shot", {}, "{}")]),
        Message("tool", [TextPart("see"), ImagePart("https://x.test/s.png")],
                tool_call_id="c1")], {}),
    "sampling": ("hi", {"temperature": 0.3, "top_p": 0.9, "max_tokens": 64}),
    "tools auto": ("hi", {"tools": [WEATHER, CLOCK], "tool_choice": "auto"}),
    "tools none": ("hi", {"tools": [WEATHER], "tool_choice": "none"}),
    "tools required": ("hi", {"tools": [WEATHER], "tool_choice": "required"}),
    "tool named": ("hi", {"tools": [WEATHER], "tool_choice": "weather"}),
    "tool dict": ("hi", {"tools": [WEATHER], "tool_choice": {
        "type": "function", "function": {"name": "weather"}}}),
    "custom tool call history": (_custom(), {}),
    "extra": ("hi", {"extra": {"store": False, "reasoning": {"effort": "low"}}}),
}


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("case", sorted(RESPONSES_CASES))
def test_responses_requests_are_spec_valid(case: str, stream: bool) -> None:
    messages, kw = RESPONSES_CASES[case]
    body = encode("openai-responses/gpt-4o", messages, stream=stream, **kw)
    assert errors("CreateResponse", body) == []


def test_the_prior_assistant_turn_is_plain_text_and_bad_arguments_go_back_raw() -> None:
    body = encode("openai-responses/gpt-4o", HISTORY)
    items = body["input"]
    assert {"role": "assistant", "content": "Let me look it up."} in items
    bad = [i for i in items if i.get("call_id") == "call_2" and i["type"] == "function_call"]
    assert bad[0]["arguments"] == '{"city": "Par'
    custom = encode("openai-responses/gpt-4o", _custom())["input"]
    assert custom[1] == {"type": "custom_tool_call", "call_id": "call_9", "name": "grep",
                         "input": "*.py TODO"}
    assert custom[2]["type"] == "custom_tool_call_output"


# --- the validator really checks (so an empty error list means something) -----------


@pytest.mark.parametrize(("root", "body", "where"), [
    # the shape this codec used to send: an output_text list without id/status
    ("CreateResponse", {"model": "gpt-4o", "input": [
        {"role": "assistant", "content": [{"type": "output_text", "text": "hi"}]}]}, "input"),
    ("CreateResponse", {"model": "gpt-4o", "input": [
        {"type": "function_call", "call_id": "c", "name": "f"}]}, "input"),  # no arguments
    ("CreateResponse", {"model": "gpt-4o", "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "huge"}]}]},
     "input"),
    ("CreateResponse", {"model": "gpt-4o", "input": "hi", "max_output_tokens": "5"},
     "max_output_tokens"),
    ("CreateChatCompletionRequest", {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "hi"}], "temperature": "hot"}, "temperature"),
    ("CreateChatCompletionRequest", {"model": "gpt-4o", "messages": [
        {"role": "tool", "content": "42"}]}, "messages/0"),  # no tool_call_id
    ("CreateChatCompletionRequest", {"model": "gpt-4o", "messages": [
        {"role": "robot", "content": "hi"}]}, "messages/0"),
    ("CreateChatCompletionRequest", {"model": "gpt-4o"}, ""),  # messages is required
    ("CreateChatCompletionRequest", {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "hi"}], "stream_options": {"include_usage": "yes"}},
     "stream_options"),
])
def test_the_validator_rejects_invalid_requests(root: str, body: dict[str, Any],
                                                where: str) -> None:
    found = errors(root, body)
    assert found and any(e.startswith(where) for e in found), found


def test_nullable_fields_accept_null_after_translation() -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
            "temperature": None, "stop": None, "seed": None}
    assert errors("CreateChatCompletionRequest", body) == []
