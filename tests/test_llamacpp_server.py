"""Interop with a real llama.cpp server (llama-cpp-python's) through the ``llamacpp`` row."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
from llama_support import ALIAS, LlamaServer, llama_server, start_server  # noqa: F401

from modelwire import AsyncClient
from modelwire.errors import (
    BadRequestError,
    ContextWindowExceededError,
    NotFoundError,
    StreamInterruptedError,
)
from modelwire.response import TextDelta

pytestmark = pytest.mark.llama

MODEL = f"llamacpp/{ALIAS}"
GREEDY: dict[str, Any] = {"temperature": 0, "seed": 42}
# SmolLM2's end-of-turn and end-of-text tokens: forbidding them keeps a generation going
NO_EOS = {"logit_bias": {"2": -100, "0": -100}}


@pytest.fixture
async def client(llama_server: LlamaServer) -> AsyncIterator[AsyncClient]:  # noqa: F811
    c = AsyncClient(base_urls={"llamacpp": llama_server.base_url}, middleware=[])
    yield c
    await c.aclose()


async def test_chat_completion(client: AsyncClient) -> None:
    r = await client.complete(MODEL, "What is 2 + 2?", max_tokens=20, **GREEDY)
    assert r.text.strip()
    assert (r.provider, r.model) == ("llamacpp", ALIAS)
    assert r.finish_reason in ("stop", "length")
    assert r.usage.source == "reported" and r.usage.input_tokens > 0
    assert 0 < r.usage.output_tokens <= 20
    assert r.request_id and r.request_id.startswith("chatcmpl-")


async def test_stream_equals_the_non_streamed_answer(client: AsyncClient) -> None:
    whole = await client.complete(MODEL, "Name three fruits.", max_tokens=30, **GREEDY)
    async with client.stream(MODEL, "Name three fruits.", max_tokens=30, **GREEDY) as s:
        deltas = [e.text async for e in s if isinstance(e, TextDelta)]
    assert len(deltas) > 3
    assert "".join(deltas) == s.response.text == whole.text
    assert s.response.finish_reason == whole.finish_reason
    assert s.response.model == ALIAS


async def test_text_completion(client: AsyncClient) -> None:
    r = await client.complete_text(MODEL, "The capital of France is", max_tokens=8, **GREEDY)
    assert r.text.strip() and (r.finish_reason, r.usage.output_tokens) == ("length", 8)
    s = await (await client.stream_text(MODEL, "The capital of France is", max_tokens=8,
                                        **GREEDY)).collect()
    assert s.text == r.text and s.finish_reason == "length"


async def test_a_prompt_over_the_context_is_a_bad_request(client: AsyncClient) -> None:
    # The one request this server refuses with a 4xx; its schema errors come back as 500.
    with pytest.raises(ContextWindowExceededError) as e:
        await client.complete(MODEL, "hello " * 3000)
    assert isinstance(e.value, BadRequestError)
    assert (e.value.status, e.value.code) == (400, "context_length_exceeded")
    assert "maximum context length is 2048" in e.value.message


async def test_a_wrong_path_is_not_found(llama_server: LlamaServer) -> None:  # noqa: F811
    base = llama_server.base_url.replace("/v1", "/nope")
    async with AsyncClient(base_urls={"llamacpp": base}, middleware=[]) as c:
        with pytest.raises(NotFoundError) as e:
            await c.complete(MODEL, "hi", max_tokens=2)
    assert e.value.status == 404


async def test_server_killed_mid_stream_raises_with_the_partial_text() -> None:
    server = start_server()  # its own process: this test kills it
    try:
        async with AsyncClient(base_urls={"llamacpp": server.base_url}, middleware=[]) as c:
            received: list[str] = []
            s = await c.stream(MODEL, "Tell me a very long story.", max_tokens=1500,
                               extra=NO_EOS, **GREEDY)
            with pytest.raises(StreamInterruptedError) as e:
                async for event in s:
                    if isinstance(event, TextDelta):
                        received.append(event.text)
                        if len(received) == 2:
                            os.kill(server.proc.pid, signal.SIGKILL)
                            await asyncio.to_thread(server.proc.wait, 10)
        assert len(received) >= 2
        assert e.value.partial is not None
        assert e.value.partial.text == "".join(received)
        assert e.value.partial.finish_reason == "error"
        assert (e.value.provider, e.value.model) == ("llamacpp", ALIAS)
    finally:
        server.stop()
        server.log.unlink(missing_ok=True)


async def test_a_stream_the_server_interrupts_is_never_passed_off_as_complete(
        client: AsyncClient) -> None:
    # llama-cpp-python's server (interrupt_requests, on by default) abandons a running
    # stream when another request arrives; the caller must learn the answer was cut.
    s = await client.stream(MODEL, "Tell me a long story.", max_tokens=300, extra=NO_EOS,
                            **GREEDY)
    received: list[str] = []
    other = None
    with pytest.raises(StreamInterruptedError) as e:
        async for event in s:
            if isinstance(event, TextDelta):
                received.append(event.text)
                if len(received) == 2:
                    other = asyncio.create_task(client.complete(MODEL, "Hi", max_tokens=3))
    assert e.value.partial is not None and e.value.partial.text == "".join(received)
    assert other is not None and (await other).text  # the request that interrupted it
