"""The scriptable ``mock`` provider, end to end through the public clients.

Every call here goes AsyncClient/Client -> middleware chain -> OpenAI codec ->
MockTransport (real OpenAI wire bytes) -> codec -> accumulator, so these tests
also pin that the mock speaks a wire the codec accepts. Clients are built with
``middleware=[]`` so no retry layer hides the scripted failures.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
import wirekit

import modelwire
from modelwire import (
    AsyncClient,
    Client,
    ConfigurationError,
    MalformedResponseError,
    OverloadedError,
    ProviderConnectionError,
    RateLimitError,
    ReasoningDelta,
    RequestTimeoutError,
    ServerError,
    StreamInterruptedError,
    TextDelta,
    Timeouts,
    Tool,
    ToolCall,
    ToolCallArgumentsDelta,
    ToolCallEnd,
    ToolCallStart,
    UsageUpdate,
)
from modelwire.errors import ContextWindowExceededError
from modelwire.mock import MockReply
from modelwire.registry import get_codec, get_spec
from modelwire.transports.base import WireRequest
from modelwire.transports.mock import MockTransport

WEATHER = ("get_weather", {"city": "Paris", "unit": "celsius"})
CLOCK = ("get_time", {"tz": "Europe/Paris"})


@pytest.fixture
async def client() -> Any:
    c = AsyncClient(middleware=[])
    yield c
    await c.aclose()


async def collect(client: AsyncClient, model: str, messages: Any, **kw: Any
                  ) -> tuple[list[Any], modelwire.Response]:
    events: list[Any] = []
    async with client.stream(model, messages, **kw) as s:
        async for e in s:
            events.append(e)
        return events, s.response


# --- plain replies ------------------------------------------------------------


async def test_echo_without_script_returns_last_user_message(client: AsyncClient) -> None:
    r = await client.complete("mock/echo", [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": "say this back"},
    ])
    assert r.text == "say this back"
    assert (r.provider, r.model, r.finish_reason) == ("mock", "echo", "stop")
    # one token per whitespace-separated word of every message, reported on the wire
    assert (r.usage.input_tokens, r.usage.output_tokens) == (2 + 2 + 2 + 3, 3)
    assert r.usage.source == "reported"
    assert r.request_id and r.request_id.startswith("chatcmpl-")


async def test_echo_honours_max_tokens_as_a_length_stop(client: AsyncClient) -> None:
    r = await client.complete("mock/echo", "one two three four five", max_tokens=2)
    assert (r.text, r.finish_reason, r.usage.output_tokens) == ("one two", "length", 2)


async def test_scripted_text_and_usage(client: AsyncClient) -> None:
    client.mock.script(MockReply("Hello from the script", usage=(11, 4)))
    r = await client.complete("mock/any-model", "ignored")
    assert r.text == "Hello from the script"
    assert r.model == "any-model"
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (11, 4, 15)
    assert r.usage.source == "reported"


async def test_replies_are_used_first_in_first_out_then_echo(client: AsyncClient) -> None:
    client.mock.script(MockReply("A"), MockReply("B"))
    assert client.mock.pending == 2
    texts = [(await client.complete("mock/m", f"q{i}")).text for i in range(3)]
    assert texts == ["A", "B", "q2"]
    assert client.mock.pending == 0


async def test_tool_calls_complete(client: AsyncClient) -> None:
    client.mock.script(MockReply(tool_calls=[WEATHER, ToolCall("call_x", "get_time",
                                                               {"tz": "UTC"}, '{"tz":"UTC"}')]))
    r = await client.complete("mock/m", "weather?")
    assert r.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in r.tool_calls] == [
        ("get_weather", WEATHER[1]), ("get_time", {"tz": "UTC"})]
    assert r.tool_calls[1].id == "call_x"
    assert r.tool_calls[1].raw_arguments == '{"tz":"UTC"}'
    assert r.text == ""


async def test_scripted_finish_reason_and_reasoning(client: AsyncClient) -> None:
    client.mock.script(MockReply("cut", finish_reason="length", reasoning="let me think"))
    r = await client.complete("mock/m", "q")
    assert (r.finish_reason, r.raw_finish_reason, r.reasoning) == ("length", "length",
                                                                    "let me think")


async def test_malformed_tool_arguments_can_be_scripted(client: AsyncClient) -> None:
    client.mock.script(MockReply(tool_calls=[("f", '{"a": ')]))
    (call,) = (await client.complete("mock/m", "q")).tool_calls
    assert (call.arguments, call.raw_arguments) == (None, '{"a": ')
    assert call.arguments_error is not None and "not valid JSON" in call.arguments_error


# --- streaming ----------------------------------------------------------------


async def test_stream_events_text_tools_and_usage(client: AsyncClient) -> None:
    client.mock.script(MockReply("one two three", text_chunks=3,
                                 tool_calls=[WEATHER, CLOCK], arg_chunks=4, usage=(5, 9)))
    events, response = await collect(client, "mock/m", "hi")

    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(texts) == 3 and "".join(texts) == "one two three"
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert [(s.index, s.name) for s in starts] == [(0, "get_weather"), (1, "get_time")]
    for start, (_, args) in zip(starts, (WEATHER, CLOCK), strict=True):
        frags = [e.delta for e in events
                 if isinstance(e, ToolCallArgumentsDelta) and e.index == start.index]
        assert len(frags) == 4
        assert json.loads("".join(frags)) == args
    ends = [e for e in events if isinstance(e, ToolCallEnd)]
    assert [(e.tool_call.name, e.tool_call.arguments) for e in ends] == [WEATHER, CLOCK]
    # every call starts before it ends, and text comes before the calls
    pos = {id(e): i for i, e in enumerate(events)}
    assert all(pos[id(s)] < pos[id(e)] for s, e in zip(starts, ends, strict=True))
    usage = [e.usage for e in events if isinstance(e, UsageUpdate)]
    assert usage and (usage[-1].input_tokens, usage[-1].output_tokens) == (5, 9)
    assert response.finish_reason == "tool_calls"
    assert response.time_to_first_token is not None


async def test_stream_text_defaults_to_one_delta_per_word(client: AsyncClient) -> None:
    client.mock.script(MockReply("alpha beta gamma"))
    events, response = await collect(client, "mock/m", "q")
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["alpha", " beta", " gamma"]
    assert response.text == "alpha beta gamma"


async def test_stream_reasoning_deltas_stay_out_of_text(client: AsyncClient) -> None:
    client.mock.script(MockReply("answer", reasoning="because reasons"))
    events, response = await collect(client, "mock/m", "q")
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "because reasons"
    assert (response.text, response.reasoning) == ("answer", "because reasons")


async def test_stream_response_equals_complete_response(client: AsyncClient) -> None:
    reply = dict(text="Paris is sunny today", tool_calls=[WEATHER, CLOCK], usage=(7, 12),
                 text_chunks=5, arg_chunks=3)
    client.mock.script(MockReply(**reply), MockReply(**reply))  # type: ignore[arg-type]
    done = await client.complete("mock/m", "weather?")
    _, streamed = await collect(client, "mock/m", "weather?")

    def key(r: modelwire.Response) -> Any:
        return (r.text, [(c.id, c.name, c.arguments, c.raw_arguments) for c in r.tool_calls],
                r.usage, r.finish_reason, r.raw_finish_reason, r.provider, r.model)

    assert key(streamed) == key(done)
    assert done.text == "Paris is sunny today" and len(done.tool_calls) == 2


async def test_stream_usage_only_when_the_request_asks(client: AsyncClient) -> None:
    """OpenAI sends the usage chunk only for stream_options.include_usage: so does the mock."""
    transport = MockTransport()
    body = {"model": "m", "messages": [{"role": "user", "content": "a b"}], "stream": True}
    without = await transport.send(
        WireRequest("POST", "mock://chat/completions", {}, json.dumps(body).encode(), True),
        Timeouts())
    raw = await without.read()
    assert b'"usage"' not in raw and raw.endswith(b"data: [DONE]\n\n")
    body["stream_options"] = {"include_usage": True}
    with_usage = await transport.send(
        WireRequest("POST", "mock://chat/completions", {}, json.dumps(body).encode(), True),
        Timeouts())
    chunks = [json.loads(line[6:]) for line in (await with_usage.read()).split(b"\n\n")
              if line.startswith(b"data: {")]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 2
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_sse_bytes_survive_any_chunking() -> None:
    """The mock's stream is valid SSE at every split point (replayed like the endpoint)."""
    transport = MockTransport()
    transport.script(MockReply("héllo wörld ✓", tool_calls=[WEATHER], arg_chunks=5))
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True,
            "stream_options": {"include_usage": True}}
    resp = await transport.send(
        WireRequest("POST", "mock://chat/completions", {}, json.dumps(body).encode(), True),
        Timeouts())
    raw = await resp.read()
    codec = get_codec(get_spec("mock"))
    _, whole = wirekit.replay_stream(codec, raw)
    for size in (1, 3, 17):
        _, split = wirekit.replay_stream(codec, raw, chunk_size=size)
        assert isinstance(split, modelwire.Response)
        assert (split.text, split.tool_calls, split.usage) == (whole.text, whole.tool_calls,
                                                               whole.usage)
    assert whole.text == "héllo wörld ✓" and whole.tool_calls[0].arguments == WEATHER[1]


