"""The breaker counts what users see: malformed 200s and streams cut or corrupted
mid-way are failures; a stream the caller closes early counts as nothing.

Real HTTP exchanges with the raw server on 127.0.0.1; an explicit policy (3
consecutive failures, no rate rule) so the test does not depend on defaults.
"""

from __future__ import annotations

import json

import pytest
from rawserver import Raw, RawServer

from modelwire import AsyncClient
from modelwire.errors import (
    CircuitOpenError,
    MalformedResponseError,
    ModelwireError,
    StreamInterruptedError,
)
from modelwire.middleware import Breaker, BreakerPolicy
from modelwire.middleware.breaker import Verdict, verdict

MODEL = "openai/gpt-4o"
GOOD = {"id": "c", "model": "gpt-4o", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}
GARBAGE = {"id": "c", "choices": [{"index": 0, "message": None, "finish_reason": "stop"}]}


def chunk(content: object, finish: str | None = None) -> dict[str, object]:
    return {"id": "c", "choices": [{"index": 0, "delta": {"content": content},
                                    "finish_reason": finish}]}


CUT = Raw.sse_paced(chunk("Hel"), chunk("lo"))  # no finish, no [DONE]: the server cut it
CORRUPT = Raw.sse_paced(chunk("Hel"), chunk(42), chunk("", "stop"), done=True)
WHOLE = Raw.sse(chunk("Hel"), chunk("lo", "stop"), done=True)


def client_for(server: RawServer) -> tuple[AsyncClient, Breaker]:
    breaker = Breaker(BreakerPolicy(failures=3, failure_rate=None, cooldown=600))
    return AsyncClient(middleware=[breaker], api_keys={"openai": "k"},
                       base_urls={"openai": server.url + "/v1"}), breaker


async def test_ten_garbage_answers_in_a_row_open_it() -> None:
    async with RawServer() as server:
        server.script(*[Raw.json(GARBAGE)] * 10)
        client, breaker = client_for(server)
        async with client:
            errors = []
            for _ in range(10):
                try:
                    await client.complete(MODEL, "hi")
                except ModelwireError as e:
                    errors.append(type(e))
            target = client.resolve(MODEL)
            assert await breaker.state(target) == "open"
    assert errors == [MalformedResponseError] * 3 + [CircuitOpenError] * 7
    assert len(server.requests) == 3  # no traffic once open


async def drain(client: AsyncClient) -> type[ModelwireError] | None:
    try:
        async with client.stream(MODEL, "hi") as s:
            async for _ in s:
                pass
    except ModelwireError as e:
        return type(e)
    return None


@pytest.mark.parametrize("bad", [CUT, CORRUPT], ids=["cut", "corrupt"])
async def test_streams_cut_or_corrupted_mid_way_open_it(bad: Raw) -> None:
    async with RawServer() as server:
        server.script(*[bad] * 5)
        client, breaker = client_for(server)
        async with client:
            outcomes = [await drain(client) for _ in range(5)]
            assert await breaker.state(client.resolve(MODEL)) == "open"
    assert outcomes == [StreamInterruptedError] * 3 + [CircuitOpenError] * 2
    assert len(server.requests) == 3


async def test_whole_streams_and_early_closes_never_open_it() -> None:
    async with RawServer() as server:
        server.script(CUT, CUT, WHOLE, CUT, CUT, *[WHOLE] * 3)
        client, breaker = client_for(server)
        async with client:
            outcomes = [await drain(client) for _ in range(5)]
            for _ in range(3):  # the caller stops reading after the first event
                async with client.stream(MODEL, "hi") as s:
                    async for _event in s:
                        break
            assert await breaker.state(client.resolve(MODEL)) == "closed"
            server.script(CUT)  # one more cut: the streak is 3 only if early closes
            assert await drain(client) is StreamInterruptedError  # were neutral
            assert await breaker.state(client.resolve(MODEL)) == "open"
    # a whole stream reset the streak: 2 cuts, success, 2 cuts -> still closed
    assert outcomes == [StreamInterruptedError, StreamInterruptedError, None,
                        StreamInterruptedError, StreamInterruptedError]


async def test_a_stream_that_ends_while_primed_counts_as_a_success() -> None:
    """No content event at all (an empty answer): the stream is whole before the
    breaker sees it, and still resets the streak."""
    empty = Raw.sse({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                    done=True)
    async with RawServer() as server:
        server.script(CUT, CUT, empty, CUT)
        client, breaker = client_for(server)
        async with client:
            outcomes = [await drain(client) for _ in range(4)]
            assert await breaker.state(client.resolve(MODEL)) == "closed"
    assert outcomes == [StreamInterruptedError, StreamInterruptedError, None,
                        StreamInterruptedError]


def test_verdicts() -> None:
    assert verdict(MalformedResponseError("x")) is Verdict.FAILURE
    assert verdict(StreamInterruptedError("x")) is Verdict.FAILURE  # no cause: cut
    assert verdict(StreamInterruptedError("x", cause=MalformedResponseError("y"))) \
        is Verdict.FAILURE
    from modelwire.errors import BadRequestError
    assert verdict(StreamInterruptedError("x", cause=BadRequestError("y", status=400))) \
        is Verdict.SUCCESS
    assert verdict(None) is Verdict.NEUTRAL
    json.dumps(GOOD)  # the fixture is JSON
