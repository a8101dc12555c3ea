"""The codec protocol: the same four verbs in every provider.

* ``encode(call) -> WireRequest``: build URL, headers and JSON body.
* ``decode(body, headers, call) -> Response``: a successful non-streamed body.
* ``decode_event(event) -> list[Delta]``: one SSE event of a stream into neutral
  deltas for the shared accumulator. In-stream errors (Groq's ``event: error``,
  an OpenRouter error chunk) raise a typed ProviderError.
* ``classify_error(status, headers, body) -> ProviderError``: the one place a
  provider's error becomes a typed exception (provider code first, then status,
  then message text).

Codecs are pure: no I/O, no clocks, so they are tested from recorded bytes and
reused in reverse by the gateway.

A wire whose events only make sense with memory of earlier ones (Anthropic:
is content block 3 a client tool call or a server tool call?) may also define
``stream_decoder() -> Callable[[SSEEvent], list[Delta]]``; the endpoint then
uses a fresh decoder per stream instead of ``decode_event``. Use
:func:`event_decoder` to get whichever the codec offers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..accumulate import Delta
from ..errors import InvalidParameterError, MalformedResponseError, ProviderError
from ..pipeline import Call
from ..response import Response
from ..transports.base import WireRequest
from ..wire.sse import SSEEvent


class Codec(Protocol):
    def encode(self, call: Call) -> WireRequest: ...

    def decode(self, body: bytes, headers: Mapping[str, str], call: Call) -> Response: ...

    def decode_event(self, event: SSEEvent) -> list[Delta]: ...

    def classify_error(self, status: int, headers: Mapping[str, str],
                       body: bytes) -> ProviderError: ...


def event_decoder(codec: Codec) -> Callable[[SSEEvent], list[Delta]]:
    """A per-stream decoder: the codec's ``stream_decoder()`` if it has one."""
    factory = getattr(codec, "stream_decoder", None)
    return factory() if factory is not None else codec.decode_event  # type: ignore[no-any-return]


def load_json(data: bytes | str, what: str = "response body") -> Any:
    """json.loads with a typed error instead of ValueError."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        snippet = data[:200] if isinstance(data, str) else data[:200].decode("utf-8", "replace")
        raise MalformedResponseError(f"{what} is not valid JSON ({e}): {snippet!r}") from None


# built once; allow_nan=False: a bare NaN / Infinity is not JSON and must never go out
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(obj: Any) -> bytes:
    """The request body. Values JSON cannot carry are an InvalidParameterError."""
    try:
        return _ENCODER.encode(obj).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the endpoint names it (InvalidMessageError)
        raise
    except (TypeError, ValueError) as e:  # NaN / inf, an object json cannot encode
        raise InvalidParameterError(
            f"the request cannot be encoded as JSON ({e}); pass only finite numbers, "
            "strings, booleans, None, lists and dicts with string keys") from None


def excerpt(body: bytes | str, limit: int = 200) -> str:
    """The start of a body for an error message, as a quoted string."""
    text = body[:limit] if isinstance(body, str) else body[:limit].decode("utf-8", "replace")
    return repr(text)


def request_id(headers: Mapping[str, str], *names: str) -> str | None:
    for n in names or ("x-request-id", "request-id"):
        if v := headers.get(n):
            return v
    return None