async def test_text_completion_mode(client: AsyncClient) -> None:
    r = await client.complete_text("mock/echo", "continue this")
    assert r.text == "continue this"
    assert client.mock.requests[-1]["prompt"] == "continue this"
    assert "messages" not in client.mock.requests[-1]
    client.mock.script(MockReply("and then", usage=(2, 2)))
    chunks = []
    async with client.stream_text("mock/echo", "continue this") as s:
        async for e in s:
            chunks.append(e)
    assert "".join(e.text for e in chunks if isinstance(e, TextDelta)) == "and then"
    assert s.response.usage.output_tokens == 2


# --- scripted failures ------------------------------------------------------------


async def test_429_with_retry_after_is_a_rate_limit_error(client: AsyncClient) -> None:
    client.mock.script(MockReply(status=429, headers={"Retry-After": "7"}))
    with pytest.raises(RateLimitError) as info:
        await client.complete("mock/m", "q")
    err = info.value
    assert (err.status, err.retry_after, err.retryable) == (429, 7.0, True)
    assert (err.provider, err.model) == ("mock", "m")


async def test_429_before_a_stream_starts_is_not_wrapped(client: AsyncClient) -> None:
    client.mock.script(MockReply(status=429, headers={"retry-after-ms": "1500"}))
    with pytest.raises(RateLimitError) as info:
        await collect(client, "mock/m", "q")
    assert info.value.retry_after == 1.5


