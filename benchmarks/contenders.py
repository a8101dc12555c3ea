"""The clients under test, each behind the same four async verbs.

Floors are raw loops with no abstraction: the cost of HTTP + json.loads alone.
Every contender talks the OpenAI chat wire to the same local fault server.
"""

from __future__ import annotations

import json
from typing import Any

MESSAGES = [{"role": "user", "content": "Say hello."}]


def _body(model: str, stream: bool) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return json.dumps(body).encode()


class AiohttpFloor:
    name = "aiohttp floor"

    @staticmethod
    def import_() -> None:
        import aiohttp  # noqa: F401

    async def make(self, base: str) -> None:
        import aiohttp
        self.url = f"{base}/chat/completions"
        self.s = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
        self.h = {"content-type": "application/json", "authorization": "Bearer x"}

    async def complete(self, model: str) -> str:
        async with self.s.post(self.url, data=_body(model, False), headers=self.h) as r:
            return str(json.loads(await r.read())["choices"][0]["message"]["content"])

    async def stream(self, model: str) -> int:
        n = 0
        async with self.s.post(self.url, data=_body(model, True), headers=self.h) as r:
            async for line in r.content:
                if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                    json.loads(line[6:])
                    n += 1
        return n

    async def close(self) -> None:
        await self.s.close()


class HttpxFloor:
    name = "httpx floor"

    @staticmethod
    def import_() -> None:
        import httpx  # noqa: F401

    async def make(self, base: str) -> None:
        import httpx
        self.url = f"{base}/chat/completions"
        self.c = httpx.AsyncClient(limits=httpx.Limits(max_connections=1000), timeout=60)
        self.h = {"content-type": "application/json", "authorization": "Bearer x"}

    async def complete(self, model: str) -> str:
        r = await self.c.post(self.url, content=_body(model, False), headers=self.h)
        return str(json.loads(r.content)["choices"][0]["message"]["content"])

    async def stream(self, model: str) -> int:
        n = 0
        async with self.c.stream("POST", self.url, content=_body(model, True),
                                 headers=self.h) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: ") and not line.startswith("data: [DONE]"):
                    json.loads(line[6:])
                    n += 1
        return n

    async def close(self) -> None:
        await self.c.aclose()


class Modelwire:
    name = "modelwire"
    middleware: list[Any] | None = None  # None: the default resilience chain
    options: dict[str, Any] = {}  # noqa: RUF012  (client keywords)

    @staticmethod
    def import_() -> None:
        import modelwire  # noqa: F401

    async def make(self, base: str) -> None:
        import modelwire
        self.c = modelwire.AsyncClient(base_urls={"openai": base}, api_keys={"openai": "x"},
                                       middleware=self.middleware, **self.options)

    async def complete(self, model: str) -> str:
        return (await self.c.complete(f"openai/{model}", MESSAGES)).text

    async def stream(self, model: str) -> int:
        n = 0
        async with self.c.stream(f"openai/{model}", MESSAGES) as s:
            async for _ in s:
                n += 1
        return n

    async def close(self) -> None:
        await self.c.aclose()


class ModelwireNoMetrics(Modelwire):
    """The default chain without ``client.metrics``: the metrics on/off comparison."""

    name = "modelwire (metrics off)"
    options: dict[str, Any] = {"metrics": False}  # noqa: RUF012


class ModelwireBare(Modelwire):
    name = "modelwire (no middleware)"
    middleware: list[Any] | None = []  # noqa: RUF012


class OpenAISDK:
    name = "openai SDK"

    @staticmethod
    def import_() -> None:
        import openai  # noqa: F401

    async def make(self, base: str) -> None:
        import openai
        self.c = openai.AsyncOpenAI(base_url=base, api_key="x", max_retries=0)

    async def complete(self, model: str) -> str:
        r = await self.c.chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
        return r.choices[0].message.content or ""

    async def stream(self, model: str) -> int:
        n = 0
        s = await self.c.chat.completions.create(
            model=model, messages=MESSAGES, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True})
        async for _ in s:
            n += 1
        return n

    async def close(self) -> None:
        await self.c.close()


class LiteLLM:
    name = "litellm"

    @staticmethod
    def import_() -> None:
        import litellm  # noqa: F401

    async def make(self, base: str) -> None:
        import litellm
        self.m = litellm
        self.base = base

    async def complete(self, model: str) -> str:
        r = await self.m.acompletion(model=f"openai/{model}", messages=MESSAGES,
                                     api_base=self.base, api_key="x")
        return str(r.choices[0].message.content)

    async def stream(self, model: str) -> int:
        n = 0
        s = await self.m.acompletion(model=f"openai/{model}", messages=MESSAGES,
                                     api_base=self.base, api_key="x", stream=True)
        async for _ in s:
            n += 1
        return n

    async def close(self) -> None:
        pass


CONTENDERS = {c.name: c for c in (AiohttpFloor, HttpxFloor, Modelwire, ModelwireNoMetrics,
                                  ModelwireBare, OpenAISDK, LiteLLM)}
