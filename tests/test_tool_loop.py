"""The tool loop: run_tools / stream_tools, parallelism, timeouts, errors, approval, wires."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from aiohttp import web

import modelwire
from modelwire import AsyncClient, Client, MaxTurnsExceededError, Message, ToolCall
from modelwire.errors import ConfigurationError
from modelwire.mock import MockReply
from modelwire.response import TextDelta, ToolCallStart
from modelwire.testing import Fault, FaultServer
from modelwire.tools import ModelStep, ToolResultEvent, ToolStep


@modelwire.tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first.
        b: The second.
    """
    return a + b


def client() -> AsyncClient:
    return AsyncClient(middleware=[])


async def test_loop_runs_tools_and_sends_results_back() -> None:
    c = client()
    c.mock.script(MockReply(tool_calls=[("add", {"a": 2, "b": 3})]), MockReply("It is 5."))
    result = await c.run_tools("mock/m", "what is 2+3?", tools=[add])
    assert result.text == "It is 5." and result.pending == []
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "assistant"]
    tool_msg = result.messages[2]
    assert tool_msg.content == "5" and tool_msg.tool_call_id == "call_mock_0"
    kinds = [s.kind for s in result.steps]
    assert kinds == ["model", "tool", "model"]
    step = result.tool_steps[0]
    assert step.result == 5 and step.error is None and step.arguments == {"a": 2, "b": 3}
    assert step.duration >= 0
    sent = c.mock.requests[1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_mock_0"
    assert sent[2] == {"role": "tool", "content": "5", "tool_call_id": "call_mock_0",
                       "name": "add"}
    assert c.mock.requests[0]["tools"][0]["function"]["name"] == "add"


async def test_async_tools_run_in_parallel_proven_by_overlap() -> None:
    first, second = asyncio.Event(), asyncio.Event()

    async def ping() -> str:
        first.set()
        await second.wait()  # only returns if pong runs at the same time
        return "ping done"

    async def pong() -> str:
        second.set()
        await first.wait()
        return "pong done"

    c = client()
    c.mock.script(MockReply(tool_calls=[("ping", {}), ("pong", {})]), MockReply("ok"))
    result = await c.run_tools("mock/m", "go", tools=[ping, pong], tool_timeout=10)
    assert [s.content for s in result.tool_steps] == ["ping done", "pong done"]
    assert all(s.error is None for s in result.tool_steps)


async def test_sync_tools_run_in_parallel_threads_proven_by_overlap() -> None:
    first, second = threading.Event(), threading.Event()

    def ping() -> str:
        first.set()
        return "ping done" if second.wait(10) else "alone"

    def pong() -> str:
        second.set()
        return "pong done" if first.wait(10) else "alone"

    c = client()
    c.mock.script(MockReply(tool_calls=[("ping", {}), ("pong", {})]), MockReply("ok"))
    result = await c.run_tools("mock/m", "go", tools=[ping, pong])
    assert [s.content for s in result.tool_steps] == ["ping done", "pong done"]


async def test_parallel_false_runs_one_after_another() -> None:
    log: list[str] = []

    async def one() -> str:
        log.append("one start")
        await asyncio.sleep(0)
        log.append("one end")
        return "1"

    def two() -> str:
        log.append("two start")
        log.append("two end")
        return "2"

    c = client()
    c.mock.script(MockReply(tool_calls=[("one", {}), ("two", {})]), MockReply("ok"))
    await c.run_tools("mock/m", "go", tools=[one, two], parallel=False)
    assert log == ["one start", "one end", "two start", "two end"]


async def test_timeouts_errors_and_bad_arguments_become_error_results() -> None:
    never = asyncio.Event()
    release = threading.Event()

    async def hang() -> str:
        await never.wait()
        return "never"

    def hang_sync() -> str:
        release.wait(10)
        return "late"

    def boom(x: int) -> str:
        raise ValueError(f"boom {x}")

    c = client()
    c.mock.script(
        MockReply(tool_calls=[("hang", {}), ("hang_sync", {}), ("boom", {"x": 7}),
                              ("add", {"a": "two"}), ("nosuch", {})]),
        MockReply("recovered"))
    try:
        result = await c.run_tools("mock/m", "go", tools=[hang, hang_sync, boom, add],
                                   tool_timeout=0.05)
    finally:
        release.set()
    assert result.text == "recovered"
    errors = {s.call.name: s.error for s in result.tool_steps}
    assert errors["hang"] == "tool hang timed out after 0.05s"
    assert errors["hang_sync"] == "tool hang_sync timed out after 0.05s"
    assert errors["boom"] == "tool boom raised ValueError: boom 7"
    assert errors["add"] is not None and "a: Input should be a valid integer" in errors["add"]
    assert "b: Field required" in errors["add"]
    assert errors["nosuch"] == "unknown tool 'nosuch'; the tools are: add, boom, hang, hang_sync"
    boom_step = next(s for s in result.tool_steps if s.call.name == "boom")
    assert isinstance(boom_step.exception, ValueError)  # the full exception is kept
    sent = {m["tool_call_id"]: m["content"] for m in c.mock.requests[1]["messages"]
            if m["role"] == "tool"}
    assert sent["call_mock_2"] == "error: tool boom raised ValueError: boom 7"
    assert len(sent) == 5


async def test_per_tool_timeout_overrides_the_loop_timeout() -> None:
    @modelwire.tool(timeout=0.01)
    async def slow() -> str:
        await asyncio.Event().wait()
        return "x"

    c = client()
    c.mock.script(MockReply(tool_calls=[("slow", {})]), MockReply("ok"))
    result = await c.run_tools("mock/m", "go", tools=[slow], tool_timeout=60)
    assert result.tool_steps[0].error == "tool slow timed out after 0.01s"


async def test_arguments_that_did_not_parse_are_sent_back_as_an_error() -> None:
    broken = ToolCall("call_9", "add", None, '{"a": 1', "Expecting ',' delimiter: line 1")
    history = [Message("user", "add"), Message("assistant", "", [broken])]
    c = client()
    c.mock.script(MockReply("sorry"))
    result = await c.run_tools("mock/m", history, tools=[add])
    step = result.tool_steps[0]
    assert step.error is not None
    assert step.error.startswith("arguments did not parse: Expecting ',' delimiter")
    sent = c.mock.requests[0]["messages"][2]
    assert sent["tool_call_id"] == "call_9"
    assert sent["content"].startswith("error: arguments did not parse")


async def test_max_turns_raises_with_the_transcript() -> None:
    c = client()
    c.mock.script(*[MockReply(tool_calls=[("add", {"a": i, "b": 1})]) for i in range(3)])
    with pytest.raises(MaxTurnsExceededError, match="max_turns=2") as e:
        await c.run_tools("mock/m", "loop forever", tools=[add], max_turns=2)
    roles = [m.role for m in e.value.transcript]
    assert roles == ["user", "assistant", "tool", "assistant", "tool"]
    assert [m.content for m in e.value.transcript if m.role == "tool"] == ["1", "2"]
    assert sum(isinstance(s, ModelStep) for s in e.value.steps) == 2
    assert c.mock.pending == 1  # no third model call


async def test_approval_stops_the_loop_and_resumes() -> None:
    ran: list[str] = []

    @modelwire.tool(requires_approval=True)
    def delete(path: str) -> str:
        ran.append(path)
        return f"deleted {path}"

    c = client()
    c.mock.script(MockReply(tool_calls=[("delete", {"path": "/tmp/x"}), ("add", {"a": 1, "b": 1})]))
    first = await c.run_tools("mock/m", "clean up", tools=[delete, add])
    assert [p.name for p in first.pending] == ["delete"] and ran == []
    assert [m.role for m in first.messages] == ["user", "assistant", "tool"]  # add ran
    assert first.response.tool_calls  # the model call that asked
    c.mock.script(MockReply("done"))
    second = await c.run_tools("mock/m", first.messages, tools=[delete, add],
                               approved=[first.pending[0].id])
    assert ran == ["/tmp/x"] and second.text == "done" and second.pending == []
    assert c.mock.requests[1]["messages"][-1]["content"] == "deleted /tmp/x"

    # going on without approving: the model is told, the tool does not run
    c.mock.script(MockReply(tool_calls=[("delete", {"path": "/etc"})]), MockReply("ok"))
    third = await c.run_tools("mock/m", "again", tools=[delete])
    c.mock.script(MockReply("understood"))
    fourth = await c.run_tools("mock/m", third.messages, tools=[delete])
    assert ran == ["/tmp/x"]
    assert fourth.tool_steps[0].error == "not approved by the user"


async def test_a_schema_only_tool_hands_its_calls_back() -> None:
    schema = {"type": "function", "function": {"name": "client_side",
                                               "parameters": {"type": "object"}}}
    c = client()
    c.mock.script(MockReply(tool_calls=[("client_side", {"q": 1})]))
    result = await c.run_tools("mock/m", "go", tools=[schema])
    assert [p.name for p in result.pending] == ["client_side"]


async def test_configuration_mistakes_are_typed() -> None:
    c = client()
    with pytest.raises(ConfigurationError, match="max_turns"):
        await c.run_tools("mock/m", "x", tools=[add], max_turns=0)
    with pytest.raises(ConfigurationError, match="tool_timeout"):
        await c.run_tools("mock/m", "x", tools=[add], tool_timeout=-1)
    with pytest.raises(ConfigurationError, match="at least one tool"):
        await c.run_tools("mock/m", "x", tools=[])


async def test_stream_tools_yields_deltas_tool_results_and_next_turn() -> None:
    c = client()
    c.mock.script(MockReply("let me add", tool_calls=[("add", {"a": 20, "b": 22})]),
                  MockReply("the answer is 42"))
    ts = c.stream_tools("mock/m", "20+22?", tools=[add])
    events = [e async for e in ts]
    kinds = [type(e).__name__ for e in events]
    assert "ToolCallStart" in kinds and "ToolResultEvent" in kinds
    start = kinds.index("ToolCallStart")
    result_at = kinds.index("ToolResultEvent")
    later_text = [e.text for e in events[result_at:] if isinstance(e, TextDelta)]
    assert start < result_at and "".join(later_text) == "the answer is 42"
    ev = events[result_at]
    assert isinstance(ev, ToolResultEvent) and ev.step.content == "42"
    assert ts.result.text == "the answer is 42"
    assert all(c.mock.requests[i].get("stream") for i in range(2))
    assert isinstance(next(e for e in events if isinstance(e, ToolCallStart)), ToolCallStart)


def test_sync_client_twins() -> None:
    with Client(middleware=[]) as c:
        c.mock.script(MockReply(tool_calls=[("add", {"a": 1, "b": 2})]), MockReply("3"))
        result = c.run_tools("mock/m", "1+2", tools=[add])
        assert result.text == "3" and isinstance(result.tool_steps[0], ToolStep)
        c.mock.script(MockReply(tool_calls=[("add", {"a": 1, "b": 2})]), MockReply("3!"))
        stream = c.stream_tools("mock/m", "1+2", tools=[add])
        events = list(stream)
        assert any(isinstance(e, ToolResultEvent) for e in events)
        assert stream.result.text == "3!"


# --- each wire: the result messages each provider needs round-trip --------------

ARGS = '{"a": 2, "b": 3}'


async def _run_against(server: FaultServer, model: str, provider: str, base: str) -> Any:
    server.script(Fault.ok("", tool_calls=[("add", ARGS)]), Fault.ok("five"))
    c = AsyncClient(middleware=[], base_urls={provider: base}, api_keys={provider: "k"})
    try:
        result = await c.run_tools(model, "2+3?", tools=[add])
        streamed_server_requests = len(server.requests)
        server.script(Fault.ok("", tool_calls=[("add", ARGS)]), Fault.ok("five"))
        ts = c.stream_tools(model, "2+3?", tools=[add])
        async for _ in ts:
            pass
        assert ts.result.text == result.text == "five"
        assert len(server.requests) == streamed_server_requests + 2
    finally:
        await c.aclose()
    return result


async def test_anthropic_wire_tool_use_id_round_trips() -> None:
    async with FaultServer() as server:
        result = await _run_against(server, "anthropic/claude-x", "anthropic",
                                    server.url_for("anthropic"))
        call_id = result.tool_steps[0].call.id
        assert call_id.startswith("toolu_")
        body = server.requests[1].json
        assert body["messages"][1]["content"][0] == {
            "type": "tool_use", "id": call_id, "name": "add", "input": {"a": 2, "b": 3}}
        assert body["messages"][2] == {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call_id, "content": "5"}]}
        assert body["tools"][0]["input_schema"]["required"] == ["a", "b"]