@pytest.mark.parametrize(("status", "kind"), [(500, ServerError), (503, ServerError),
                                              (529, OverloadedError)])
@pytest.mark.parametrize("stream", [False, True])
async def test_server_errors_are_typed(client: AsyncClient, status: int,
                                       kind: type[Exception], stream: bool) -> None:
    client.mock.script(MockReply(status=status, error="scripted outage"))
    with pytest.raises(kind) as info:
        if stream:
            await collect(client, "mock/m", "q")
        else:
            await client.complete("mock/m", "q")
    assert getattr(info.value, "status", None) == status
    assert "scripted outage" in str(info.value)
    assert getattr(info.value, "retryable", None) is True


async def test_scripted_error_body_is_classified_by_its_code(client: AsyncClient) -> None:
    client.mock.script(MockReply(status=400, error={"error": {
        "message": "This model's maximum context length is 8192 tokens.",
        "type": "invalid_request_error", "code": "context_length_exceeded"}}))
    with pytest.raises(ContextWindowExceededError):
        await client.complete("mock/m", "q")


async def test_disconnect_mid_stream_keeps_the_partial_text(client: AsyncClient) -> None:
    # events: role chunk, "alpha", " beta", " gamma", ... -> reset after 3 events
    client.mock.script(MockReply("alpha beta gamma delta", disconnect_after=3))
    seen: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        async with client.stream("mock/m", "q") as s:
            async for e in s:
                if isinstance(e, TextDelta):
                    seen.append(e.text)
    err = info.value
    assert "".join(seen) == "alpha beta"
    assert err.partial is not None and err.partial.text == "alpha beta"
    assert err.partial.finish_reason == "error"
    assert isinstance(err.cause, ProviderConnectionError)
    assert err.retryable is False


