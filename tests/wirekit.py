"""Recorded wire traffic for tests: cassette loading and stream replay.

The cassettes under tests/fixtures/wire are copied unchanged from shared/wire
(see its README and LICENSES). Two formats occur: pydantic-ai's (JSON bodies
stored parsed under ``parsed_body``) and plain vcrpy (raw strings, or gzipped
``!!binary`` bodies with Content-Encoding: gzip).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

WIRE = Path(__file__).parent / "fixtures" / "wire"


@dataclass
class Interaction:
    file: str  # e.g. "openai/test_chat_tools_streaming.yaml"
    index: int
    method: str
    uri: str
    request: dict[str, Any] | None  # the JSON request body
    status: int
    headers: dict[str, str] = field(repr=False)  # lower-cased; multi-values joined by ", "
    body: bytes = field(repr=False)

    @property
    def provider(self) -> str:
        return self.file.split("/", 1)[0]

    @property
    def id(self) -> str:
        return f"{self.file}#{self.index}"

    @property
    def is_sse(self) -> bool:
        return "text/event-stream" in self.headers.get("content-type", "")

    @property
    def path(self) -> str:
        return self.uri.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]

    def json(self) -> Any:
        return json.loads(self.body)


def _headers(raw: dict[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (raw or {}).items():
        out[k.lower()] = ", ".join(v) if isinstance(v, list) else str(v)
    return out


def _body(part: dict[str, Any], headers: dict[str, str]) -> bytes:
    if "parsed_body" in part:
        return json.dumps(part["parsed_body"]).encode()
    body = part.get("body")
    if isinstance(body, dict):
        body = body.get("string", "")
    if body is None:
        return b""
    data = body if isinstance(body, bytes) else str(body).encode("utf-8")
    if headers.get("content-encoding", "").lower() == "gzip" and data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data


def _request_json(req: dict[str, Any]) -> dict[str, Any] | None:
    if "parsed_body" in req:
        return req["parsed_body"]  # type: ignore[no-any-return]
    body = req.get("body")
    if isinstance(body, dict):
        body = body.get("string")
    if not body:
        return None
    try:
        return json.loads(body)  # type: ignore[no-any-return]
    except ValueError:
        return None


@cache
def load(file: str) -> tuple[Interaction, ...]:
    doc = yaml.safe_load((WIRE / file).read_text(encoding="utf-8"))
    out = []
    for i, it in enumerate(doc["interactions"]):
        req, resp = it["request"], it["response"]
        headers = _headers(resp.get("headers"))
        out.append(Interaction(
            file=file, index=i, method=req["method"], uri=req["uri"],
            request=_request_json(req), status=int(resp["status"]["code"]),
            headers=headers, body=_body(resp, headers),
        ))
    return tuple(out)


def files(provider: str) -> list[str]:
    return sorted(f"{provider}/{p.name}" for p in (WIRE / provider).glob("*.yaml"))


def interactions(provider: str) -> Iterator[Interaction]:
    for f in files(provider):
        yield from load(f)


def replay_stream(codec: Any, body: bytes, provider: str = "p", model: str = "m",
                  chunk_size: int | None = None) -> tuple[list[Any], Any]:
    """Feed recorded SSE bytes through the SSE parser, a codec and the shared
    accumulator, as the endpoint does. Returns (events, final Response or the
    exception raised)."""
    from modelwire.accumulate import StreamAccumulator
    from modelwire.errors import ModelwireError
    from modelwire.providers.base import event_decoder
    from modelwire.wire.sse import SSEParser

    parser, acc = SSEParser(), StreamAccumulator(provider, model)
    decode = event_decoder(codec)
    events: list[Any] = []
    chunks = [body] if not chunk_size else [body[i:i + chunk_size]
                                            for i in range(0, len(body), chunk_size)]
    try:
        for chunk in chunks:
            for sse in parser.feed(chunk):
                events += acc.feed(decode(sse))
        for sse in parser.close():
            events += acc.feed(decode(sse))
        return events, acc.response()
    except ModelwireError as e:
        return events, e
