"""client.health_check(): key present, reachable, latency, breaker, never tokens."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from rawserver import Raw, RawServer

from modelwire import AsyncClient, Client
from modelwire.cli import render
from modelwire.errors import ServerError, UnknownProviderError
from modelwire.health import HealthReport
from modelwire.middleware import BreakerPolicy
from modelwire.pipeline import Timeouts
from modelwire.testing import FaultServer
from modelwire.transports.base import WireRequest

WIRES = ("openai", "anthropic", "gemini")
KEYS = {"openai": "sk-health-secret-1", "anthropic": "ak-health-secret-2",
        "gemini": "gk-health-secret-3"}


def _client(server: FaultServer, **kw: Any) -> AsyncClient:
    return AsyncClient(api_keys=KEYS, base_urls={w: server.url_for(w) for w in WIRES},
                       env={}, **kw)


async def test_every_configured_provider_is_probed_without_spending_tokens() -> None:
    async with FaultServer() as server, _client(server) as client:
        reports = await client.health_check()
        requests = server.requests
    by_name = {r.provider: r for r in reports}
    assert set(WIRES) <= set(by_name)
    for wire in WIRES:
        r = by_name[wire]
        assert (r.key_present, r.reachable, r.breaker, r.error) == (True, True, "closed", None)
        assert r.latency is not None and 0 < r.latency < 5
    assert all(r.method == "GET" for r in requests)  # nothing that could cost tokens
    paths = sorted((r.wire, r.path) for r in requests)
    assert paths == [("anthropic", "/v1/models"), ("gemini", "/v1beta/models"),
                     ("openai", "/v1/models")]
    auth = {r.wire: r.headers for r in requests}
    assert auth["openai"]["authorization"] == f"Bearer {KEYS['openai']}"
    assert auth["anthropic"]["x-api-key"] == KEYS["anthropic"]
    assert auth["anthropic"]["anthropic-version"] == "2023-06-01"
    assert auth["gemini"]["x-goog-api-key"] == KEYS["gemini"]
    assert not any("key" in r.query for r in requests)  # no key in a URL


async def test_named_providers_only_and_a_missing_key_is_reported() -> None:
    async with FaultServer() as server:
        client = AsyncClient(base_urls={"groq": server.url_for("openai")}, env={})
        async with client:
            [report] = await client.health_check(["groq"])
    assert report.provider == "groq" and report.key_present is False
    assert report.reachable is None  # not probed: without a key there is nothing to ask
    assert report.error == "no key: set GROQ_API_KEY"
    assert server.requests == []  # nothing was sent


async def test_no_key_sends_nothing_even_to_an_unresolvable_host() -> None:
    """`modelwire health openai` with no key: 'no key', not a DNS error."""
    async with AsyncClient(env={}) as client:
        [report] = await client.health_check(["openai"])
    assert (report.key_present, report.reachable, report.error) == (
        False, None, "no key: set OPENAI_API_KEY")


async def test_keyless_providers_do_not_read_as_missing_a_key() -> None:
    async with FaultServer() as server:
        client = AsyncClient(base_urls={"llamacpp": server.url_for("openai")}, env={})
        async with client:
            [report] = await client.health_check(["llamacpp"])
    assert (report.key_present, report.key_required, report.reachable, report.error) == (
        False, False, True, None)
    assert render.health_table_rows([report.to_dict()])[0][1] == "not needed"


async def test_an_unreachable_provider_is_reported_not_raised() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = AsyncClient(api_keys={"openai": KEYS["openai"]},
                         base_urls={"openai": f"http://127.0.0.1:{port}/v1"}, env={})
    async with client:
        [report] = await client.health_check(["openai"])
    assert (report.key_present, report.reachable, report.latency) == (True, False, None)
    assert report.error is not None and report.error.startswith("ProviderConnectionError")
    assert KEYS["openai"] not in repr(report.to_dict())


class _Status:
    """A transport stub answering every request with one status."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.sent: list[WireRequest] = []

    async def send(self, request: WireRequest, timeouts: Timeouts) -> Any:
        self.sent.append(request)
        status = self.status

        class Resp:
            headers: Mapping[str, str] = {}

            async def read(self, max_bytes: int | None = None) -> bytes:
                return b'{"data": []}' if status == 200 else b'{"error": {"message": "nope"}}'

            async def iter_chunks(self) -> AsyncIterator[bytes]:
                yield b""

            async def aclose(self) -> None:
                pass

        r = Resp()
        r.status = status  # type: ignore[attr-defined]
        return r

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(("status", "needle"), [(401, "rejected"), (403, "rejected"),
                                                 (500, "HTTP 500")])