async def test_disconnect_before_the_first_event_is_a_retryable_connection_error(
        client: AsyncClient) -> None:
    client.mock.script(MockReply("never seen", disconnect_after=0))
    with pytest.raises(ProviderConnectionError) as info:
        await collect(client, "mock/m", "q")
    assert not isinstance(info.value, StreamInterruptedError)
    assert info.value.retryable is True


async def test_disconnect_on_a_plain_call(client: AsyncClient) -> None:
    client.mock.script(MockReply("x", disconnect_after=1))
    with pytest.raises(ProviderConnectionError):
        await client.complete("mock/m", "q")


@pytest.mark.parametrize("after", [2, 1000])
async def test_truncated_stream_is_never_passed_off_as_complete(client: AsyncClient,
                                                               after: int) -> None:
    client.mock.script(MockReply("alpha beta gamma", truncate_after=after))
    with pytest.raises(StreamInterruptedError) as info:
        await collect(client, "mock/m", "q")
    partial = info.value.partial
    assert partial is not None and partial.finish_reason == "error"
    assert partial.text == ("alpha" if after == 2 else "alpha beta gamma")


async def test_truncated_plain_body_is_malformed(client: AsyncClient) -> None:
    client.mock.script(MockReply("some text", truncate_after=0))
    with pytest.raises(MalformedResponseError):
        await client.complete("mock/m", "q")


# --- timing ---------------------------------------------------------------------


async def test_latency_is_honoured(client: AsyncClient) -> None:
    client.mock.script(MockReply("slow", latency=0.05), MockReply("slow", latency=0.05))
    r = await client.complete("mock/m", "q")
    assert r.latency >= 0.05
    _, streamed = await collect(client, "mock/m", "q")
    assert streamed.time_to_first_token is not None and streamed.time_to_first_token >= 0.05


async def test_latency_beyond_the_timeout_times_out(client: AsyncClient) -> None:
    client.mock.script(MockReply("too slow", latency=30))
    with pytest.raises(RequestTimeoutError):
        await client.complete("mock/m", "q", timeout=0.05)


async def test_latency_beyond_the_read_timeout_times_out_before_the_stream(
        client: AsyncClient) -> None:
    client.mock.script(MockReply("a b c", latency=30))
    with pytest.raises(RequestTimeoutError) as info:
        await collect(client, "mock/m", "q", timeout=Timeouts(connect=1, read=0.05, total=5))
    assert not isinstance(info.value, StreamInterruptedError) and info.value.retryable


async def test_chunk_delay_beyond_the_read_timeout_interrupts_the_stream(
        client: AsyncClient) -> None:
    client.mock.script(MockReply("a b c", chunk_delay=30))
    seen: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        async with client.stream("mock/m", "q",
                                 timeout=Timeouts(connect=1, read=0.05, total=5)) as s:
            async for e in s:
                seen.append(e.text if isinstance(e, TextDelta) else "")
    assert "".join(seen) == "a"
    assert isinstance(info.value.cause, RequestTimeoutError)
    assert info.value.partial is not None and info.value.partial.text == "a"


