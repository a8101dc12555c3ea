"""Anthropic Messages API codec (``POST /v1/messages``).

Decisions worth knowing:

* ``max_tokens`` is required by the API. When the call leaves it unset we send
  8192 (every Claude model since 3.5 accepts it), 4096 for the Claude 3
  haiku/opus/sonnet models whose ceiling that is, and, when extended thinking is
  requested through ``extra={"thinking": {"budget_tokens": N}}``, N plus that
  default so the thinking budget cannot starve the answer.
* All system messages are lifted into ``system`` (joined by a blank line),
  tool results become ``tool_result`` blocks in a *user* message, and
  consecutive same-role messages are merged, because the API wants user and
  assistant turns to alternate. In a merged user turn the ``tool_result``
  blocks come first, as the API requires.
* Usage is normalized: ``Usage.input_tokens`` counts the whole prompt
  (Anthropic's ``input_tokens`` + ``cache_read_input_tokens`` +
  ``cache_creation_input_tokens``), the way OpenAI's ``prompt_tokens`` does.
* Thinking text goes to ``Response.reasoning``, never into ``text``.
  Server-side tools (``server_tool_use``, ``web_search_tool_result``, ...)
  run at Anthropic, not at the caller, so they are *not* client tool calls:
  they stay in ``Response.raw`` and never appear in ``tool_calls``.
* A streamed block's type is known only from its ``content_block_start``, so
  streams use a fresh decoder per stream (:meth:`AnthropicCodec.stream_decoder`)
  that remembers which indexes are client ``tool_use`` blocks.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import errors as e
from ..accumulate import DONE, Delta, Finish, Meta, ToolCallChunk
from ..errors import InvalidMessageError, MalformedResponseError, ProviderError, error_for
from ..pipeline import Call
from ..registry import ProviderSpec
from ..response import (
    FinishReason,
    ReasoningDelta,
    Response,
    TextDelta,
    ToolCall,
    Usage,
    UsageUpdate,
)
from ..transports.base import WireRequest
from ..types import ImagePart, Message, Part, TextPart, Tool
from ..wire.sse import SSEEvent
from .base import dumps, excerpt, load_json, request_id

DEFAULT_MAX_TOKENS = 8192
# Models whose output ceiling is below DEFAULT_MAX_TOKENS (prefix match).
_MAX_OUTPUT: tuple[tuple[str, int], ...] = (
    ("claude-3-haiku", 4096), ("claude-3-opus", 4096), ("claude-3-sonnet", 4096),
)

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}

_ERROR_KINDS: dict[str, type[ProviderError]] = {
    "invalid_request_error": e.BadRequestError, "request_too_large": e.BadRequestError,
    "authentication_error": e.AuthenticationError, "permission_error": e.PermissionDeniedError,
    "billing_error": e.PermissionDeniedError, "not_found_error": e.NotFoundError,
    "rate_limit_error": e.RateLimitError, "overloaded_error": e.OverloadedError,
    "api_error": e.ServerError, "timeout_error": e.RequestTimeoutError,
}

_TOOL_CHOICE: dict[str, dict[str, str]] = {
    "auto": {"type": "auto"}, "required": {"type": "any"}, "any": {"type": "any"},
    "none": {"type": "none"},
}


def default_max_tokens(model: str, extra: Mapping[str, Any] | None = None) -> int:
    """The ``max_tokens`` sent when the call sets none (see the module docstring)."""
    base = next((n for prefix, n in _MAX_OUTPUT if model.startswith(prefix)), DEFAULT_MAX_TOKENS)
    thinking = (extra or {}).get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, Mapping) else None
    if isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
        return budget + base
    return base


class AnthropicCodec:
    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec
        self.name = spec.name

    # --- encode ------------------------------------------------------------

    def encode(self, call: Call) -> WireRequest:
        if call.mode == "text":
            raise e.UnsupportedFeatureError(
                f"{self.name} has no text-completion endpoint: use complete() with "
                "chat messages instead of a raw prompt"
            )
        if call.seed is not None:
            raise e.UnsupportedFeatureError(f"{self.name} does not support 'seed'; leave it unset")
        model = call.target.model
        system, messages = encode_messages(call.messages)
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": (call.max_tokens if call.max_tokens is not None
                           else default_max_tokens(model, call.extra)),
            "messages": messages,
        }
        if system:
            body["system"] = system
        if call.tools:
            body["tools"] = [t.wire_form("anthropic", _tool) for t in call.tools]
        if call.tool_choice is not None:
            body["tool_choice"] = encode_tool_choice(call.tool_choice, call.tools)
        if (fmt := call.response_format) is not None:  # a forced tool carries the answer
            if call.tools:
                raise e.UnsupportedFeatureError(
                    f"{self.name}: response_format is sent as a forced tool, so it cannot be "
                    "combined with tools= in one call; run the tools first, then ask for the "
                    "structured answer in a call without tools")
            body["tools"] = [*body.get("tools", ()), fmt.anthropic_tool()]
            body["tool_choice"] = {"type": "tool", "name": fmt.name}
        for field, value in (("temperature", call.temperature), ("top_p", call.top_p)):
            if value is not None:
                body[field] = value
        if call.stop:
            body["stop_sequences"] = [call.stop] if isinstance(call.stop, str) else list(call.stop)
        if call.stream:
            body["stream"] = True
        if call.extra:
            body.update(call.extra)
        headers = {"content-type": "application/json", **dict(self.spec.headers)}
        if (key := call.target.api_key) and self.spec.auth != "none":
            headers.update({"authorization": f"Bearer {key}"} if self.spec.auth == "bearer"
                           else {"x-api-key": key})
        if call.stream:
            headers["accept"] = "text/event-stream"
        base = call.target.base_url.rstrip("/")
        url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
        return WireRequest("POST", url, headers, dumps(body), stream=call.stream)

    # --- decode ------------------------------------------------------------

    def decode(self, body: bytes, headers: Mapping[str, str], call: Call) -> Response:
        data = load_json(body)
        if not isinstance(data, dict):
            raise _bad(f"response is JSON {type(data).__name__}, expected an object", self.name)
        if data.get("type") == "error":
            raise _error(data, 200, headers, self.name)
        content = data.get("content")
        if not isinstance(content, list):
            raise _bad("response has no 'content' list", self.name)
        texts: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCall] = []
        for i, block in enumerate(content):
            if not isinstance(block, dict):
                raise _bad(f"content[{i}] is not an object", self.name)
            kind = block.get("type")
            if kind == "text":
                texts.append(_text(block, "text", body, self.name))
            elif kind == "thinking":
                reasoning.append(_text(block, "thinking", body, self.name))
            elif kind == "tool_use":
                calls.append(self._tool_call(block, i))
            # redacted_thinking, server_tool_use, *_tool_result, ...: raw only.
        stop = data.get("stop_reason")
        usage = data.get("usage")
        return Response(
            text="".join(texts), tool_calls=calls,
            finish_reason=_FINISH.get(stop, "stop") if isinstance(stop, str) else "stop",
            usage=usage_from(usage) if isinstance(usage, dict) else Usage(),
            provider=self.name, model=_str(data.get("model")) or call.target.model,
            request_id=request_id(headers, "request-id") or _str(data.get("id")) or None,
            reasoning="".join(reasoning),
            raw_finish_reason=stop if isinstance(stop, str) else None, raw=data,
        )

    def _tool_call(self, block: Mapping[str, Any], i: int) -> ToolCall:
        cid, name, args = block.get("id"), block.get("name"), block.get("input", {})
        if not isinstance(cid, str) or not isinstance(name, str) or not isinstance(args, dict):
            raise _bad(f"content[{i}]: a tool_use block needs string id and name and an "
                       "object input", self.name)
        return ToolCall(cid, name, args, json.dumps(args, ensure_ascii=False))

    # --- streams -------------------------------------------------------------

    def stream_decoder(self) -> Callable[[SSEEvent], list[Delta]]:
        """A fresh decoder for one stream; it remembers each content block's type."""
        return _StreamDecoder(self.name)

    def decode_event(self, event: SSEEvent) -> list[Delta]:
        """One event without memory of the stream: an ``input_json_delta`` is then
        taken as a client tool's. The endpoint uses :meth:`stream_decoder`, which knows."""
        return _StreamDecoder(self.name)(event)

    # --- errors ----------------------------------------------------------------

    # --- count_tokens (POST /v1/messages/count_tokens) ----------------------

    def encode_count_tokens(self, call: Call) -> WireRequest:
        """The prompt of ``call`` (system, messages, tools) to be counted, not answered."""
        request = self.encode(call)
        body = json.loads(request.body or b"{}")
        keep = ("model", "messages", "system", "tools", "tool_choice", "thinking")
        request.body = dumps({k: body[k] for k in keep if k in body})
        request.url += "/count_tokens"
        request.stream = False
        request.headers.pop("accept", None)
        return request

    def decode_count_tokens(self, body: bytes, headers: Mapping[str, str], call: Call) -> int:
        n = load_json(body).get("input_tokens") if body.startswith(b"{") else None
        if not isinstance(n, int) or isinstance(n, bool):
            raise _bad(f"count_tokens answer has no integer input_tokens: {body[:200]!r}",
                       self.name)
        return n

    def classify_error(self, status: int, headers: Mapping[str, str],
                       body: bytes) -> ProviderError:
        try:
            payload: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            payload = None
        if isinstance(payload, dict):
            return _error(payload, status, headers, self.name)
        text = body[:500].decode("utf-8", "replace").strip()
        return error_for(status, text or f"HTTP {status} with an empty body", headers=headers,
                         provider=self.name, request_id=request_id(headers, "request-id"),
                         body=text)


