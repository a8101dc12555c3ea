"""The public surface: pinned names, configuration errors before traffic, parity."""

from __future__ import annotations

import inspect

import pytest

import modelwire
from modelwire import AsyncClient, Client
from modelwire.errors import (
    ConfigurationError,
    InvalidMessageError,
    InvalidModelError,
    InvalidParameterError,
    MissingAPIKeyError,
    UnknownProviderError,
)

PINNED = {
    "AllTargetsFailedError", "AsyncClient", "Attempt", "AuthenticationError", "BadRequestError",
    "CircuitOpenError", "Client", "ClientRateLimitError", "ConfigurationError",
    "ContextWindowExceededError", "ImagePart", "InvalidMessageError", "InvalidModelError",
    "MalformedResponseError", "Message", "MissingAPIKeyError", "MissingDependencyError",
    "ModelwireError", "NotFoundError", "OverloadedError", "PermissionDeniedError",
    "ProviderConnectionError", "ProviderError", "RateLimitError", "ReasoningDelta",
    "RedirectError", "RequestTimeoutError", "Response", "ResponseTooLargeError", "ServerError",
    "StreamEvent", "StreamInterruptedError",
    "TextDelta", "TextPart", "Timeouts", "Tool", "ToolCall", "ToolCallArgumentsDelta",
    "ToolCallEnd", "ToolCallStart", "UnknownProviderError", "UnsupportedFeatureError", "Usage",
    "UsageUpdate", "__version__",
    "InvalidParameterError",
    "BudgetExceededError", "TokenCount", "count_tokens",
    # tools and structured output (issue 9)
    "Embeddings", "MaxTurnsExceededError", "StructuredOutputError", "tool",
}


def test_all_is_pinned() -> None:
    assert set(modelwire.__all__) == PINNED
    for name in modelwire.__all__:
        assert hasattr(modelwire, name), name


def test_sync_and_async_clients_have_the_same_public_methods() -> None:
    def public(cls: type) -> dict[str, list[str]]:
        return {n: list(inspect.signature(f).parameters)
                for n, f in inspect.getmembers(cls, inspect.isfunction)
                if not n.startswith("_") and n not in ("aclose", "close", "resolve", "plan",
                                                       "build_call", "transport_for")}
    a, s = public(AsyncClient), public(Client)
    for name in a:
        assert name in s or name == "health_check", f"Client lacks {name}"
        if name in s:
            assert a[name] == s[name], name


MSG = [{"role": "user", "content": "hi"}]


async def test_model_id_errors_are_typed_and_raised_before_traffic() -> None:
    client = AsyncClient(middleware=[], env={})
    with pytest.raises(InvalidModelError, match="'<provider>/<model>'"):
        await client.complete("gpt-4o", MSG)
    with pytest.raises(UnknownProviderError, match=r"known providers: .*openai"):
        await client.complete("nosuch/model", MSG)
    with pytest.raises(MissingAPIKeyError, match="OPENAI_API_KEY"):
        await client.complete("openai/gpt-4o-mini", MSG)
    with pytest.raises(MissingAPIKeyError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        await client.complete("gemini/gemini-2.5-flash", MSG)
    with pytest.raises(InvalidModelError, match="AZURE_OPENAI_ENDPOINT"):
        await client.complete("azure/my-deployment", MSG)
    assert all(issubclass(e, ConfigurationError) for e in (
        InvalidModelError, UnknownProviderError, MissingAPIKeyError))


@pytest.mark.parametrize("messages, match", [
    ([], "messages is empty"),
    ([{"role": "robot", "content": "x"}], "role 'robot'"),
    ([{"content": "x"}], "role None"),
    (["hello"], "expected a dict"),
    ([{"role": "user", "content": 42}], "content is a int"),
    ([{"role": "user", "content": [{"type": "audio"}]}], "unsupported type 'audio'"),
    ([{"role": "tool", "content": "42"}], "tool_call_id"),
    ([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}],
     "not JSON"),
    ([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}],
     "must be a JSON object"),
    (None, "messages is None"),
    (123, "messages is a int"),
    ({"role": "user", "content": "hi"}, "messages is a dict"),
])
async def test_malformed_messages_are_typed_errors(messages: list, match: str) -> None:
    client = AsyncClient(middleware=[], api_keys={"openai": "sk-test"})
    with pytest.raises(InvalidMessageError, match=match):
        await client.complete("openai/gpt-4o-mini", messages)


