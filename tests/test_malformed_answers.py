"""Malformed successful answers are MalformedResponseError; legitimate empty answers,
refusals, unparsable tool arguments and custom tool calls stay answers.

Every case goes through a real HTTP exchange with the hostile raw server on
127.0.0.1 (tests/rawserver.py), complete() and stream(), for every codec.
"""

from __future__ import annotations

from typing import Any

import pytest
from rawserver import Raw, RawServer

from modelwire import AsyncClient
from modelwire.accumulate import CUSTOM_TOOL_INPUT
from modelwire.errors import MalformedResponseError, ModelwireError, StreamInterruptedError
from modelwire.response import Response, ToolCallEnd
from modelwire.types import Message

KEY = "sk-test-SECRET-abcdef0123456789"
MODELS = {"openai": "openai/gpt-4o", "openai-responses": "openai-responses/gpt-4o",
          "anthropic": "anthropic/claude-x", "gemini": "gemini/gemini-2.5-flash"}


def client_for(server: RawServer, provider: str) -> AsyncClient:
    suffix = "/v1" if provider.startswith("openai") else ""
    return AsyncClient(middleware=[], api_keys={provider: KEY},
                       base_urls={provider: server.url + suffix})


async def complete(provider: str, reply: Raw, **kw: Any) -> Response | ModelwireError:
    async with RawServer() as server:
        server.script(reply)
        async with client_for(server, provider) as client:
            try:
                return await client.complete(MODELS[provider], "hi", **kw)
            except ModelwireError as e:
                return e


async def stream(provider: str, reply: Raw) -> tuple[list[Any], Response | ModelwireError]:
    events: list[Any] = []
    async with RawServer() as server:
        server.script(reply)
        async with client_for(server, provider) as client:
            try:
                async with client.stream(MODELS[provider], "hi") as s:
                    async for event in s:
                        events.append(event)
                return events, s.response
            except ModelwireError as e:
                return events, e


def assert_malformed(outcome: object, needle: str) -> None:
    if isinstance(outcome, StreamInterruptedError):
        outcome = outcome.cause
    assert isinstance(outcome, MalformedResponseError), outcome
    text = str(outcome)
    assert needle in text, text  # a short excerpt of the offending body
    assert KEY not in text and KEY not in repr(outcome)
    assert len(outcome.message) < 600


# --- complete(): malformed bodies ---------------------------------------------------


