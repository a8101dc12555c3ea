"""Cache keys and entries.

The key is a SHA-256 over the normalized request (provider, base URL, model,
fallback targets, mode, messages or prompt, tools, tool_choice, every sampling
parameter, ``extra`` fields, stream or not) and the tenant: a hash of each
target's API key, or of ``tenant=`` when given. Two tenants never share an entry
and no key, URL or message ever appears in a key. Entries are plain JSON (no
pickle: a shared cache must not be able to run code in its readers).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..response import (
    Attempt,
    ReasoningDelta,
    Response,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallArgumentsDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    UsageUpdate,
)

if TYPE_CHECKING:
    from ..pipeline import Call, Target

VERSION = 1  # bump when the normalized form or the entry shape changes


def _target(t: Target) -> list[Any]:
    options = sorted((str(k), repr(v)) for k, v in t.options.items())
    return [t.provider, t.base_url, t.model, options]


def request_key(call: Call, tenant: str | None = None) -> str:
    """The cache key of ``call`` (hex SHA-256; see module docstring)."""
    targets = [call.target, *call.fallbacks]
    normalized = {
        "v": VERSION,
        "targets": [_target(t) for t in targets],
        "mode": call.mode, "stream": call.stream, "prompt": call.prompt,
        "messages": [asdict(m) for m in call.messages],
        # a Tool's own fields only: its cache of wire forms fills in as calls go out
        "tools": [[t.name, t.description, t.parameters, t.strict] for t in call.tools],
        "tool_choice": call.tool_choice,
        "response_format": None if call.response_format is None else [
            call.response_format.name, call.response_format.schema,
            call.response_format.wrapped],
        "temperature": call.temperature, "max_tokens": call.max_tokens, "stop": call.stop,
        "top_p": call.top_p, "seed": call.seed, "extra": call.extra,
    }
    body = json.dumps(normalized, sort_keys=True, separators=(",", ":"), default=repr)
    h = hashlib.sha256(body.encode())
    h.update(b"\0tenant\0")
    if tenant is not None:
        h.update(hashlib.sha256(tenant.encode()).digest())
    else:
        for t in targets:
            h.update(hashlib.sha256((t.api_key or "").encode()).digest())
    return h.hexdigest()


# --- entries: {"response": {...}, "events": [...] | None} ------------------------


# Not stored: whether it was cached, the lazily computed cost, and ``parsed`` (a
# structured answer is parsed again from the text by whoever asked for it).
_NOT_STORED = ("cached", "_cost", "parsed")


def dump(response: Response, events: list[StreamEvent] | None) -> dict[str, Any]:
    r = asdict(response)
    for name in _NOT_STORED:
        r.pop(name, None)
    return {"response": r, "events": None if events is None else [_event(e) for e in events]}


def load(entry: dict[str, Any]) -> tuple[Response, list[StreamEvent] | None]:
    r = dict(entry["response"])
    r["usage"] = Usage(**r["usage"])
    r["tool_calls"] = [ToolCall(**c) for c in r["tool_calls"]]
    r["attempts"] = [Attempt(**a) for a in r["attempts"]]
    response = Response(**r, cached=True)
    events = entry.get("events")
    return response, None if events is None else [_from_event(e) for e in events]


_EVENTS: dict[str, type[Any]] = {
    "text": TextDelta, "reasoning": ReasoningDelta, "tool_start": ToolCallStart,
    "tool_args": ToolCallArgumentsDelta, "tool_end": ToolCallEnd, "usage": UsageUpdate,
}
_NAMES = {v: k for k, v in _EVENTS.items()}


def _event(e: StreamEvent) -> dict[str, Any]:
    out: dict[str, Any] = {"type": _NAMES[type(e)]}
    for name in type(e).__slots__:  # stream events are slotted records, not dataclasses
        value = getattr(e, name)
        out[name] = asdict(value) if isinstance(value, (ToolCall, Usage)) else value
    return out


def _from_event(d: dict[str, Any]) -> StreamEvent:
    fields = dict(d)
    kind = _EVENTS[fields.pop("type")]
    if kind is ToolCallEnd:
        fields["tool_call"] = ToolCall(**fields["tool_call"])
    elif kind is UsageUpdate:
        fields["usage"] = Usage(**fields["usage"])
    event: StreamEvent = kind(**fields)
    return event


def encode(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, separators=(",", ":")).encode()


def decode(data: bytes | str) -> dict[str, Any]:
    value = json.loads(data)
    assert isinstance(value, dict)
    return value
