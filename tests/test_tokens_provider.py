"""Provider counts: Anthropic count_tokens and Gemini countTokens through the client chain."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml
from aiohttp import web
from wirekit import WIRE

from modelwire import AsyncClient, Client
from modelwire.errors import NotFoundError


class CountServer:
    """127.0.0.1 server: scripted (status, body) answers; records every request."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, Any]] = []
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path_qs, await request.json(), dict(request.headers)))
        status, body = self.answers.pop(0)
        return web.json_response(body, status=status, headers={"retry-after": "0"})


@pytest.fixture
async def server() -> AsyncIterator[CountServer]:
    s = CountServer()
    app = web.Application()
    app.router.add_post("/{tail:.*}", s.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    s.url = f"http://127.0.0.1:{port}"
    yield s
    await runner.cleanup()


def client_for(server: CountServer) -> AsyncClient:
    return AsyncClient(api_keys={"anthropic": "sk-ant-test", "gemini": "g-test"},
                       base_urls={"anthropic": server.url, "gemini": server.url})


MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]


async def test_anthropic_count_tokens_is_a_provider_count_retried_like_any_call(
        server: CountServer) -> None:
    server.answers = [(529, {"type": "error", "error": {"type": "overloaded_error",
                                                         "message": "busy"}}),
                      (200, {"input_tokens": 42})]
    async with client_for(server) as client:
        c = await client.count_tokens("anthropic/claude-sonnet-4-5", MSGS, tools=TOOLS)
    assert (c.tokens, c.provenance) == (42, "provider")
    path, body, headers = server.requests[-1]
    assert path == "/v1/messages/count_tokens" and len(server.requests) == 2
    assert body["model"] == "claude-sonnet-4-5" and body["system"] == "Be brief."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    assert body["tools"][0]["name"] == "get_weather"
    assert "max_tokens" not in body and "stream" not in body
    assert headers["x-api-key"] == "sk-ant-test"


async def test_gemini_count_tokens_wraps_the_generate_request(server: CountServer) -> None:
    server.answers = [(200, {"totalTokens": 17, "promptTokensDetails": []})]
    async with client_for(server) as client:
        c = await client.count_tokens("gemini/gemini-2.5-flash", MSGS, tools=TOOLS)
    assert (c.tokens, c.provenance) == (17, "provider")
    path, body, _ = server.requests[0]
    assert path == "/v1beta/models/gemini-2.5-flash:countTokens"
    req = body["generateContentRequest"]
    assert req["model"] == "models/gemini-2.5-flash"
    assert req["contents"][0]["parts"][0]["text"] == "hello"
    assert req["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert req["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"


@pytest.mark.parametrize(("fixture", "model"), [
    ("anthropic/test_anthropic_count_tokens_error.yaml", "anthropic/claude-does-not-exist"),
    ("gemini/TestGoogle.test_count_tokens_error.yaml", "gemini/nonexistent-model"),
])
async def test_recorded_count_tokens_errors_are_typed(server: CountServer, fixture: str,
                                                      model: str) -> None:
    rec = yaml.safe_load((WIRE / fixture).read_text())["interactions"][0]["response"]
    server.answers = [(rec["status"]["code"], rec["parsed_body"])]
    async with client_for(server) as client:
        with pytest.raises(NotFoundError) as info:
            await client.count_tokens(model, text="hello")
    assert model.split("/")[1] in str(info.value)
    for secret in ("sk-ant-test", "g-test"):
        assert secret not in str(info.value) and secret not in repr(info.value)


async def test_malformed_count_answer_is_typed(server: CountServer) -> None:
    from modelwire.errors import MalformedResponseError
    server.answers = [(200, {"tokens": "many"})]
    async with AsyncClient(api_keys={"anthropic": "k"}, base_urls={"anthropic": server.url},
                           max_retries=0) as client:
        with pytest.raises(MalformedResponseError):
            await client.count_tokens("anthropic/claude-sonnet-4-5", text="hi")


def test_sync_client_counts_offline_for_openai_models() -> None:
    with Client(env={}) as client:
        c = client.count_tokens("openai/gpt-4o-mini", [{"role": "user", "content": "hi"}])
    assert c.provenance == "exact" and c.tokens == 8
    assert json.dumps(c.to_dict())


async def test_provider_counts_are_not_model_calls(server: CountServer) -> None:
    from modelwire.observe.budget import Budget
    server.answers = [(200, {"input_tokens": 5000})]
    async with AsyncClient(api_keys={"anthropic": "k"}, base_urls={"anthropic": server.url},
                           budget=Budget(tokens=10)) as client:
        c = await client.count_tokens("anthropic/claude-sonnet-4-5", "hello " * 1000)
        assert c.tokens == 5000
        assert client.budgets is not None and client.metrics is not None
        assert (await client.budgets.status())["client"]["tokens"] == 0
        assert client.metrics.snapshot()["models"] == {}


async def test_a_negative_provider_count_is_a_malformed_answer(server: CountServer) -> None:
    from modelwire.errors import MalformedResponseError
    server.answers = [(200, {"input_tokens": -5}), (200, {"totalTokens": -1})]
    async with client_for(server) as client:
        with pytest.raises(MalformedResponseError, match="negative count"):
            await client.count_tokens("anthropic/claude-sonnet-4-5", MSGS)
        with pytest.raises(MalformedResponseError, match="negative count"):
            await client.count_tokens("gemini/gemini-2.5-flash", MSGS)


async def test_failing_counts_do_not_open_the_models_breaker(server: CountServer) -> None:
    from modelwire.errors import ServerError
    busy = {"type": "error", "error": {"type": "api_error", "message": "count is down"}}
    answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
              "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
              "usage": {"input_tokens": 3, "output_tokens": 1}}
    server.answers = [(500, busy)] * 8 + [(200, answer)]
    async with AsyncClient(api_keys={"anthropic": "k"}, base_urls={"anthropic": server.url},
                           max_retries=0) as client:
        for _ in range(8):  # more failures than the breaker's threshold (5)
            with pytest.raises(ServerError):  # was CircuitOpenError from the 6th on
                await client.count_tokens("anthropic/claude-x", "hi")
        r = await client.complete("anthropic/claude-x", "hi")  # was refused: breaker open
    assert r.text == "hi" and server.requests[-1][0] == "/v1/messages"