def _error(payload: Mapping[str, Any], status: int | None, headers: Mapping[str, str],
           provider: str) -> ProviderError:
    """``{"type": "error", "error": {"type": ..., "message": ...}}`` as a typed error."""
    err = payload.get("error")
    err = err if isinstance(err, Mapping) else {}
    code = err.get("type") if isinstance(err.get("type"), str) else None
    message = (_str(err.get("message")) or e.detail_message(payload)
               or f"{code or 'error'} (HTTP {status})")
    rid = request_id(headers, "request-id") or _str(payload.get("request_id")) or None
    return error_for(status, message, code=code, kind=_ERROR_KINDS.get(code or ""),
                     headers=headers, provider=provider, request_id=rid, body=dict(payload))


def usage_from(u: Mapping[str, Any]) -> Usage:
    """Anthropic usage -> Usage, with ``input_tokens`` counting cached tokens too."""
    read, write = _int(u.get("cache_read_input_tokens")), _int(u.get("cache_creation_input_tokens"))
    inp = (_int(u.get("input_tokens")) or 0) + (read or 0) + (write or 0)
    out = _int(u.get("output_tokens")) or 0
    details = u.get("output_tokens_details")
    thinking = _int(details.get("thinking_tokens")) if isinstance(details, Mapping) else None
    return Usage(inp, out, inp + out, read, write, thinking, "reported")