def chat(message: Any, **choice: Any) -> dict[str, Any]:
    return {"id": "c1", "model": "gpt-4o",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop", **choice}]}


def anthropic(*content: Any) -> dict[str, Any]:
    return {"id": "m1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": list(content), "stop_reason": "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 1}}


def gemini(content: Any, reason: str = "STOP") -> dict[str, Any]:
    cand: dict[str, Any] = {"index": 0, "finishReason": reason}
    if content is not ...:
        cand["content"] = content
    return {"candidates": [cand], "modelVersion": "gemini-2.5-flash"}


def responses(*content: Any, output: Any = None) -> dict[str, Any]:
    item = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": list(content)}
    return {"id": "resp_1", "object": "response", "status": "completed", "model": "gpt-4o",
            "output": [item] if output is None else output}


MALFORMED_BODIES = [
    ("openai", chat(None), "message is null"),
    ("openai", chat({"role": "assistant", "content": 42}), "content is JSON int"),
    ("openai", chat({"role": "assistant", "content": {"a": 1}}), "content is JSON dict"),
    ("openai", chat({"role": "assistant", "content": [7]}), "part is JSON int"),
    ("openai", chat({"role": "assistant", "content": [{"type": "text", "text": 5}]}),
     "text is JSON int"),
    ("openai", chat({"role": "assistant", "content": None, "refusal": 3}), "refusal is JSON"),
    ("openai", chat({"role": "assistant", "content": "x", "tool_calls": {"a": 1}}),
     "tool_calls is JSON dict"),
    ("openai", {"choices": [{"index": 0, "finish_reason": "stop"}]}, "message is null"),
    ("openai-responses", responses({"type": "output_text", "text": 42}), "text is JSON int"),
    ("openai-responses", responses(output=[{"type": "message", "content": None}]),
     "content is null"),
    ("openai-responses", responses({"type": "refusal", "refusal": None}), "refusal is null"),
    ("anthropic", anthropic({"type": "text", "text": 42}), "'text' is JSON int"),
    ("anthropic", anthropic({"type": "text"}), "'text' is null"),
    ("anthropic", anthropic({"type": "thinking", "thinking": ["x"]}), "'thinking' is JSON list"),
    ("gemini", gemini({"role": "model", "parts": None}), "parts is not a list"),
    ("gemini", gemini({"role": "model", "parts": "hi"}), "parts is not a list"),
    ("gemini", gemini("hi"), "content is not an object"),
    ("gemini", gemini({"role": "model", "parts": [{"text": 42}]}), "text is JSON int"),
]


@pytest.mark.parametrize(("provider", "body", "needle"), MALFORMED_BODIES)
async def test_malformed_complete_bodies_are_typed_with_an_excerpt(
        provider: str, body: dict[str, Any], needle: str) -> None:
    outcome = await complete(provider, Raw.json(body))
    assert_malformed(outcome, needle)
    assert '{"' in str(outcome) or "{'" in str(outcome)  # the excerpt of the body


# --- stream(): malformed events -----------------------------------------------------


def chunk(delta: Any, finish: str | None = None) -> dict[str, Any]:
    return {"id": "c1", "model": "gpt-4o",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def anth_events(*events: dict[str, Any]) -> list[dict[str, Any]]:
    start = {"type": "message_start", "message": {"id": "m1", "model": "claude-x",
                                                   "usage": {"input_tokens": 1}}}
    stop = [{"type": "message_delta", "delta": {"stop_reason": "end_turn"}},
            {"type": "message_stop"}]
    return [start, *events, *stop]


MALFORMED_STREAMS = [
    ("openai", Raw.sse(chunk({"content": 42}), done=True), "content is JSON int"),
    ("openai", Raw.sse(chunk({"content": {"a": 1}}), done=True), "content is JSON dict"),
    ("openai", Raw.sse(chunk("x"), done=True), "delta is JSON str"),
    ("openai", Raw.sse(chunk({"refusal": 1}), done=True), "refusal is JSON int"),
    ("openai", Raw.sse(chunk({"content": "ok"}), chunk({"content": 42}), done=True),
     "content is JSON int"),
    ("openai-responses", Raw.sse({"type": "response.output_text.delta", "delta": 42}),
     "delta is JSON int"),
    ("anthropic", Raw.sse(*anth_events(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text",
                                                                      "text": ""}},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": 42}})), "'text' is JSON int"),
    ("anthropic", Raw.sse(*anth_events(
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "text", "text": 7}})), "'text' is JSON int"),
    ("gemini", Raw.sse(gemini({"role": "model", "parts": None})), "parts is not a list"),
    ("gemini", Raw.sse(gemini({"role": "model", "parts": [{"text": 1}]})), "text is JSON int"),
]


@pytest.mark.parametrize(("provider", "reply", "needle"), MALFORMED_STREAMS)
async def test_malformed_stream_events_are_typed_with_an_excerpt(
        provider: str, reply: Raw, needle: str) -> None:
    _, outcome = await stream(provider, reply)
    assert_malformed(outcome, needle)


# --- legitimate empty answers stay answers -------------------------------------------


async def test_openai_content_null_with_tool_calls_is_an_answer() -> None:
    body = chat({"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        finish_reason="tool_calls")
    r = await complete("openai", Raw.json(body))
    assert isinstance(r, Response)
    assert (r.text, r.finish_reason, [c.name for c in r.tool_calls]) == ("", "tool_calls", ["f"])


async def test_openai_content_filter_finish_with_null_content_is_an_answer() -> None:
    r = await complete("openai", Raw.json(chat({"role": "assistant", "content": None},
                                               finish_reason="content_filter")))
    assert isinstance(r, Response) and (r.text, r.finish_reason) == ("", "content_filter")


async def test_openai_refusal_is_response_refusal_complete_and_stream() -> None:
    body = chat({"role": "assistant", "content": None, "refusal": "I can't help with that."})
    r = await complete("openai", Raw.json(body))
    assert isinstance(r, Response)
    assert (r.refusal, r.text) == ("I can't help with that.", "I can't help with that.")
    assert r.to_dict()["refusal"] == "I can't help with that."
    _, s = await stream("openai", Raw.sse(chunk({"role": "assistant", "content": None}),
                                          chunk({"refusal": "I can't "}),
                                          chunk({"refusal": "help."}), chunk({}, "stop"),
                                          done=True))
    assert isinstance(s, Response) and (s.refusal, s.text) == ("I can't help.", "I can't help.")
    plain = await complete("openai", Raw.json(chat({"role": "assistant", "content": "hi"})))
    assert isinstance(plain, Response) and plain.refusal is None
    assert "refusal" not in plain.to_dict()


async def test_responses_refusal_part_is_response_refusal() -> None:
    r = await complete("openai-responses", Raw.json(responses(
        {"type": "refusal", "refusal": "No."})))
    assert isinstance(r, Response) and (r.refusal, r.text) == ("No.", "No.")


@pytest.mark.parametrize(("content", "reason", "finish"), [
    (..., "SAFETY", "content_filter"),  # a blocked candidate has no content
    ({"role": "model"}, "MAX_TOKENS", "length"),  # thinking spent the budget
])
async def test_gemini_empty_candidates_are_answers(content: Any, reason: str,
                                                   finish: str) -> None:
    r = await complete("gemini", Raw.json(gemini(content, reason)))
    assert isinstance(r, Response) and (r.text, r.finish_reason) == ("", finish)


async def test_anthropic_refusal_stop_with_no_content_is_an_answer() -> None:
    body = dict(anthropic(), stop_reason="refusal")
    r = await complete("anthropic", Raw.json(body))
    assert isinstance(r, Response) and (r.text, r.finish_reason) == ("", "content_filter")


# --- tool arguments that are not JSON -------------------------------------------------


async def test_unparsable_arguments_keep_the_response_complete_and_stream() -> None:
    body = chat({"role": "assistant", "content": "Calling.", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1'}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"y": 2}'}}]},
        finish_reason="length")
    r = await complete("openai", Raw.json(body))
    assert isinstance(r, Response) and (r.text, r.finish_reason) == ("Calling.", "length")
    bad, good = r.tool_calls
    assert (bad.arguments, bad.raw_arguments) == (None, '{"x": 1')
    assert bad.arguments_error and "not valid JSON" in bad.arguments_error
    assert (good.arguments, good.arguments_error) == ({"y": 2}, None)

    def part(i: int, **fn: Any) -> dict[str, Any]:
        return chunk({"tool_calls": [{"index": i, "function": fn,
                                      **({"id": "ab"[i]} if "name" in fn else {})}]})
    events, s = await stream("openai", Raw.sse(
        chunk({"role": "assistant", "content": "Calling."}),
        part(0, name="f", arguments='{"x": '), part(0, arguments="1"),
        part(1, name="g", arguments='{"y": 2}'), chunk({}, "length"), done=True))
    assert isinstance(s, Response) and s.tool_calls == r.tool_calls
    ends = [e.tool_call for e in events if isinstance(e, ToolCallEnd)]
    assert ends == r.tool_calls


async def test_unparsable_arguments_go_back_to_the_model_as_written() -> None:
    """History holding a call whose arguments did not parse is still sendable."""
    async with RawServer() as server:
        server.script(*[Raw.json(chat({"role": "assistant", "content": "ok"}))] * 2)
        async with client_for(server, "openai") as client:
            r = await client.complete("openai/gpt-4o", "hi")
            assert isinstance(r, Response)
            from modelwire.response import ToolCall
            bad = ToolCall("a", "f", None, '{"x": 1', "not valid JSON (...)")
            history = [Message("user", "hi"), Message("assistant", "", [bad]),
                       Message("tool", "error: arguments were not valid JSON",
                               tool_call_id="a")]
            await client.complete("openai/gpt-4o", history)
    import json
    sent = json.loads(server.requests[-1][2])
    assert sent["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"x": 1'


# --- OpenAI custom tool calls -------------------------------------------------------------


async def test_openai_custom_tool_calls_decode_with_their_raw_input() -> None:
    body = chat({"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_9", "type": "custom", "custom": {"name": "grep", "input": "*.py TODO"}}]},
        finish_reason="tool_calls")
    r = await complete("openai", Raw.json(body))
    assert isinstance(r, Response)
    (c,) = r.tool_calls
    assert (c.id, c.name, c.arguments, c.raw_arguments, c.arguments_error) == (
        "call_9", "grep", None, "*.py TODO", CUSTOM_TOOL_INPUT)
    _, s = await stream("openai", Raw.sse(
        chunk({"tool_calls": [{"index": 0, "id": "call_9", "type": "custom",
                               "custom": {"name": "grep", "input": "*.py"}}]}),
        chunk({"tool_calls": [{"index": 0, "custom": {"input": " TODO"}}]}),
        chunk({}, "tool_calls"), done=True))
    assert isinstance(s, Response) and s.tool_calls == r.tool_calls
    # and it goes back in history as a custom call
    async with RawServer() as server:
        server.script(Raw.json(chat({"role": "assistant", "content": "done"})))
        async with client_for(server, "openai") as client:
            await client.complete("openai/gpt-4o", [
                Message("user", "hi"), Message("assistant", "", [c]),
                Message("tool", "a.py:1 TODO", tool_call_id="call_9")])
    import json
    sent = json.loads(server.requests[0][2])["messages"][1]["tool_calls"][0]
    assert sent == {"id": "call_9", "type": "custom",
                    "custom": {"name": "grep", "input": "*.py TODO"}}