async def test_chunk_delay_spaces_the_deltas(client: AsyncClient) -> None:
    client.mock.script(MockReply("a b c", chunk_delay=0.03))
    _, r = await collect(client, "mock/m", "q")
    # five gaps after the first delta: " b", " c", finish, usage, [DONE]
    assert r.latency >= 5 * 0.03
    assert r.text == "a b c"


# --- request log ------------------------------------------------------------------


async def test_requests_record_what_was_sent(client: AsyncClient) -> None:
    tool = Tool("get_weather", "Weather for a city",
                {"type": "object", "properties": {"city": {"type": "string"}}})
    await client.complete("mock/m", [{"role": "system", "content": "sys"},
                                     {"role": "user", "content": "hi"}],
                          tools=[tool], temperature=0.3, max_tokens=50, seed=4)
    await collect(client, "mock/m", "streamed")
    first, second = client.mock.requests
    assert first["model"] == "m"
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert first["tools"][0]["function"]["parameters"]["properties"] == {
        "city": {"type": "string"}}
    assert first["temperature"] == 0.3
    assert first.get("max_tokens", first.get("max_completion_tokens")) == 50
    assert "stream" not in first
    assert second["stream"] is True and second["stream_options"] == {"include_usage": True}
    client.mock.clear()
    assert client.mock.requests == []


async def test_requests_is_a_copy(client: AsyncClient) -> None:
    await client.complete("mock/m", "q")
    client.mock.requests.clear()
    assert len(client.mock.requests) == 1


async def test_concurrent_calls_each_take_exactly_one_reply(client: AsyncClient) -> None:
    client.mock.script(*(MockReply(f"reply {i}") for i in range(50)))
    results = await asyncio.gather(*(client.complete("mock/m", "q") for _ in range(50)))
    assert sorted(r.text for r in results) == sorted(f"reply {i}" for i in range(50))
    assert client.mock.pending == 0


# --- the sync facade ---------------------------------------------------------------


def test_sync_client_scripts_and_streams() -> None:
    with Client(middleware=[]) as c:
        c.mock.script(MockReply("sync hello", tool_calls=[WEATHER]),
                      MockReply("streamed text", usage=(3, 2)))
        r = c.complete("mock/m", "q")
        assert r.text == "sync hello" and r.tool_calls[0].arguments == WEATHER[1]
        with c.stream("mock/m", "q") as s:
            texts = [e.text for e in s if isinstance(e, TextDelta)]
        assert "".join(texts) == "streamed text"
        assert s.response.usage.output_tokens == 2
        assert len(c.mock.requests) == 2
        assert c.complete("mock/echo", "echo me").text == "echo me"


def test_sync_client_scripted_from_another_thread() -> None:
    with Client(middleware=[]) as c:
        t = threading.Thread(target=c.mock.script, args=(MockReply("from a thread"),))
        t.start()
        t.join()
        assert c.complete("mock/m", "q").text == "from a thread"


def test_sync_client_rate_limit() -> None:
    with Client(middleware=[]) as c:
        c.mock.script(MockReply(status=429, headers={"retry-after": "3"}))
        with pytest.raises(RateLimitError) as info:
            c.complete("mock/m", "q")
        assert info.value.retry_after == 3.0


# --- bad scripts -------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"text_chunks": 0}, {"arg_chunks": 0}, {"latency": -1}, {"usage": (1,)},
    {"usage": (1, -2)}, {"tool_calls": [("f", 3)]}, {"tool_calls": ["f"]},
    {"status": "500"}, {"disconnect_after": -1}, {"text": None},
])
def test_bad_replies_are_configuration_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="MockReply"):
        MockReply(**kwargs)


def test_script_rejects_non_replies() -> None:
    with pytest.raises(ConfigurationError, match="MockReply"):
        MockTransport().script("hello")  # type: ignore[arg-type]


async def test_tool_calls_cannot_go_on_the_text_wire(client: AsyncClient) -> None:
    client.mock.script(MockReply(tool_calls=[WEATHER]))
    with pytest.raises(ConfigurationError, match="text completions wire"):
        await client.complete_text("mock/m", "q")