async def test_error_statuses_are_reachable_but_not_ok(status: int, needle: str) -> None:
    transport = _Status(status)
    client = AsyncClient(api_keys={"anthropic": KEYS["anthropic"]}, transport=transport, env={})
    [report] = await client.health_check(["anthropic"])
    assert report.reachable is True and report.ok is False
    assert report.error is not None and needle in report.error
    assert KEYS["anthropic"] not in report.error
    assert transport.sent[0].url == "https://api.anthropic.com/v1/models"


async def test_azure_probe_uses_the_deployment_free_models_list() -> None:
    transport = _Status(200)
    client = AsyncClient(api_keys={"azure": "az-secret"},
                         base_urls={"azure": "https://example.openai.azure.com"},
                         transport=transport, env={})
    [report] = await client.health_check(["azure"])
    assert report.ok
    sent = transport.sent[0]
    assert sent.url == "https://example.openai.azure.com/openai/models?api-version=2024-10-21"
    assert sent.headers["api-key"] == "az-secret"


async def test_breaker_state_is_reported() -> None:
    async with FaultServer() as server:
        client = _client(server, max_retries=0,
                         breaker=BreakerPolicy(failures=1, failure_rate=None))
        async with client:
            with pytest.raises(ServerError):
                await client.complete("openai/mw-status-500", "hi")
            reports = {r.provider: r for r in await client.health_check(list(WIRES))}
    assert reports["openai"].breaker == "open"
    assert reports["anthropic"].breaker == "closed"
    no_breaker = AsyncClient(api_keys=KEYS, env={}, breaker=False, transport=_Status(200))
    [r] = await no_breaker.health_check(["openai"])
    assert r.breaker is None


async def test_unknown_provider_names_are_a_typed_error() -> None:
    with pytest.raises(UnknownProviderError):
        await AsyncClient(env={}).health_check(["nosuch"])


def test_report_shape_for_the_cli() -> None:
    r = HealthReport("openai", True, True, 0.12, "closed", None)
    assert list(r.to_dict()) == ["provider", "key_present", "key_required", "reachable",
                                 "latency", "breaker", "error"]
    assert r.ok


def test_the_sync_client_forwards_health_check() -> None:
    with FaultServer.run_in_thread() as server, Client(
            api_keys={"openai": KEYS["openai"]},
            base_urls={"openai": server.url_for("openai")}, env={}) as client:
        [report] = client.health_check(["openai"])
    assert isinstance(report, HealthReport) and report.ok


# --- a probe answered by a redirect or by something that is not a model list -------


@pytest.mark.parametrize(("reply", "needle"), [
    (Raw(302, b"", {"location": "https://evil.example.net/v1/models?x=1"}),
     "HTTP 302, a redirect to evil.example.net"),
    (Raw(301, b""), "HTTP 301, a redirect; check the base URL"),
    (Raw(200, b"<html>captive portal</html>", {"content-type": "text/html"}),
     "did not answer a JSON model list: '<html>captive portal"),
    (Raw.json({"object": "list"}), "did not answer a JSON model list"),
    (Raw.json({"data": "gpt-4o"}), "did not answer a JSON model list"),
    (Raw.json(42), "did not answer a JSON model list"),
])
async def test_a_redirect_or_a_non_model_list_is_unhealthy(reply: Raw, needle: str) -> None:
    async with RawServer() as server:
        server.script(reply)
        client = AsyncClient(api_keys={"openai": KEYS["openai"]}, env={},
                             base_urls={"openai": server.url + "/v1"})
        async with client:
            [report] = await client.health_check(["openai"])
    assert report.reachable and not report.ok
    assert report.error is not None and needle in report.error, report.error
    assert KEYS["openai"] not in report.error
    assert [r[1] for r in server.requests] == ["/v1/models"]  # the redirect was not followed


@pytest.mark.parametrize(("provider", "body"), [
    ("openai", {"object": "list", "data": [{"id": "gpt-4o"}]}),
    ("anthropic", {"data": [{"id": "claude-x"}], "has_more": False}),
    ("gemini", {"models": [{"name": "models/gemini-2.5-flash"}]}),
])
async def test_a_model_list_is_healthy(provider: str, body: object) -> None:
    async with RawServer() as server:
        server.script(Raw.json(body))
        suffix = "/v1" if provider == "openai" else ""
        client = AsyncClient(api_keys={provider: "k"}, env={},
                             base_urls={provider: server.url + suffix})
        async with client:
            [report] = await client.health_check([provider])
    assert report.ok, report.error