class _StreamDecoder:
    """One stream's events -> neutral deltas, remembering each block's type."""

    __slots__ = ("blocks", "provider", "raw", "usage")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.raw = ""  # the event being decoded, for error excerpts
        self.blocks: dict[int, str] = {}  # content block index -> block type
        self.usage: dict[str, Any] = {}  # cumulative counts: message_delta overwrites

    def __call__(self, event: SSEEvent) -> list[Delta]:
        data = event.data.strip()  # real streams pad data lines with whitespace
        if event.event == "ping" or not data:
            return []
        self.raw = data
        payload = load_json(data, "stream event")
        if not isinstance(payload, dict):
            raise _bad(f"stream event is not an object: {data[:200]!r}", self.provider)
        kind = payload.get("type") or event.event
        if kind == "content_block_delta":
            return self._delta(self._index(payload), _obj(payload, "delta", self.provider))
        if kind == "content_block_start":
            return self._start(self._index(payload),
                               _obj(payload, "content_block", self.provider))
        if kind == "content_block_stop":
            index = self._index(payload)
            is_call = self.blocks.get(index) == "tool_use"
            return [ToolCallChunk(index, complete=True)] if is_call else []
        if kind == "message_start":
            msg = _obj(payload, "message", self.provider)
            meta = Meta(_str(msg.get("id")) or None, _str(msg.get("model")) or None)
            return [meta, *self._usage(msg.get("usage"))]
        if kind == "message_delta":
            stop = _obj(payload, "delta", self.provider).get("stop_reason")
            out = self._usage(payload.get("usage"))
            return [*out, Finish(_FINISH.get(stop, "stop"), stop)] if isinstance(stop, str) else out
        if kind == "message_stop":
            return [DONE]
        if kind == "error" or event.event == "error":
            raise _error(payload, None, {}, self.provider)
        return []  # event types newer than this codec

    def _index(self, payload: Mapping[str, Any]) -> int:
        index = payload.get("index")
        if isinstance(index, int):
            return index
        raise _bad(f"{payload.get('type')} event without an integer index", self.provider)

    def _start(self, index: int, block: Mapping[str, Any]) -> list[Delta]:
        kind = self.blocks[index] = _str(block.get("type"))
        if kind == "text" and (text := _text(block, "text", self.raw, self.provider)):
            return [TextDelta(text)]
        if kind == "thinking" and (text := _text(block, "thinking", self.raw, self.provider)):
            return [ReasoningDelta(text)]
        if kind == "tool_use":
            cid, name, args = block.get("id"), block.get("name"), block.get("input")
            if not isinstance(cid, str) or not isinstance(name, str):
                raise _bad("tool_use block without a string id and name", self.provider)
            raw = json.dumps(args, ensure_ascii=False) if isinstance(args, dict) and args else ""
            return [ToolCallChunk(index, cid, name, raw)]
        return []  # redacted_thinking, server_tool_use and server tool results

    def _delta(self, index: int, delta: Mapping[str, Any]) -> list[Delta]:
        kind, block = delta.get("type"), self.blocks.get(index)
        if kind == "text_delta":
            text = _text(delta, "text", self.raw, self.provider)
            return [TextDelta(text)] if text and block in (None, "text") else []
        if kind == "input_json_delta":  # client tool_use only: a server tool's input
            part = _str(delta.get("partial_json"))  # is not the caller's to run
            is_call = part and block in (None, "tool_use")
            return [ToolCallChunk(index, arguments=part)] if is_call else []
        if kind == "thinking_delta":
            text = _text(delta, "thinking", self.raw, self.provider)
            return [ReasoningDelta(text)] if text else []
        return []  # signature_delta, citations_delta: not part of the normalized result

    def _usage(self, usage: Any) -> list[Delta]:
        if not isinstance(usage, dict):
            return []
        self.usage.update((k, v) for k, v in usage.items() if v is not None)
        return [UsageUpdate(usage_from(self.usage))]


