"""Anthropic Message Batches as codec verbs (pure: no I/O).

The flow (https://docs.anthropic.com/en/api/creating-message-batches):

1. ``POST {base}/v1/messages/batches`` ``{"requests": [{"custom_id", "params"}]}``
   where ``params`` is exactly what the messages codec sends for that call;
2. ``GET {base}/v1/messages/batches/{id}`` until ``processing_status`` is ``ended``;
3. ``GET results_url``: JSONL ``{"custom_id", "result": {"type": "succeeded",
   "message"} | {"type": "errored", "error": {"type": "error", "error": {...}}}
   | {"type": "canceled"} | {"type": "expired"}}``.

``custom_id`` must match ``^[a-zA-Z0-9_-]{1,64}$``; the runner maps ids to such
names and back.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from ..errors import MalformedResponseError, ProviderError, error_for
from ..pipeline import Call
from ..response import Response
from ..transports.base import WireRequest
from .base import Codec, dumps, load_json
from .batch_openai import BatchStatus


def _base(call: Call) -> str:
    return call.target.base_url.rstrip("/")


def _auth(request: WireRequest) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower() != "content-type"}


def encode_create(items: Sequence[tuple[str, Call]], codec: Codec) -> WireRequest:
    requests = []
    for custom_id, call in items:
        params = json.loads(codec.encode(call).body or b"{}")
        params.pop("stream", None)
        requests.append({"custom_id": custom_id, "params": params})
    first = items[0][1]
    headers = _auth(codec.encode(first))
    headers["content-type"] = "application/json"
    return WireRequest("POST", f"{_base(first)}/v1/messages/batches", headers,
                       dumps({"requests": requests}))


def encode_poll(call: Call, codec: Codec, batch_id: str) -> WireRequest:
    return WireRequest("GET", f"{_base(call)}/v1/messages/batches/{batch_id}",
                       _auth(codec.encode(call)))


def decode_status(body: bytes) -> BatchStatus:
    data = load_json(body, "message batch")
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) \
            or not isinstance(data.get("processing_status"), str):
        raise MalformedResponseError(f"not a message batch: {body[:200]!r}")
    status = str(data["processing_status"])
    url = data.get("results_url")
    counts = {k: v for k, v in (data.get("request_counts") or {}).items() if isinstance(v, int)}
    return BatchStatus(data["id"], status, status == "ended",
                       [str(url)] if status == "ended" and url else [], counts)


def encode_results(call: Call, codec: Codec, results_url: str) -> WireRequest:
    return WireRequest("GET", results_url, _auth(codec.encode(call)))


def decode_results(body: bytes, codec: Codec, calls: Mapping[str, Call],
                   ignore: Collection[str] = ()) -> Iterator[tuple[str, Response | ProviderError]]:
    for n, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        row = load_json(line, f"batch result line {n}")
        custom_id = row.get("custom_id") if isinstance(row, dict) else None
        if isinstance(custom_id, str) and custom_id in ignore:
            continue  # written by an earlier, interrupted run
        if not isinstance(custom_id, str) or custom_id not in calls:
            raise MalformedResponseError(f"batch result line {n} has an unknown custom_id: "
                                         f"{line[:200]!r}")
        result = row.get("result")
        if not isinstance(result, dict):
            raise MalformedResponseError(f"batch result line {n} has no result object")
        yield custom_id, _one(result, codec, calls[custom_id])


def _one(result: Mapping[str, Any], codec: Codec, call: Call) -> Response | ProviderError:
    kind = result.get("type")
    if kind == "succeeded":
        try:
            response = codec.decode(dumps(result.get("message")), {}, call)
        except ProviderError as e:
            return e
        response.provider = call.target.provider
        return response
    if kind == "errored":
        body = result.get("error")
        inner = body.get("error") if isinstance(body, dict) else None
        if isinstance(inner, dict):  # classified by its error type; no HTTP status exists
            err = codec.classify_error(0, {}, dumps(body))
            err.status = None
            return err
        return error_for(None, f"the request errored: {body!r}")
    return ProviderError(f"the batch did not run this request ({kind})", code=str(kind),
                         body=dict(result))
