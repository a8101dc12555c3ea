"""The OpenAI Chat Completions codec, shared by every OpenAI-compatible row.

Provider differences (URLs, request fields, error bodies) live in
:mod:`.openai_quirks`; this module reads the response variants:

* reasoning arrives as ``reasoning_content`` (DeepSeek, vLLM) or ``reasoning``
  (OpenRouter, Groq, Ollama); Groq's ``<think>`` stays in the text as sent;
* Mistral's reasoning models send ``content`` as a list of text/thinking chunks;
* usage may come as top-level ``usage`` or Groq's ``x_groq.usage``; cached
  prompt tokens as ``prompt_tokens_details.cached_tokens``,
  ``prompt_cache_hit_tokens`` (DeepSeek) or ``num_cached_tokens`` (Mistral);
* a 200 body or stream chunk may carry an ``error`` object (OpenRouter), and
  Groq sends ``event: error`` inside a 200 stream: both raise typed errors.

``Response.request_id`` is the body's completion ``id`` (``chatcmpl-...``),
because streams carry only that; when a body has none, the ``x-request-id``
header (Azure: ``apim-request-id``) is used instead.

End of stream: only ``data: [DONE]`` is terminal. A chunk with a
``finish_reason`` is not, because usage (``stream_options.include_usage``),
OpenRouter's usage chunk and Azure/OpenRouter moderation chunks follow it.
``[DONE]`` is the documented terminator of the wire, every recorded stream here
ends with it, and llama-cpp-python's server (read from its source) sends it
after its last chunk and also when it interrupts a request; so a stream that
lacks it was cut and must be an error, never a silently short answer. A row
whose server truly never sends it can set ``options={"stream_end": "finish"}``
to end at the finish chunk. ``[DONE]`` without any finish reason before it is
an interrupted answer too (llama.cpp's server sends that when it cuts a request).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from typing import Any

from ..accumulate import (
    CUSTOM_TOOL_INPUT,
    DONE,
    DONE_AFTER_FINISH,
    Delta,
    Finish,
    Meta,
    Refusal,
    ToolCallChunk,
    tool_call,
)
from ..errors import (
    InvalidMessageError,
    MalformedResponseError,
    ProviderError,
    UnsupportedFeatureError,
)
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
from ..types import ImagePart, Message, TextPart, Tool
from ..wire.sse import SSEEvent
from . import openai_quirks as quirks
from .base import dumps, load_json, request_id

# json.loads' C scanner without its Python wrappers (type checks, encoding sniff,
# two whitespace regexes). Anything but one bare JSON value falls back to
# json.loads, so values and errors are exactly json.loads'.
_scan: Callable[[str, int], tuple[Any, int]] = \
    json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # not in typeshed


def _loads_body(body: bytes) -> Any:
    """load_json(body), faster for a UTF-8 body that starts with ``{``."""
    if body[:1] == b"{" and body[1:2] != b"\x00":  # json.detect_encoding says utf-8
        try:
            text = body.decode("utf-8", "surrogatepass")  # as json.loads does
            value, end = _scan(text, 0)
            if end == len(text):
                return value
        except (ValueError, StopIteration):
            pass
    return load_json(body)


_FINISH: dict[str, FinishReason] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls",
    "content_filter": "content_filter", "function_call": "tool_calls",
    # seen from compatible servers and gateways
    "eos": "stop", "end_turn": "stop", "stop_sequence": "stop",
    "max_tokens": "length", "model_length": "length", "tool_use": "tool_calls",
    "safety": "content_filter", "recitation": "content_filter", "error": "error",
    "insufficient_system_resource": "error",  # DeepSeek: generation was cut off
}


class OpenAICodec:
    """encode / decode / decode_event / classify_error for Chat Completions."""

    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self._finish_ends = spec.options.get("stream_end") == "finish"
        self._anon = itertools.count()  # keys for tool fragments with no index and no id

    # --- encode -----------------------------------------------------------

    def encode(self, call: Call) -> WireRequest:
        target = call.target
        body: dict[str, Any] = {"model": target.model}
        mode, stop = call.mode, call.stop
        templated = None
        if mode == "chat" and target.options.get("completion_only"):
            # a chat call to a completion-only endpoint: render the chat template
            from ..chat_template import completion_only_request
            templated = completion_only_request(call, target.options)
        if templated is not None:
            body["prompt"], extra_stops = templated
            mode, stop = "text", [*(stop or ()), *extra_stops] or None
        elif mode == "chat":
            body["messages"] = [_message(m) for m in call.messages]
            if self.name in quirks.CALL_ID_RULES:
                quirks.map_call_ids(self.name, body["messages"])
            if call.tools:
                body["tools"] = [t.wire_form("openai", _tool) for t in call.tools]
            if call.tool_choice is not None:
                body["tool_choice"] = quirks.tool_choice(self.name, call.tool_choice, call.tools)
            if call.response_format is not None:
                body["response_format"] = call.response_format.openai(self.name)
        else:
            if call.prompt is None:
                raise InvalidMessageError("a text completion needs a prompt")
            if call.tools:
                raise UnsupportedFeatureError("tools need a chat call, not a text completion")
            body["prompt"] = call.prompt
        optional = (
            ("temperature", call.temperature),
            (quirks.max_tokens_field(target, mode), call.max_tokens),
            ("stop", stop), ("top_p", call.top_p),
            (quirks.seed_field(self.name), call.seed),
        )
        for key, value in optional:
            if value is not None:
                body[key] = value
        if call.stream:
            body["stream"] = True
            if self.spec.stream_usage and quirks.accepts_stream_options(self.name):
                body["stream_options"] = {"include_usage": True}
        if call.extra:
            _check_extra(call.extra, call.stream)
            body.update(call.extra)
        return WireRequest("POST", quirks.endpoint_url(target, mode),
                           self._headers(target.api_key), dumps(body), call.stream)

    def encode_embed(self, call: Call) -> WireRequest:
        from .embed import openai_encode
        return openai_encode(call, self._headers(call.target.api_key))

    def decode_embed(self, body: bytes, headers: Mapping[str, str], call: Call) -> Response:
        from .embed import openai_decode
        return openai_decode(body, headers, call)

    def _headers(self, key: str | None) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        auth = self.spec.auth
        if key is not None and auth != "none":
            if auth == "bearer":
                headers["authorization"] = f"Bearer {key}"
            else:  # "api-key" (Azure) and any other header-named scheme
                headers[auth] = key
        headers.update(self.spec.headers)
        return headers

    # --- decode -----------------------------------------------------------

    def decode(self, body: bytes, headers: Mapping[str, str], call: Call) -> Response:
        data = _loads_body(body)
        if not isinstance(data, dict):
            raise MalformedResponseError(
                f"response body is JSON {type(data).__name__}, expected an object",
                provider=self.name)
        if data.get("error"):  # OpenRouter reports some failures with HTTP 200
            raise self._error(None, headers, data)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise MalformedResponseError(
                f"response has no choices: {body[:200].decode('utf-8', 'replace')!r}",
                provider=self.name)
        try:
            return self._response(data, choices[0], headers, call)
        except (AttributeError, TypeError, KeyError) as e:  # a body of the wrong shape
            raise MalformedResponseError(
                f"response does not have the chat-completion shape ({e}): "
                f"{body[:200].decode('utf-8', 'replace')!r}", provider=self.name) from None

    def _response(self, data: dict[str, Any], choice: dict[str, Any],
                  headers: Mapping[str, str], call: Call) -> Response:
        # A wrong shape raises TypeError, which decode turns into MalformedResponseError.
        message = choice.get("message")
        reasoning: Any = ""
        refusal = None
        if isinstance(message, dict):
            content = message.get("content")
            if type(content) is str:  # the common case, without _content's call
                text = content
            else:
                text, reasoning = _content(content)
            reasoning = reasoning or message.get("reasoning_content") or \
                message.get("reasoning") or ""
            refusal = message.get("refusal")
            if refusal is not None and not isinstance(refusal, str):
                raise TypeError(f"message.refusal is JSON {type(refusal).__name__}")
            text = text or refusal or ""
            calls = self._tool_calls(message) \
                if message.get("tool_calls") or message.get("function_call") is not None else []
        elif "message" in choice or not isinstance(choice.get("text"), str):
            raise TypeError(f"choices[0].message is {_kind(message)}, expected an object "
                            "(or a text-completion 'text' string)")
        else:  # legacy text completion
            text, calls = choice["text"], []
        raw_finish = str(choice["finish_reason"]) if choice.get("finish_reason") else None
        finish = _finish(raw_finish) if raw_finish else "tool_calls" if calls else "stop"
        usage = data.get("usage") or (data.get("x_groq") or {}).get("usage")
        return Response(
            text=text, tool_calls=calls, finish_reason=finish,
            usage=_usage(usage) if isinstance(usage, dict) else Usage(),
            provider=self.name, model=str(data.get("model") or call.target.model),
            request_id=data.get("id") or request_id(headers, *quirks.REQUEST_ID_HEADERS),
            reasoning=str(reasoning), raw_finish_reason=raw_finish, raw=data,
            refusal=refusal or None,
        )

    def _tool_calls(self, message: dict[str, Any]) -> list[ToolCall]:
        items = message.get("tool_calls") or []
        if not items and isinstance(message.get("function_call"), dict):
            items = [{"function": message["function_call"]}]  # legacy functions API
        if not isinstance(items, list):
            raise TypeError(f"message.tool_calls is {_kind(items)}, expected a list")
        out = []
        for i, tc in enumerate(items):
            custom = tc.get("custom") if isinstance(tc, dict) else None
            fn = custom if isinstance(custom, dict) else \
                tc.get("function") if isinstance(tc, dict) else None
            if not isinstance(fn, dict) or not fn.get("name") or not isinstance(fn["name"], str):
                raise MalformedResponseError(
                    f"tool call {i} has no function name: {tc!r}"[:300], provider=self.name)
            raw = fn.get("input" if fn is custom else "arguments")
            raw = raw if isinstance(raw, str) else json.dumps(raw or {})
            out.append(tool_call(str(tc.get("id") or f"call_{i}"), fn["name"], raw,
                                 custom=fn is custom))
        return out

    # --- decode_event (the streaming hot path) ----------------------------

    def decode_event(self, event: SSEEvent) -> list[Delta]:
        data = event.data
        if data == "[DONE]":
            return [DONE_AFTER_FINISH]
        try:
            chunk, end = _scan(data, 0)
            if end != len(data):
                raise ValueError(data)
        except (ValueError, StopIteration):
            try:
                chunk = json.loads(data)
            except ValueError:
                return self._odd_event(data)
        if type(chunk) is not dict:
            raise MalformedResponseError(
                f"stream event is JSON {type(chunk).__name__}, expected an object: "
                f"{data[:200]!r}", provider=self.name)
        if event.event == "error" or chunk.get("error"):  # Groq / OpenRouter in-stream
            raise self._error(None, {}, chunk)
        try:
            # Fast path for the bulk of a stream: one choice whose delta is one text
            # or tool-call fragment and nothing else; the same deltas _chunk gives.
            choices = chunk.get("choices")
            if type(choices) is list and choices:
                ch = choices[0]
                if type(ch) is dict:
                    delta = ch.get("delta")
                    if (type(delta) is dict and len(delta) == 1 and not ch.get("finish_reason")
                            and ch.get("index", 0) == 0 and not chunk.get("usage")
                            and "x_groq" not in chunk):
                        content = delta.get("content")
                        if type(content) is str:
                            return [TextDelta(content)] if content else []
                        calls = delta.get("tool_calls")
                        if type(calls) is list:
                            out: list[Delta] = []
                            self._tool_chunks(calls, out)
                            return out
            return self._chunk(chunk)
        except (AttributeError, TypeError, KeyError) as e:  # a chunk of the wrong shape
            raise MalformedResponseError(
                f"stream chunk does not have the chat-completion shape ({e}): {data[:200]!r}",
                provider=self.name) from None

    def _chunk(self, chunk: dict[str, Any]) -> list[Delta]:
        out: list[Delta] = []
        ends = False
        choices = chunk.get("choices")
        if choices:
            ch = choices[0]
            if ch.get("index", 0) == 0:  # one choice per call (encode refuses n > 1)
                delta = ch.get("delta")
                if delta is None:  # text-completion chunk
                    text = ch.get("text")
                    if text is not None and type(text) is not str:
                        raise TypeError(f"choices[0].text is {_kind(text)}")
                    if text:
                        out.append(TextDelta(text))
                elif type(delta) is not dict:
                    raise TypeError(f"choices[0].delta is {_kind(delta)}, expected an object")
                else:
                    if "role" in delta:  # a response's first chunk names it
                        out.append(Meta(chunk.get("id") or None, chunk.get("model") or None))
                    content = delta.get("content")
                    if content is not None and content != "":
                        if type(content) is str:
                            out.append(TextDelta(content))
                        else:
                            text, thought = _content(content)
                            if thought:
                                out.append(ReasoningDelta(thought))
                            if text:
                                out.append(TextDelta(text))
                    if reasoning := delta.get("reasoning_content") or delta.get("reasoning"):
                        out.append(ReasoningDelta(reasoning))
                    if refusal := delta.get("refusal"):
                        if type(refusal) is not str:
                            raise TypeError(f"delta.refusal is {_kind(refusal)}")
                        out.append(Refusal(refusal))
                    if calls := delta.get("tool_calls"):
                        if type(calls) is not list:
                            raise TypeError(f"delta.tool_calls is {_kind(calls)}")
                        self._tool_chunks(calls, out)
                if fr := ch.get("finish_reason"):
                    out.append(Meta(chunk.get("id") or None, chunk.get("model") or None))
                    out.append(Finish(_finish(fr), fr))
                    ends = self._finish_ends
        usage = chunk.get("usage")
        if not usage and "x_groq" in chunk:  # Groq's older streams
            usage = (chunk["x_groq"] or {}).get("usage")
        if usage:
            out.append(UsageUpdate(_usage(usage)))
        if ends:
            out.append(DONE)  # last: the accumulator reads nothing after the terminal event
        return out

    def _tool_chunks(self, calls: list[Any], out: list[Delta]) -> None:
        for tc in calls:
            custom = tc.get("custom")
            fn = custom if type(custom) is dict else tc.get("function") or {}
            tid = tc.get("id")
            key = tc.get("index")
            if key is None:
                key = tid if tid else f"~{next(self._anon)}"
            args = fn.get("input" if fn is custom else "arguments")
            if args is not None and type(args) is not str:
                args = json.dumps(args)
            name = fn.get("name")
            if name is not None and type(name) is not str:
                raise TypeError(f"tool call name is {_kind(name)}")
            out.append(ToolCallChunk(key, tid or None, name or None, args or "",
                                     custom=fn is custom))

    def _odd_event(self, data: str) -> list[Delta]:
        stripped = data.strip()
        if stripped == "[DONE]":
            return [DONE_AFTER_FINISH]
        if not stripped:  # an empty keep-alive data line
            return []
        raise MalformedResponseError(
            f"stream event data is not valid JSON: {data[:200]!r}", provider=self.name)

    # --- errors -----------------------------------------------------------

    def classify_error(self, status: int, headers: Mapping[str, str],
                       body: bytes) -> ProviderError:
        return quirks.classify(self.name, status, headers, body)

    def _error(self, status: int | None, headers: Mapping[str, str],
               payload: dict[str, Any]) -> ProviderError:
        return quirks.error_object(self.name, status, headers, payload)


# --- helpers ---------------------------------------------------------------


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role}
    content = m.content
    if isinstance(content, str):
        out["content"] = content
    else:
        out["content"] = [_part(p) for p in content]
    if m.tool_calls:
        if not content:
            out["content"] = None
        out["tool_calls"] = [_call(c) for c in m.tool_calls]
    if m.role == "tool":
        out["tool_call_id"] = m.tool_call_id
    if m.name:
        out["name"] = m.name
    return out


def _call(c: ToolCall) -> dict[str, Any]:
    if c.arguments_error == CUSTOM_TOOL_INPUT:
        return {"id": c.id, "type": "custom", "custom": {"name": c.name, "input": c.raw_arguments}}
    return {"id": c.id, "type": "function",
            "function": {"name": c.name, "arguments": arguments_text(c)}}


def arguments_text(c: ToolCall) -> str:
    """The arguments to send back in history: the model's own text if it did not parse."""
    if c.arguments is None:
        return c.raw_arguments
    return json.dumps(c.arguments, ensure_ascii=False, allow_nan=False)


def _kind(value: Any) -> str:
    return "null" if value is None else f"JSON {type(value).__name__}"


def _part(p: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"type": "text", "text": p.text}
    image: dict[str, Any] = {"url": p.url}
    if p.detail:
        image["detail"] = p.detail
    return {"type": "image_url", "image_url": image}


def _tool(t: Tool) -> dict[str, Any]:
    """One tool in the chat-completions shape (cached on the Tool by ``wire_form``)."""
    fn: dict[str, Any] = {"name": t.name}
    if t.description:
        fn["description"] = t.description
    if t.strict:
        from ..tools.jsonschema import strict_schema
        fn["parameters"], fn["strict"] = strict_schema(t.parameters), True
    else:
        fn["parameters"] = dict(t.parameters)
    return {"type": "function", "function": fn}


def _check_extra(extra: Mapping[str, Any], stream: bool) -> None:
    n = extra.get("n")
    if n is not None and n != 1:
        raise UnsupportedFeatureError(
            "extra={'n': ...} asks for several choices; modelwire returns one response per "
            "call, so make several calls instead")
    if "stream" in extra and bool(extra["stream"]) != stream:
        raise InvalidMessageError(
            "extra={'stream': ...} contradicts the call: use stream() or complete()")


def _content(content: Any) -> tuple[str, str]:
    """(text, reasoning) from a string or a list of content chunks (Mistral)."""
    if content is None:
        return "", ""
    if isinstance(content, str):
        return content, ""
    if not isinstance(content, list):
        raise TypeError(f"message content is {_kind(content)}, expected a string or a list")
    text: list[str] = []
    thought: list[str] = []
    for part in content:
        if isinstance(part, str):
            text.append(part)
        elif not isinstance(part, dict):
            raise TypeError(f"a content part is {_kind(part)}, expected an object")
        else:
            kind = part.get("type")
            if kind == "text":
                value = part.get("text")
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"a text part's text is {_kind(value)}")
                text.append(value or "")
            elif kind == "thinking":
                inner = part.get("thinking")
                if isinstance(inner, str):
                    thought.append(inner)
                elif isinstance(inner, list):
                    thought.extend(str(p.get("text") or "") for p in inner if isinstance(p, dict))
    return "".join(text), "".join(thought)


def _finish(raw: str) -> FinishReason:
    return _FINISH.get(raw, "stop")  # unknown values: the model stopped; raw is kept


def _int(v: Any) -> int | None:
    return v if type(v) is int else None


def _usage(u: dict[str, Any]) -> Usage:
    inp = _int(u.get("prompt_tokens")) or 0
    out = _int(u.get("completion_tokens")) or 0
    ptd = u.get("prompt_tokens_details")
    ptd = ptd if isinstance(ptd, dict) else {}
    ctd = u.get("completion_tokens_details")
    cached = _int(ptd.get("cached_tokens"))
    if cached is None:  # DeepSeek, Mistral
        cached = _int(u.get("prompt_cache_hit_tokens"))
        if cached is None:
            cached = _int(u.get("num_cached_tokens"))
    return Usage(
        inp, out, _int(u.get("total_tokens")) or inp + out, cached,
        _int(ptd.get("cache_write_tokens")),
        _int(ctd.get("reasoning_tokens")) if isinstance(ctd, dict) else None,
        "reported",
    )