# --- encoding helpers ------------------------------------------------------------


def encode_messages(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, alternating user/assistant messages of content blocks)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    # the caller's call id -> ids sent for it not yet answered, oldest first (a server
    # that repeats an id in one answer still gets each result paired with one call)
    wire_ids: dict[str, list[str]] = {}
    used: set[str] = set()
    for i, m in enumerate(messages):
        if m.role == "system":
            if any(isinstance(p, ImagePart) for p in m.parts):
                raise InvalidMessageError(f"messages[{i}]: a system message may hold text only")
            if m.text:
                system.append(m.text)
            continue
        if m.role == "tool":
            cid = m.tool_call_id or ""
            waiting = wire_ids.get(cid)
            wire = (waiting.pop(0) if len(waiting) > 1 else waiting[0]) if waiting \
                else _wire_id(cid)
            role, blocks = "user", [_tool_result(m, i, wire)]
        elif m.role == "assistant":
            role, blocks = "assistant", _blocks(m.parts, i)
            here: set[str] = set()
            for c in m.tool_calls:
                wire = _wire_id(c.id, used)
                used.add(wire)
                if c.id in here:
                    wire_ids[c.id].append(wire)  # a repeat within this one answer
                else:
                    wire_ids[c.id] = [wire]  # a later call with that id replaces older ones
                here.add(c.id)
                blocks.append(_tool_use(c, i, wire))
        elif m.role == "user":
            role, blocks = "user", _blocks(m.parts, i)
        else:
            raise InvalidMessageError(f"messages[{i}] has unknown role {m.role!r}")
        if not blocks:
            continue  # nothing to say; an empty turn would be rejected
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for msg in out:
        if msg["role"] == "user":  # tool results must lead their user turn
            msg["content"].sort(key=lambda b: b["type"] != "tool_result")
    return "\n\n".join(system), out


