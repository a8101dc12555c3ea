"""API keys as careless users set them: a trailing newline, spaces, a stray space inside.

Regression: a key read from a file with its newline raised aiohttp's raw
ValueError ("Forbidden control character detected in headers") from inside
the call; a whitespace-only OPENAI_API_KEY counted as configured.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import modelwire
from modelwire.testing import FaultServer


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer.run_in_thread() as s:
        yield s


@pytest.mark.parametrize("key", ["sk-abc123\n", " sk-abc123 ", "\tsk-abc123\r\n"])
def test_surrounding_whitespace_is_stripped(server: FaultServer, key: str) -> None:
    for client in (modelwire.Client(env={"OPENAI_API_KEY": key}, max_retries=0,
                                    base_urls={"openai": server.url_for("openai")}),
                   modelwire.Client(api_keys={"openai": key}, env={}, max_retries=0,
                                    base_urls={"openai": server.url_for("openai")})):
        with client:
            assert client.complete("openai/gpt-4o", "hi").text
        assert server.requests[-1].headers["authorization"] == "Bearer sk-abc123"


@pytest.mark.parametrize("key", ["sk-abc def", "sk-abc\ndef", "sk-\x00abc"])
def test_whitespace_inside_a_key_is_a_configuration_error(key: str) -> None:
    with modelwire.Client(env={"OPENAI_API_KEY": key}, max_retries=0) as client, \
            pytest.raises(modelwire.ConfigurationError, match="OPENAI_API_KEY contains") as info:
        client.complete("openai/gpt-4o", "hi")
    assert key not in str(info.value) and "abc" not in str(info.value)


@pytest.mark.parametrize("key", ["", "   ", "\n"])
def test_a_blank_key_is_no_key(key: str) -> None:
    with modelwire.Client(env={"OPENAI_API_KEY": key}) as client, \
            pytest.raises(modelwire.MissingAPIKeyError, match="OPENAI_API_KEY"):
        client.complete("openai/gpt-4o", "hi")
    from modelwire.compat import ProviderManager
    assert "openai" not in ProviderManager({"OPENAI_API_KEY": key},
                                           which=lambda _: None).detect_available_providers()


def test_a_non_string_key_is_a_configuration_error() -> None:
    # refused when the client is built, before any call (and the value is never echoed)
    with pytest.raises(modelwire.ConfigurationError, match="is a int") as e:
        modelwire.Client(api_keys={"openai": 12345})
    assert "12345" not in str(e.value)