async def test_responses_custom_tool_calls_decode_with_their_raw_input() -> None:
    item = {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_3", "name": "grep",
            "input": "*.py", "status": "completed"}
    r = await complete("openai-responses", Raw.json(responses(output=[item])))
    assert isinstance(r, Response) and r.finish_reason == "tool_calls"
    (c,) = r.tool_calls
    assert (c.id, c.name, c.arguments, c.raw_arguments, c.arguments_error) == (
        "call_3", "grep", None, "*.py", CUSTOM_TOOL_INPUT)
    final = dict(responses(output=[item]))
    _, s = await stream("openai-responses", Raw.sse(
        {"type": "response.output_item.added", "output_index": 0,
         "item": dict(item, input="")},
        {"type": "response.custom_tool_call_input.delta", "output_index": 0, "delta": "*.py"},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": final}))
    assert isinstance(s, Response) and s.tool_calls == r.tool_calls


async def test_an_excerpt_never_carries_the_key_even_when_the_server_echoes_it() -> None:
    body = chat({"role": "assistant", "content": {"auth": f"Bearer {KEY}"}})
    outcome = await complete("openai", Raw.json(body))
    assert_malformed(outcome, "[redacted]")
    _, s = await stream("openai", Raw.sse(chunk({"content": {"auth": KEY}}), done=True))
    assert_malformed(s, "[redacted]")