def _blocks(parts: Sequence[Part], i: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for j, p in enumerate(parts):
        if isinstance(p, TextPart):
            if p.text:  # the API rejects empty text blocks
                out.append({"type": "text", "text": p.text})
        elif isinstance(p, ImagePart):
            out.append(_image(p, f"messages[{i}].content[{j}]"))
        else:
            raise InvalidMessageError(f"messages[{i}].content[{j}]: unsupported part {p!r}")
    return out


def _image(p: ImagePart, where: str) -> dict[str, Any]:
    if p.url.startswith("data:"):
        data, media = p.base64_data, p.media_type
        if not data or not media:
            raise InvalidMessageError(
                f"{where}: a data: image URL must be base64, like data:image/png;base64,...")
        return {"type": "image",
                "source": {"type": "base64", "media_type": media, "data": data}}
    if p.url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": p.url}}
    raise InvalidMessageError(f"{where}: image URL must be http(s) or a base64 data: URL, "
                              f"not {p.url[:40]!r}")


def _wire_id(cid: str, used: set[str] | None = None) -> str:
    """The id Anthropic accepts for a call id from any provider: ``[a-zA-Z0-9_-]+``
    and unique in the request ("`tool_use` ids must be unique"). Ids of other
    providers (``functions.get_weather:0``, Gemini's per-turn ``call_0``) are
    rewritten deterministically, so the same history always encodes the same."""
    if not cid:
        return cid  # _tool_use/_tool_result say what is missing
    if _ID_OK.fullmatch(cid) and (used is None or cid not in used):
        return cid
    base = _ID_BAD.sub("_", cid)[:48]
    n = 0
    while True:
        wire = f"{base}_{hashlib.sha256(f'{cid}#{n}'.encode()).hexdigest()[:8]}"
        if used is None or wire not in used:
            return wire
        n += 1


_ID_OK = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_ID_BAD = re.compile(r"[^a-zA-Z0-9_-]")


def _tool_use(c: ToolCall, i: int, wire_id: str) -> dict[str, Any]:
    if not c.id:
        raise InvalidMessageError(f"messages[{i}]: tool call {c.name!r} has no id; Anthropic "
                                  "needs it to pair the call with its tool result")
    # The API needs an object: arguments that did not parse (arguments_error) go back
    # as {}; the tool result is where the caller tells the model what was wrong.
    return {"type": "tool_use", "id": wire_id, "name": c.name,
            "input": dict(c.arguments or {})}


def _tool_result(m: Message, i: int, wire_id: str) -> dict[str, Any]:
    if not m.tool_call_id:
        raise InvalidMessageError(f"messages[{i}] is a tool result without tool_call_id")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": wire_id}
    if isinstance(m.content, str):
        if m.content:
            block["content"] = m.content
    elif content := _blocks(m.content, i):
        block["content"] = content
    return block


def _tool(t: Tool) -> dict[str, Any]:
    described = {"description": t.description} if t.description else {}
    return {"name": t.name, **described, "input_schema": dict(t.parameters)}


def encode_tool_choice(choice: Any, tools: Sequence[Tool]) -> dict[str, Any]:
    """OpenAI-style tool_choice (or Anthropic's own dict) -> Anthropic's."""
    if isinstance(choice, str) and choice in _TOOL_CHOICE:
        return dict(_TOOL_CHOICE[choice])
    name: Any = choice
    if isinstance(choice, Mapping):
        if choice.get("type") in ("auto", "any", "none", "tool") and "function" not in choice:
            return dict(choice)  # already Anthropic's shape
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else None
    if not isinstance(name, str) or not name:
        raise InvalidMessageError(
            f"tool_choice {choice!r} not understood: use 'auto', 'required', 'none', a tool "
            "name, or {'type': 'function', 'function': {'name': ...}}")
    if tools and name not in {t.name for t in tools}:
        raise InvalidMessageError(f"tool_choice names {name!r}, which is not among the tools "
                                  f"({', '.join(t.name for t in tools)})")
    return {"type": "tool", "name": name}


def _obj(payload: Mapping[str, Any], key: str, provider: str) -> Mapping[str, Any]:
    value = payload.get(key)
    if isinstance(value, dict):
        return value
    raise _bad(f"{payload.get('type')} event without an object {key!r}", provider)


def _text(block: Mapping[str, Any], key: str, body: bytes | str,
          provider: str) -> str:
    """A text/thinking block's string; anything else is a malformed answer."""
    value = block.get(key)
    if isinstance(value, str):
        return value
    kind = "null" if value is None else f"JSON {type(value).__name__}"
    raise _bad(f"a {block.get('type')} block's {key!r} is {kind}, expected a string: "
               f"{excerpt(body)}", provider)


def _bad(message: str, provider: str) -> MalformedResponseError:
    return MalformedResponseError(message, provider=provider)


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None
