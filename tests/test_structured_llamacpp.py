"""Structured output against a real llama.cpp server (llama-cpp-python's) with SmolLM2."""

from __future__ import annotations

import dataclasses

import pytest
from llama_support import ALIAS, LlamaServer, llama_server  # noqa: F401

from modelwire import AsyncClient

pytestmark = pytest.mark.llama


@dataclasses.dataclass
class Point:
    x: int
    y: int


async def test_grammar_constrained_json_from_the_server(
        llama_server: LlamaServer) -> None:  # noqa: F811
    c = AsyncClient(base_urls={"llamacpp": llama_server.base_url}, middleware=[])
    try:
        r = await c.complete(f"llamacpp/{ALIAS}", "Give a point with x=1 and y=2 as JSON.",
                             response_format=Point, temperature=0, seed=7, max_tokens=40)
    finally:
        await c.aclose()
    assert isinstance(r.parsed, Point)  # the schema's grammar allows nothing else
