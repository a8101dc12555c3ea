"""Embeddings: recorded Azure exchanges, batching, every wire, errors and retries."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from wirekit import load

from modelwire import AsyncClient, Client
from modelwire.errors import (
    AuthenticationError,
    InvalidMessageError,
    RateLimitError,
    UnsupportedFeatureError,
)
from modelwire.mock import MockReply
from modelwire.pipeline import Call, Target
from modelwire.registry import get_codec, get_spec
from modelwire.response import Embeddings
from modelwire.transports.mock import mock_vector

AZURE = load("azure/test_azure_openai_embeddings.yaml")


def azure_call(inputs: list[str]) -> Call:
    spec = get_spec("azure")
    target = Target(spec, "test-deployment", "https://test-resource.openai.azure.com", "key",
                    {"api_version": "2023-07-01-preview"})
    return Call(messages=[], target=target, mode="embed", inputs=inputs)


@pytest.mark.parametrize("it", [it for it in AZURE if it.status == 200], ids=lambda i: i.id)
def test_recorded_azure_embeddings_decode_like_numpy(it: Any) -> None:
    codec = get_codec(get_spec("azure"))
    call = azure_call([it.request["input"]])
    request = codec.encode_embed(call)
    assert request.url == it.uri  # the recorded deployment URL and api-version
    assert json.loads(request.body) == {**it.request, "input": [it.request["input"]],
                                        "model": "test-deployment"}
    assert request.headers["api-key"] == "key"
    result = codec.decode_embed(it.body, it.headers, call)
    assert isinstance(result, Embeddings)
    recorded = it.json()
    expected = np.frombuffer(base64.b64decode(recorded["data"][0]["embedding"]),
                             dtype="<f4").tolist()  # how the openai SDK decodes it
    assert result.vectors == [expected] and len(expected) == 3072  # text-embedding-3-large
    assert result.usage.input_tokens == recorded["usage"]["prompt_tokens"]
    assert result.usage.source == "reported"


def test_recorded_azure_401_is_an_authentication_error() -> None:
    it = next(i for i in AZURE if i.status == 401)
    err = get_codec(get_spec("azure")).classify_error(it.status, it.headers, it.body)
    assert isinstance(err, AuthenticationError) and "invalid subscription key" in err.message


async def test_batches_keep_order_and_sum_usage() -> None:
    c = AsyncClient(middleware=[])
    texts = [f"text number {i}" for i in range(5)]
    e = await c.embed("mock/emb", texts, batch_size=2)
    assert e.vectors == [mock_vector(t) for t in texts]
    assert [r["input"] for r in c.mock.requests] == [texts[:2], texts[2:4], texts[4:]]
    assert e.usage.input_tokens == 15 and e.usage.source == "reported"
    assert e.provider == "mock" and e.model == "emb"


async def test_errors_retries_and_mistakes() -> None:
    c = AsyncClient(max_retries=1)
    c.mock.script(MockReply(status=429, headers={"retry-after": "0"}))
    e = await c.embed("mock/emb", "hello")
    assert e.vectors == [mock_vector("hello")] and len(c.mock.requests) == 2
    strict = AsyncClient(middleware=[])
    strict.mock.script(MockReply(status=429))
    with pytest.raises(RateLimitError):
        await strict.embed("mock/emb", "x")
    with pytest.raises(InvalidMessageError, match="at least one"):
        await strict.embed("mock/emb", [])
    with pytest.raises(InvalidMessageError, match=r"inputs\[1\]"):
        await strict.embed("mock/emb", ["a", 2])  # type: ignore[list-item]
    anthropic = AsyncClient(middleware=[], api_keys={"anthropic": "k"})
    with pytest.raises(UnsupportedFeatureError, match="no embeddings endpoint"):
        await anthropic.embed("anthropic/claude-x", "x")


def test_sync_embed() -> None:
    with Client(middleware=[]) as c:
        assert c.embed("mock/emb", "hi").vectors == [mock_vector("hi")]


class Server:
    def __init__(self, reply: Any) -> None:
        self.reply, self.requests = reply, []  # type: ignore[var-annotated]

    async def __aenter__(self) -> str:
        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            self.requests.append((request.path, dict(request.headers), body))
            return web.json_response(self.reply(body))
        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore

    async def __aexit__(self, *exc: Any) -> None:
        await self.runner.cleanup()


async def test_gemini_batch_embed_contents() -> None:
    server = Server(lambda body: {"embeddings": [{"values": [float(len(r["content"]["parts"]
                                                                   [0]["text"])), 0.5]}
                                                 for r in body["requests"]]})
    async with server as url:
        c = AsyncClient(middleware=[], base_urls={"gemini": url}, api_keys={"gemini": "gk"})
        texts = [f"t{i}" * (i + 1) for i in range(150)]
        e = await c.embed("gemini/text-embedding-004", texts,
                          extra={"taskType": "RETRIEVAL_DOCUMENT"})
        await c.aclose()
    assert [v[0] for v in e.vectors] == [float(len(t)) for t in texts]
    assert len(server.requests) == 2  # Gemini's limit: 100 inputs per request
    path, headers, body = server.requests[0]
    assert path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert headers["x-goog-api-key"] == "gk"
    assert body["requests"][0] == {"model": "models/text-embedding-004",
                                   "content": {"parts": [{"text": "t0"}]},
                                   "taskType": "RETRIEVAL_DOCUMENT"}
    assert e.usage.source == "none"  # Gemini reports no token count


@pytest.mark.parametrize("provider", ["mistral", "openai", "openai-responses"])
async def test_openai_family_servers(provider: str) -> None:
    def reply(body: dict[str, Any]) -> dict[str, Any]:
        if body.get("encoding_format") == "base64":
            data = [base64.b64encode(np.array([1.5, -2.0], dtype="<f4").tobytes()).decode()
                    for _ in body["input"]]
        else:
            data = [[1.5, -2.0] for _ in body["input"]]
        return {"object": "list", "model": body["model"],
                "data": [{"index": i, "embedding": d} for i, d in reversed(list(
                    enumerate(data)))],
                "usage": {"prompt_tokens": 7, "total_tokens": 7}}

    server = Server(reply)
    async with server as url:
        c = AsyncClient(middleware=[], base_urls={provider: url + "/v1"},
                        api_keys={provider: "k"})
        e = await c.embed(f"{provider}/embed-model", ["a", "b"], extra={"dimensions": 2})
        await c.aclose()
    assert e.vectors == [[1.5, -2.0], [1.5, -2.0]] and e.usage.input_tokens == 7
    path, headers, body = server.requests[0]
    assert path == "/v1/embeddings" and headers["Authorization"] == "Bearer k"
    assert body["dimensions"] == 2
    assert ("encoding_format" in body) == (provider != "mistral")
