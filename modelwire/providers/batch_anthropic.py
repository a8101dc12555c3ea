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
from urllib.parse import urljoin, urlsplit

from ..errors import MalformedResponseError, ProviderError, error_for
from ..pipeline import Call
from ..response import Response
from ..transports.base import WireRequest
from .base import Codec, dumps, load_json
from .batch_openai import BatchStatus, _auth, _base, result_rows, safe_id


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
    return WireRequest("GET", f"{_base(call)}/v1/messages/batches/{safe_id(batch_id, 'batch id')}",
                       _auth(codec.encode(call)))


def decode_status(body: bytes) -> BatchStatus:
    data = load_json(body, "message batch")
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) \
            or not isinstance(data.get("processing_status"), str):
        raise MalformedResponseError(f"not a message batch: {body[:200]!r}")
    status = str(data["processing_status"])
    url = data.get("results_url")
    raw_counts = data.get("request_counts")
    counts = {k: v for k, v in (raw_counts if isinstance(raw_counts, dict) else {}).items()
              if isinstance(v, int)}
    return BatchStatus(safe_id(data["id"], "batch id"), status, status == "ended",
                       [str(url)] if status == "ended" and url else [], counts)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        port = -1
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def encode_results(call: Call, codec: Codec, results_url: str) -> WireRequest:
    """GET the results, with the key, only where the batch API itself lives."""
    results_url = urljoin(_base(call) + "/", results_url)  # a path alone is on the API
    if _origin(results_url) != _origin(_base(call)):
        raise MalformedResponseError(
            f"the batch's results_url {results_url[:200]!r} is not on the API's own host "
            f"({_base(call)}); refusing to send the API key there")
    return WireRequest("GET", results_url, _auth(codec.encode(call)))


def decode_results(body: bytes, codec: Codec, calls: Mapping[str, Call],
                   ignore: Collection[str] = (), problems: list[str] | None = None,
                   ) -> Iterator[tuple[str, Response | ProviderError]]:
    """As :func:`batch_openai.decode_results`: bad lines are skipped into ``problems``."""
    for n, line, row in result_rows(body, calls, ignore, problems):
        result = row.get("result")
        if not isinstance(result, dict):
            if problems is not None:
                problems.append(f"batch result line {n} has no result object: {line[:120]!r}")
            continue
        yield row["custom_id"], _one(result, codec, calls[row["custom_id"]])


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
