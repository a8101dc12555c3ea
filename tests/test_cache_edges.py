"""The response cache at its edges: per-call options, what a Response says,
cancelled leaders, cut and concurrent streams, broken disk files."""

from __future__ import annotations

import pytest

from modelwire import AsyncClient
from modelwire.errors import ConfigurationError, InvalidParameterError

MODEL = "mock/cached"


# --- the per-call option ------------------------------------------------------------


async def test_cache_true_on_a_call_of_a_client_without_a_cache_is_an_error() -> None:
    for client in (AsyncClient(), AsyncClient(middleware=[])):
        with pytest.raises(ConfigurationError, match=r"AsyncClient\(cache=True\)"):
            await client.complete(MODEL, "hi", cache=True)
        assert not client.mock.requests
        # cache=False asks for nothing a client without a cache cannot do
        assert not (await client.complete(MODEL, "hi", cache=False)).cached
    # ... whether or not another client in the process has a cache
    AsyncClient(cache=True)
    with pytest.raises(ConfigurationError):
        await AsyncClient().complete(MODEL, "hi", cache=True)


async def test_the_per_call_cache_option_is_a_bool() -> None:
    client = AsyncClient(cache=True)
    with pytest.raises(InvalidParameterError, match="True or False"):
        await client.complete(MODEL, "hi", cache="yes")
    assert not client.mock.requests


async def test_to_dict_says_whether_the_answer_was_cached() -> None:
    client = AsyncClient(cache=True)
    first = await client.complete(MODEL, "hi")
    again = await client.complete(MODEL, "hi")
    assert (first.to_dict()["cached"], again.to_dict()["cached"]) == (False, True)
