"""Every bad call argument is a typed error before any traffic.

A raw server on 127.0.0.1 counts requests: each case asserts none arrived.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from rawserver import Raw, RawServer

from modelwire import AsyncClient, Timeouts, Tool
from modelwire.errors import (
    ConfigurationError,
    InvalidMessageError,
    InvalidModelError,
    InvalidParameterError,
)
from modelwire.providers.base import dumps

OK = Raw.json({"id": "c", "model": "m", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]})

BAD_SCHEMA = {"type": "object", "properties": {"a": {"type": "strng"}}}


@pytest.mark.parametrize(("kwargs", "kind", "needle"), [
    ({"extra": {"x": object()}}, InvalidParameterError, "extra must hold only JSON"),
    ({"extra": {"x": float("nan")}}, InvalidParameterError, "extra must hold only JSON"),
    ({"extra": {"x": [math.inf]}}, InvalidParameterError, "extra must hold only JSON"),
    ({"extra": {1: "a"}}, InvalidParameterError, "keys must be strings"),
    ({"extra": "stream"}, InvalidParameterError, "extra must be a dict"),
    ({"tools": [Tool("f", parameters="str")]}, InvalidParameterError,  # type: ignore[arg-type]
     "parameters must be a JSON Schema object"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "str"}}]},
     InvalidParameterError, "parameters must be a JSON Schema object"),
    ({"tools": [Tool("f", parameters=BAD_SCHEMA)]}, InvalidParameterError,
     "not a valid JSON Schema at properties/a/type"),
    ({"tools": [Tool("f", parameters={"type": "string"})]}, InvalidParameterError,
     "must describe an object"),
    ({"tools": [Tool("f", parameters={"type": "object", "x": math.nan})]},
     InvalidParameterError, "parameters must be JSON"),
    ({"tools": [Tool("", parameters={"type": "object"})]}, InvalidParameterError,
     "non-empty string name"),
    ({"tools": "f"}, InvalidMessageError, "pass a list of tools"),
    ({"timeout": "x"}, InvalidParameterError, "timeout must be a positive number"),
    ({"timeout": 0}, InvalidParameterError, "timeout must be a positive number"),
    ({"timeout": -1.0}, InvalidParameterError, "timeout must be a positive number"),
    ({"timeout": math.nan}, InvalidParameterError, "timeout must be a positive number"),
    ({"timeout": True}, InvalidParameterError, "timeout must be a positive number"),
    ({"timeout": Timeouts(read=-1)}, InvalidParameterError,
     "Timeouts.read must be a positive number"),
    ({"timeout": Timeouts(total=math.inf)}, InvalidParameterError, "Timeouts.total"),
    ({"temperature": math.nan}, InvalidParameterError, "temperature must be a number"),
    ({"temperature": "hot"}, InvalidParameterError, "temperature must be a number from 0 to 2"),
    ({"temperature": 2.5}, InvalidParameterError, "temperature must be from 0 to 2"),
    ({"temperature": -0.1}, InvalidParameterError, "temperature must be from 0 to 2"),
    ({"temperature": True}, InvalidParameterError, "temperature must be a number"),
    ({"top_p": 5}, InvalidParameterError, "top_p must be from 0 to 1"),
    ({"top_p": math.inf}, InvalidParameterError, "top_p must be a number"),
    ({"seed": "x"}, InvalidParameterError, "seed must be an int"),
    ({"seed": True}, InvalidParameterError, "seed must be an int"),
    ({"seed": 1.5}, InvalidParameterError, "seed must be an int"),
    ({"seed": 2**64}, InvalidParameterError, "seed must be an int from"),
    ({"seed": -2**63 - 1}, InvalidParameterError, "(a 64-bit integer)"),
    ({"max_tokens": True}, InvalidParameterError, "max_tokens must be a positive int"),
    ({"max_tokens": 0}, InvalidParameterError, "max_tokens must be a positive int"),
    ({"max_tokens": 1.5}, InvalidParameterError, "max_tokens must be a positive int"),
    ({"max_tokens": "10"}, InvalidParameterError, "max_tokens must be a positive int"),
    ({"stop": 5}, InvalidParameterError, "stop must be a string or a list of strings"),
    ({"stop": ["a", 1]}, InvalidParameterError, "stop must be a string or a list of strings"),
    ({"stop": ["s"] * 33}, InvalidParameterError, "at most 32"),
    ({"stop": ""}, InvalidParameterError, "empty string"),  # ended every answer at once
    ({"stop": ["END", ""]}, InvalidParameterError, "empty string"),
    ({"stream": True}, InvalidParameterError, "does not take stream"),
    ({"fallbacks": "openai/gpt-4o"}, InvalidParameterError, "fallbacks must be a list"),
    ({"breaker": "off"}, InvalidParameterError, "breaker (per call) must be True or False"),
    ({"prompt": "x"}, InvalidParameterError, "does not take prompt"),
])
async def test_bad_arguments_are_typed_and_send_nothing(kwargs: dict[str, Any], kind: type,
                                                        needle: str) -> None:
    async with RawServer() as server:
        server.default = OK
        async with AsyncClient(middleware=[], api_keys={"openai": "sk-test"},
                               base_urls={"openai": server.url + "/v1"}) as client:
            with pytest.raises(kind) as info:
                await client.complete("openai/gpt-4o", "hi", **kwargs)
            assert needle in str(info.value), str(info.value)
            assert isinstance(info.value, ConfigurationError)
            with pytest.raises(kind):  # streams check the same way
                kw = {k: v for k, v in kwargs.items() if k != "stream"}
                if "stream" in kwargs:
                    kw["stream"] = False
                await client.stream("openai/gpt-4o", "hi", **kw).open()
            # the same client still works: the error was about the arguments only
            assert (await client.complete("openai/gpt-4o", "hi")).text == "ok"
        assert len(server.requests) == 1  # only the good call above


@pytest.mark.parametrize("model", ["openai/", "openai/   ", "anthropic/"])
async def test_an_empty_model_name_is_rejected_not_the_default_model(model: str) -> None:
    async with RawServer() as server:
        async with AsyncClient(middleware=[], api_keys={"openai": "k", "anthropic": "k"},
                               base_urls={"openai": server.url + "/v1"}) as client:
            with pytest.raises(InvalidModelError, match="names no model"):
                await client.complete(model, "hi")
            with pytest.raises(InvalidModelError, match="names no model"):
                await client.complete("openai/gpt-4o", "hi", fallbacks=[model])
        assert server.requests == []


async def test_an_unknown_keyword_lists_every_real_keyword() -> None:
    async with AsyncClient(middleware=[], api_keys={"openai": "k"}) as client:
        with pytest.raises(InvalidParameterError) as info:
            await client.complete("openai/gpt-4o", "hi", temprature=0.2)
    message = str(info.value)
    assert "temprature" in message
    for name in ("temperature", "max_tokens", "stop", "top_p", "seed", "timeout", "extra",
                 "tools", "tool_choice", "fallbacks", "max_retries", "breaker"):
        assert name in message, name


@pytest.mark.parametrize("timeout", ["x", 0, -5, math.nan, Timeouts(connect=0)])
def test_a_bad_client_timeout_is_typed(timeout: Any) -> None:
    with pytest.raises(InvalidParameterError, match="positive number"):
        AsyncClient(middleware=[], timeout=timeout)


def test_client_fallbacks_must_be_a_list() -> None:
    with pytest.raises(InvalidParameterError, match="fallbacks must be a list"):
        AsyncClient(middleware=[], fallbacks="openai/gpt-4o")  # type: ignore[arg-type]


async def test_good_arguments_go_out_exactly() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    async with RawServer() as server:
        server.default = OK
        async with AsyncClient(middleware=[], api_keys={"openai": "k"},
                               base_urls={"openai": server.url + "/v1"}) as client:
            await client.complete("openai/gpt-4o", "hi", temperature=0, top_p=1, seed=-3,
                                  max_tokens=5, stop="x", timeout=Timeouts(read=None),
                                  tools=[Tool("f", parameters=schema)],
                                  extra={"user": "u", "logit_bias": {"1": -100}})
    body = json.loads(server.requests[0][2])
    assert (body["temperature"], body["top_p"], body["seed"], body["max_completion_tokens"],
            body["stop"], body["user"]) == (0, 1, -3, 5, ["x"], "u")
    assert body["tools"][0]["function"]["parameters"] == schema


def test_nan_never_goes_out_on_the_wire() -> None:
    with pytest.raises(InvalidParameterError, match="cannot be encoded as JSON"):
        dumps({"temperature": math.nan})
    with pytest.raises(InvalidParameterError, match="cannot be encoded as JSON"):
        dumps({"x": object()})
    assert dumps({"x": 1.5, "y": "é"}) == '{"x":1.5,"y":"é"}'.encode()
