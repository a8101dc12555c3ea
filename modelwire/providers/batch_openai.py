"""OpenAI Batch API as codec verbs (pure: requests built, answers decoded, no I/O).

The flow (https://platform.openai.com/docs/api-reference/batch):

1. ``POST {base}/files`` (multipart, ``purpose=batch``) uploads the JSONL input,
   one ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}``
   a line, where ``body`` is exactly what the chat codec sends for that call;
2. ``POST {base}/batches`` ``{"input_file_id", "endpoint", "completion_window": "24h"}``;
3. ``GET {base}/batches/{id}`` until ``status`` is final (``completed``,
   ``failed``, ``expired``, ``cancelled``);
4. ``GET {base}/files/{output_file_id}/content`` (and ``error_file_id``): JSONL
   ``{"custom_id", "response": {"status_code", "body"}, "error"}``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import MalformedResponseError, ProviderError
from ..pipeline import Call
from ..response import Response
from ..transports.base import WireRequest
from .base import Codec, dumps, load_json

ENDPOINT = "/v1/chat/completions"
FINAL = frozenset({"completed", "failed", "expired", "cancelled"})
# what a provider's batch or file id may look like before it goes into a URL path
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,255}$")


def safe_id(value: Any, what: str) -> str:
    """An id the server gave us, checked before it becomes part of a URL path."""
    if not isinstance(value, str) or not _SAFE_ID.match(value):
        raise MalformedResponseError(f"the server gave a {what} that is not a plain id: "
                                     f"{str(value)[:100]!r}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(slots=True)
class BatchStatus:
    id: str
    status: str
    done: bool
    output_file_ids: list[str] = field(default_factory=list)  # results to download
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # batch-level failures


def _base(call: Call) -> str:
    return call.target.base_url.rstrip("/")


def _auth(request: WireRequest) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k.lower() != "content-type"}


def encode_input(items: Sequence[tuple[str, Call]], codec: Codec) -> bytes:
    """The JSONL input file: one chat request a line, keyed by custom_id."""
    lines = []
    for custom_id, call in items:
        body = json.loads(codec.encode(call).body or b"{}")
        body.pop("stream", None)
        body.pop("stream_options", None)
        lines.append(dumps({"custom_id": custom_id, "method": "POST", "url": ENDPOINT,
                            "body": body}))
    return b"\n".join(lines) + b"\n"


def encode_upload(call: Call, codec: Codec, content: bytes,
                  filename: str = "modelwire-batch.jsonl") -> WireRequest:
    boundary = f"modelwire-{uuid.uuid4().hex}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        .encode(),
        (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
         f'filename="{filename}"\r\nContent-Type: application/jsonl\r\n\r\n').encode(),
        content, f"\r\n--{boundary}--\r\n".encode(),
    ]
    headers = _auth(codec.encode(call))
    headers["content-type"] = f"multipart/form-data; boundary={boundary}"
    return WireRequest("POST", f"{_base(call)}/files", headers, b"".join(parts))


def decode_file_id(body: bytes) -> str:
    data = load_json(body, "file upload response")
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise MalformedResponseError(f"file upload response has no id: {body[:200]!r}")
    return safe_id(data["id"], "file id")


def encode_create(call: Call, codec: Codec, input_file_id: str) -> WireRequest:
    headers = _auth(codec.encode(call))
    headers["content-type"] = "application/json"
    return WireRequest("POST", f"{_base(call)}/batches", headers, dumps(
        {"input_file_id": input_file_id, "endpoint": ENDPOINT, "completion_window": "24h"}))


def encode_poll(call: Call, codec: Codec, batch_id: str) -> WireRequest:
    return WireRequest("GET", f"{_base(call)}/batches/{safe_id(batch_id, 'batch id')}",
                       _auth(codec.encode(call)))


def decode_status(body: bytes) -> BatchStatus:
    data = load_json(body, "batch object")
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) \
            or not isinstance(data.get("status"), str):
        raise MalformedResponseError(f"not a batch object: {body[:200]!r}")
    status = str(data["status"])
    files = [safe_id(data[k], k) for k in ("output_file_id", "error_file_id") if data.get(k)]
    listed = _dict(data.get("errors")).get("data")
    errors = [str(e.get("message", e)) for e in (listed if isinstance(listed, list) else [])
              if isinstance(e, dict)]
    counts = {k: v for k, v in _dict(data.get("request_counts")).items() if isinstance(v, int)}
    return BatchStatus(safe_id(data["id"], "batch id"), status, status in FINAL, files, counts,
                       errors)


def encode_download(call: Call, codec: Codec, file_id: str) -> WireRequest:
    return WireRequest("GET", f"{_base(call)}/files/{safe_id(file_id, 'file id')}/content",
                       _auth(codec.encode(call)))


def decode_results(body: bytes, codec: Codec, calls: Mapping[str, Call],
                   ignore: Collection[str] = (), problems: list[str] | None = None,
                   ) -> Iterator[tuple[str, Response | ProviderError]]:
    """Each output/error line: (custom_id, Response or the typed error).

    A line that is not JSON, or names no request of this batch, is skipped and
    described in ``problems``: one bad line never hides the others' results
    (a request left without a result gets its own error from the runner)."""
    for _n, _line, row in result_rows(body, calls, ignore, problems):
        yield row["custom_id"], _one(row, codec, calls[row["custom_id"]])


def result_rows(body: bytes, calls: Mapping[str, Call], ignore: Collection[str],
                problems: list[str] | None) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    """The JSONL results' usable rows: (line number, line, object with our custom_id)."""
    for n, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = load_json(line, f"batch result line {n}")
        except MalformedResponseError as e:
            if problems is not None:
                problems.append(e.message)
            continue
        custom_id = row.get("custom_id") if isinstance(row, dict) else None
        if isinstance(custom_id, str) and custom_id in ignore:
            continue  # written by an earlier, interrupted run
        if not isinstance(row, dict) or not isinstance(custom_id, str) \
                or custom_id not in calls:
            if problems is not None:
                problems.append(f"batch result line {n} names no request of this batch: "
                                f"{line[:120]!r}")
            continue
        yield n, line, row


def _one(row: Mapping[str, Any], codec: Codec, call: Call) -> Response | ProviderError:
    resp = row.get("response")
    err = row.get("error")
    if isinstance(resp, dict) and isinstance(resp.get("status_code"), int):
        body = dumps(resp.get("body"))
        status = int(resp["status_code"])
        if status >= 400:
            return codec.classify_error(status, {}, body)
        try:
            response = codec.decode(body, {}, call)
        except ProviderError as e:
            return e
        response.provider, response.model = call.target.provider, \
            response.model or call.target.model
        return response
    message = err.get("message") if isinstance(err, dict) else None
    code = err.get("code") if isinstance(err, dict) else None
    return ProviderError(str(message or "the batch gave no response for this request"),
                         code=str(code) if code else None, body=dict(row))
