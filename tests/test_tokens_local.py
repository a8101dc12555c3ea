"""Exact counts for the embedded GGUF model equal the prompt tokens llama.cpp reports."""

from __future__ import annotations

import pytest

import modelwire
from modelwire import AsyncClient
from modelwire.errors import UnsupportedFeatureError

pytestmark = pytest.mark.llama
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

MODEL = "local/smollm2-135m-instruct"


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
    [{"role": "system", "content": "You are terse."},
     {"role": "user", "content": "日本語で挨拶して 😀"}],
])
async def test_local_count_equals_reported_prompt_tokens(messages: list[dict[str, str]]) -> None:
    count = modelwire.count_tokens(MODEL, messages, use_cache=False)
    assert count.provenance == "exact" and "llama.cpp" in count.method
    async with AsyncClient(middleware=[]) as client:
        r = await client.complete(MODEL, messages, max_tokens=2, temperature=0)
    assert r.usage.source == "reported"
    assert count.tokens == r.usage.input_tokens


def test_local_text_count_and_tools_refused() -> None:
    assert modelwire.count_tokens(MODEL, text="hello world", use_cache=False).tokens >= 2
    with pytest.raises(UnsupportedFeatureError):
        modelwire.count_tokens(MODEL, "hi", tools=[{"name": "f"}], use_cache=False)