async def test_gemini_wire_function_response_round_trips() -> None:
    async with FaultServer() as server:
        result = await _run_against(server, "gemini/gemini-x", "gemini",
                                    server.url_for("gemini"))
        assert result.tool_steps[0].result == 5
        contents = server.requests[1].json["contents"]
        assert contents[1]["parts"][0]["functionCall"]["name"] == "add"
        call_id = result.tool_steps[0].call.id
        assert contents[1]["parts"][0]["functionCall"]["id"] == call_id
        assert contents[2] == {"role": "user", "parts": [{"functionResponse": {
            "name": "add", "response": {"result": "5"}, "id": call_id}}]}
        decl = server.requests[0].json["tools"][0]["functionDeclarations"][0]
        assert decl["name"] == "add" and decl["parameters"]["type"] == "OBJECT"


async def test_openai_chat_wire_tool_call_id_round_trips() -> None:
    async with FaultServer() as server:
        result = await _run_against(server, "openai/gpt-x", "openai", server.url_for("openai"))
        call_id = result.tool_steps[0].call.id
        msgs = server.requests[1].json["messages"]
        assert msgs[1]["tool_calls"][0]["id"] == call_id
        assert msgs[2] == {"role": "tool", "content": "5", "tool_call_id": call_id,
                           "name": "add"}