def test_model_id_keeps_everything_after_the_first_slash() -> None:
    client = AsyncClient(middleware=[], api_keys={"openrouter": "k"})
    target = client.resolve("openrouter/anthropic/claude-3.5-sonnet")
    assert (target.provider, target.model) == ("openrouter", "anthropic/claude-3.5-sonnet")


def test_arguments_override_environment_and_keys_stay_out_of_reprs() -> None:
    env = {"OPENAI_API_KEY": "sk-env-SECRET", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    client = AsyncClient(middleware=[], env=env, api_keys={"openai": "sk-arg-SECRET"})
    target = client.resolve("openai/gpt-4o-mini")
    assert target.api_key == "sk-arg-SECRET"
    assert target.base_url == "http://127.0.0.1:9/v1"
    for text in (repr(target), repr(client), repr(client.settings),
                 repr(client.build_call("openai/x", MSG))):
        assert "SECRET" not in text


def test_missing_key_message_names_the_variable() -> None:
    err = MissingAPIKeyError("anthropic", ("ANTHROPIC_API_KEY",))
    assert "ANTHROPIC_API_KEY" in str(err)


def test_default_model_detection_order_ends_with_local() -> None:
    from modelwire.config import Settings
    assert Settings(env={}).default_model() == "local/smollm2-135m-instruct"
    assert Settings(env={"GEMINI_API_KEY": "g"}).default_model() == "gemini/gemini-2.5-flash"
    both = {"GEMINI_API_KEY": "g", "ANTHROPIC_API_KEY": "a"}
    assert Settings(env=both).default_model().startswith("anthropic/")


@pytest.mark.parametrize("url", ["notaurl?key=sk-LEAKED", "ftp://host/v1", "https://?key=sk-LEAKED"])
async def test_malformed_base_url_is_a_configuration_error_that_does_not_echo_it(url: str) -> None:
    client = AsyncClient(api_keys={"openai": "k"}, base_urls={"openai": url})
    with pytest.raises(InvalidModelError, match="not an http\\(s\\) URL") as info:
        await client.complete("openai/gpt-4o-mini", MSG)
    assert "LEAKED" not in str(info.value)
    assert "LEAKED" not in repr(client.settings)


def test_nan_and_infinite_retry_after_are_ignored() -> None:
    from modelwire.errors import parse_retry_after
    assert parse_retry_after({"retry-after": "nan"}) is None
    assert parse_retry_after({"retry-after-ms": "inf", "retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "-5"}) == 0.0


async def test_stop_must_be_strings() -> None:
    client = AsyncClient(middleware=[], api_keys={"openai": "sk-test"})
    with pytest.raises(InvalidParameterError, match="stop must be"):
        await client.complete("openai/gpt-4o-mini", MSG, stop=5)


def test_one_client_survives_a_new_event_loop_and_closes_with_close() -> None:
    import asyncio

    from modelwire.testing import FaultServer

    with FaultServer.run_in_thread() as server:
        client = AsyncClient(middleware=[], api_keys={"openai": "k"},
                             base_urls={"openai": server.url_for("openai")})

        async def once() -> str:
            return (await client.complete("openai/gpt-4o-mini", MSG)).text

        first, second = asyncio.run(once()), asyncio.run(once())
        assert first == second and first
        asyncio.run(client.close())


def test_transport_errors_never_quote_a_query_string() -> None:
    from modelwire.transports.http import _no_query, _origin
    assert _origin("https://h.example?key=SECRET") == "https://h.example"
    assert "SECRET" not in _no_query("Cannot connect to https://h/v1/x?key=SECRET: refused")
