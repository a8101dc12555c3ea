"""Client-level wiring: per-call option names, hooks, stream provenance and usage."""

from __future__ import annotations

from typing import Any

import pytest

from modelwire import AsyncClient
from modelwire.errors import ConfigurationError
from modelwire.hooks import Hooks
from modelwire.middleware.fallback import Fallback
from modelwire.middleware.ratelimit import RateLimit, RateLimiter
from modelwire.mock import MockReply
from modelwire.registry import get_spec


async def test_misspelt_per_call_option_is_a_clear_error_before_traffic() -> None:
    client = AsyncClient()
    with pytest.raises(ConfigurationError, match=r"max_retires.*max_retries"):
        await client.complete("mock/echo", "hi", max_retires=3)
    assert client.mock.requests == []
    resp = await client.complete("mock/echo", "hi", max_retries=0, breaker=False)
    assert resp.text == "hi"


def test_hooks_exist_with_custom_middleware_too() -> None:
    assert isinstance(AsyncClient(middleware=[]).hooks, Hooks)
    assert isinstance(AsyncClient().hooks, Hooks)


async def test_streamed_response_records_what_fallback_tried() -> None:
    client = AsyncClient(middleware=[Fallback()])
    client.mock.script(MockReply(status=503), MockReply("from the fallback"))
    async with client.stream("mock/primary", "hi", fallbacks=["mock/secondary"]) as s:
        text = "".join([e.text async for e in s if hasattr(e, "text")])
    assert text == "from the fallback"
    tried = [(a.model, a.error is None) for a in s.response.attempts]
    assert tried == [("primary", False), ("secondary", True)]


class _Backend:
    def __init__(self) -> None:
        self.adjustments: list[int] = []

    async def acquire(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> float:
        self.charged = tokens
        return 0.0

    async def adjust_tokens(self, key: str, tpm: int, delta: int) -> None:
        self.adjustments.append(delta)

    def __getattr__(self, name: str) -> Any:  # other protocol members are not used here
        raise AttributeError(name)


async def test_token_limiter_corrects_a_streams_estimate_by_its_reported_usage() -> None:
    backend = _Backend()
    limiter = RateLimiter({"mock": RateLimit(tpm=100_000, output_tokens=50)}, backend=backend)
    client = AsyncClient(middleware=[limiter])
    client.mock.script(MockReply("one two three", usage=(7, 3)))
    async with client.stream("mock/echo", "hello") as s:
        async for _ in s:
            pass
    assert s.response.usage.total_tokens == 10
    assert backend.adjustments == [10 - backend.charged]


async def test_a_stream_cut_before_any_output_falls_back() -> None:
    client = AsyncClient(max_retries=0)
    client.mock.script(MockReply("lost", truncate_after=0), MockReply("served"))
    async with client.stream("mock/primary", "hi", fallbacks=["mock/secondary"]) as s:
        async for _ in s:
            pass
    assert s.response.text == "served"
    assert [a.model for a in s.response.attempts] == ["primary", "secondary"]


@pytest.mark.parametrize("kwargs, needle", [
    ({"api_keys": "sk-SECRET-passed-as-a-string"}, "api_keys must be a dict"),
    ({"api_keys": {"openai": 5}}, "its entry for 'openai' is a int"),
    ({"api_keys": {5: "sk-SECRET"}}, "one of its keys is a int, not a provider name"),
    ({"base_urls": ["http://127.0.0.1:1/v1"]}, "base_urls must be a dict"),
    ({"provider_options": {"azure": "v1"}}, "provider_options must be a dict"),
])
def test_malformed_keys_urls_and_options_are_refused_at_construction(
        kwargs: dict[str, Any], needle: str) -> None:
    """api_keys="sk-..." used to be accepted and fail later with AttributeError."""
    with pytest.raises(ConfigurationError) as info:
        AsyncClient(**kwargs)
    assert needle in str(info.value)
    assert "SECRET" not in str(info.value)  # a key passed the wrong way is never echoed


async def test_a_key_of_none_counts_as_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    client = AsyncClient(api_keys={"openai": None})  # e.g. os.environ.get("...") unset
    assert client.settings.api_key(get_spec("openai")) == "sk-from-the-environment"
    await client.aclose()