async def test_responses_wire_function_call_output_round_trips() -> None:
    bodies: list[dict[str, Any]] = []
    replies = [
        {"id": "resp_1", "status": "completed", "model": "gpt-x", "output": [
            {"type": "function_call", "id": "fc_1", "call_id": "call_abc", "name": "add",
             "arguments": ARGS}]},
        {"id": "resp_2", "status": "completed", "model": "gpt-x", "output": [
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "five"}]}]},
    ]

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.json_response(replies[len(bodies) - 1])

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
        result = await c.run_tools("openai-responses/gpt-x", "2+3?", tools=[add])
    finally:
        await c.aclose()
        await runner.cleanup()
    assert result.text == "five"
    items = bodies[1]["input"]
    assert items[1] == {"type": "function_call", "call_id": "call_abc", "name": "add",
                        "arguments": ARGS}
    assert items[2] == {"type": "function_call_output", "call_id": "call_abc", "output": "5"}
    assert bodies[0]["tools"][0]["name"] == "add"


async def test_an_approved_schema_only_tool_says_it_cannot_run() -> None:
    schema = {"type": "function", "function": {"name": "remote", "parameters": {}}}
    c = client()
    c.mock.script(MockReply(tool_calls=[("remote", {})]), MockReply("ok"))
    result = await c.run_tools("mock/m", "go", tools=[schema], approved=True)
    assert result.tool_steps[0].error == "tool remote has no function to run here"
