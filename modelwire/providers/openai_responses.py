"""OpenAI Responses API codec (``POST {base_url}/responses``).

It also serves Azure's v1 API and DeepSeek's Responses-compatible endpoint: pass
``base_urls={"openai-responses": "https://<resource>.openai.azure.com/openai/v1"}``
(or ``"https://api.deepseek.com"``) with the matching ``api_keys`` entry.

* Leading system messages become ``instructions`` (joined by a blank line);
  a later system message stays in place as a ``system`` input item.
* Function tools are sent with ``strict: false``: otherwise the API rewrites
  every schema into strict mode (all fields required), unlike Chat Completions.
* No ``stop``, no ``seed`` in this API: an UnsupportedFeatureError names the
  chat-completions provider instead.
* ``text`` joins the ``output_text`` (and ``refusal``) parts as the official
  SDK's ``output_text`` does; ``reasoning`` joins the reasoning items' summary
  and ``reasoning_text`` parts with a blank line. Built-in tool items
  (``web_search_call``, ...) run at the provider: ``raw`` only.
* Streams end only with ``response.completed`` / ``response.incomplete``;
  ``response.failed`` and ``error`` events raise the typed error. The per-stream
  decoder checks what was streamed against the final response object and adds
  whatever a server sent only there, so a stream equals decode() of that object.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import errors as e
from ..accumulate import (
    CUSTOM_TOOL_INPUT,
    DONE,
    Delta,
    Finish,
    Meta,
    Refusal,
    ToolCallChunk,
    tool_call,
)
from ..errors import InvalidMessageError, MalformedResponseError, ProviderError
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
from . import openai_quirks as quirks
from .base import dumps, load_json, request_id
from .openai_compat import OpenAICodec, arguments_text

_INCOMPLETE: dict[str, FinishReason] = {
    "max_output_tokens": "length", "max_messages": "length", "content_filter": "content_filter",
}
_PIECE = "\n\n"  # between reasoning parts
_CALLS = ("function_call", "custom_tool_call")  # client tool calls among output items
_REASONING = {"response.reasoning_summary_text.delta": "summary_index",
              "response.reasoning_text.delta": "content_index"}


class ResponsesCodec:
    """encode / decode / decode_event / classify_error for the Responses API."""

    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self._compat = OpenAICodec(spec)  # the family's one error classification

    # --- encode -------------------------------------------------------------

    def encode(self, call: Call) -> WireRequest:
        model = call.target.model
        instead = f"or use the chat-completions provider ('openai/{model}') instead"
        if call.mode != "chat":
            raise e.UnsupportedFeatureError(
                f"the Responses API has no text-completion mode: pass messages, {instead}")
        for what, unset in (("stop sequences", not call.stop), ("seed", call.seed is None)):
            if not unset:
                raise e.UnsupportedFeatureError(
                    f"the OpenAI Responses API does not support {what}: leave it unset, "
                    f"{instead}")
        instructions, items = encode_input(call.messages)
        body: dict[str, Any] = {"model": model}
        if instructions:
            body["instructions"] = instructions
        body["input"] = items
        if call.tools:
            body["tools"] = [t.wire_form("openai-responses", _tool) for t in call.tools]
        if call.tool_choice is not None:
            body["tool_choice"] = encode_tool_choice(call.tool_choice, call.tools)
        if call.response_format is not None:
            body["text"] = call.response_format.responses()
        for key, value in (("temperature", call.temperature), ("top_p", call.top_p),
                           ("max_output_tokens", call.max_tokens)):
            if value is not None:
                body[key] = value
        if call.stream:
            body["stream"] = True
        if extra := call.extra:
            if "stream" in extra and bool(extra["stream"]) != call.stream:
                raise InvalidMessageError(
                    "extra={'stream': ...} contradicts the call: use stream() or complete()")
            if extra.get("background"):
                raise e.UnsupportedFeatureError(
                    "background responses must be polled, which modelwire does not do; "
                    "leave extra={'background': ...} unset")
            body.update(extra)
        headers = {"content-type": "application/json"}
        if (api_key := call.target.api_key) and self.spec.auth != "none":
            # bearer, or a header-named scheme such as Azure's "api-key"
            headers.update({"authorization": f"Bearer {api_key}"} if self.spec.auth == "bearer"
                           else {self.spec.auth: api_key})
        headers.update(self.spec.headers)
        url = f"{call.target.base_url.rstrip('/')}/responses"
        return WireRequest("POST", url, headers, dumps(body), call.stream)

    def encode_embed(self, call: Call) -> WireRequest:
        return self._compat.encode_embed(call)  # the same /embeddings endpoint

    def decode_embed(self, body: bytes, headers: Mapping[str, str], call: Call) -> Response:
        return self._compat.decode_embed(body, headers, call)

    # --- decode -------------------------------------------------------------

    def decode(self, body: bytes, headers: Mapping[str, str], call: Call) -> Response:
        data = load_json(body)
        if not isinstance(data, dict):
            raise self._bad(f"response body is JSON {type(data).__name__}, expected an object")
        if "output" not in data and isinstance(data.get("error"), dict):
            raise failed_error(self.name, data["error"])  # an error body served as 200
        try:
            self.check_status(data)
            model = str(data.get("model") or call.target.model)
            out = _Output(data.get("output"), self.name)
            finish, raw_finish = _finish(data, bool(out.calls))
        except (AttributeError, TypeError, KeyError) as exc:
            raise self._bad(f"response does not have the Responses API shape ({exc}): "
                            f"{body[:200].decode('utf-8', 'replace')!r}") from None
        usage = data.get("usage")
        rid = _str(data.get("id")) or request_id(headers, *quirks.REQUEST_ID_HEADERS)
        return Response(
            text=out.text, tool_calls=out.calls, finish_reason=finish,
            usage=usage_from(usage) if isinstance(usage, dict) else Usage(),
            provider=self.name, model=model, request_id=rid, reasoning=out.reasoning,
            raw_finish_reason=raw_finish, raw=data, refusal=out.refusal,
        )

    def check_status(self, data: Mapping[str, Any]) -> None:
        """Raise for a response that failed or is not finished."""
        status = data.get("status")
        if status in (None, "completed", "incomplete"):  # None: servers that omit it
            return
        if status == "failed":
            raise failed_error(self.name, data.get("error"))
        if status == "cancelled":
            raise ProviderError("the response was cancelled before it finished",
                                provider=self.name, code="cancelled", body=dict(data))
        raise self._bad(f"response status {status!r} is not final")

    # --- streams ------------------------------------------------------------

    def stream_decoder(self) -> Callable[[SSEEvent], list[Delta]]:
        """A fresh decoder for one stream (what the endpoint uses)."""
        return _StreamDecoder(self, memory=True)

    def decode_event(self, event: SSEEvent) -> list[Delta]:
        """One event without memory of the stream: deltas only, no check against
        the final object and no blank line between reasoning parts."""
        return _StreamDecoder(self, memory=False)(event)

    # --- errors -------------------------------------------------------------

    def classify_error(self, status: int, headers: Mapping[str, str],
                       body: bytes) -> ProviderError:
        return self._compat.classify_error(status, headers, body)

    def _bad(self, message: str) -> MalformedResponseError:
        return MalformedResponseError(message, provider=self.name)


def failed_error(provider: str, err: Any) -> ProviderError:
    """A ``response.failed`` / ``error`` event's error object as a typed error."""
    if not isinstance(err, dict):
        err = {"message": "the response failed without an error object"}
    typed = quirks.error_object(provider, None, {}, {"error": err})
    code = err.get("code")
    if type(typed) is not ProviderError or not isinstance(code, str):
        return typed  # server_error, rate_limit_exceeded, ...: the family's table knew it
    # The rest of a failed response's codes (the SDK's ResponseError.code:
    # invalid_prompt, image_*, bio_policy, ...) blame the request, except a tool timeout.
    kind = e.RequestTimeoutError if code.endswith("_timeout") else e.BadRequestError
    return e.error_for(None, typed.message, code=code, kind=kind, provider=provider,
                       body=typed.body)


class _Output:
    """Text, reasoning and client function calls of a response's ``output``.

    A wrong shape raises TypeError (``decode`` adds an excerpt of the body)."""

    def __init__(self, output: Any, provider: str) -> None:
        if not isinstance(output, list):
            raise MalformedResponseError("response has no 'output' list", provider=provider)
        texts: list[str] = []
        refusals: list[str] = []
        pieces: list[str] = []
        self.calls: list[ToolCall] = []
        self.call_index: dict[int, ToolCall] = {}  # output index -> call
        for i, item in enumerate(output):
            if not isinstance(item, dict):
                raise MalformedResponseError(f"output[{i}] is not an object", provider=provider)
            kind = item.get("type")
            if kind == "message":
                content = item.get("content")
                if not isinstance(content, list):
                    raise TypeError(f"output[{i}].content is {_kind(content)}, expected a list")
                for part in content:
                    if part.get("type") == "output_text":
                        texts.append(_text(part, "text", i))
                    elif part.get("type") == "refusal":
                        refusal = _text(part, "refusal", i)
                        texts.append(refusal)
                        refusals.append(refusal)
            elif kind == "reasoning":
                for key in ("summary", "content"):
                    pieces += [t for p in item.get(key) or () if (t := _str(p.get("text")))]
            elif kind in ("function_call", "custom_tool_call"):
                call = _call(item, i, provider)
                self.calls.append(call)
                self.call_index[i] = call
            # web_search_call, file_search_call, ...: run by the provider, raw only
        self.text = "".join(texts)
        self.refusal = "".join(refusals) if refusals else None
        self.reasoning = _PIECE.join(pieces)


def _text(part: Mapping[str, Any], key: str, i: int) -> str:
    value = part.get(key)
    if not isinstance(value, str):
        raise TypeError(f"output[{i}]: a {part.get('type')} part's {key} is {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else f"JSON {type(value).__name__}"


def _call(item: Mapping[str, Any], i: int, provider: str) -> ToolCall:
    custom = item.get("type") == "custom_tool_call"
    cid, name, raw = item.get("call_id"), item.get("name"), item.get(
        "input" if custom else "arguments")
    if not isinstance(cid, str) or not cid or not isinstance(name, str) or not name:
        raise MalformedResponseError(
            f"output[{i}]: a {item.get('type')} needs a string call_id and name",
            provider=provider)
    raw = raw if isinstance(raw, str) else json.dumps(raw or {})
    return tool_call(cid, name, raw, custom)


def _finish(data: Mapping[str, Any], has_calls: bool) -> tuple[FinishReason, str | None]:
    if data.get("status") == "incomplete":
        details = data.get("incomplete_details")
        reason = _str(details.get("reason")) if isinstance(details, dict) else ""
        # an unnamed reason still means the output was cut short
        return _INCOMPLETE.get(reason, "length"), reason or "incomplete"
    return ("tool_calls" if has_calls else "stop"), _str(data.get("status")) or None


def usage_from(u: Mapping[str, Any]) -> Usage:
    inp = _int(u.get("input_tokens")) or 0
    out = _int(u.get("output_tokens")) or 0
    itd, otd = u.get("input_tokens_details"), u.get("output_tokens_details")
    return Usage(
        inp, out, _int(u.get("total_tokens")) or inp + out,
        _int(itd.get("cached_tokens")) if isinstance(itd, dict) else None, None,
        _int(otd.get("reasoning_tokens")) if isinstance(otd, dict) else None, "reported",
    )


class _StreamDecoder:
    """One stream's events -> neutral deltas (see the module docstring)."""

    __slots__ = ("args", "calls", "codec", "ended", "memory", "piece", "reasoning", "text")

    def __init__(self, codec: ResponsesCodec, memory: bool) -> None:
        self.codec, self.memory = codec, memory
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.piece: tuple[Any, ...] | None = None  # the reasoning part being streamed
        self.calls: dict[int, str] = {}  # output index -> call_id of calls seen
        self.args: set[int] = set()  # output indexes whose arguments were streamed
        self.ended: set[int] = set()

    def __call__(self, event: SSEEvent) -> list[Delta]:
        data = event.data
        if not data.startswith("{"):
            stripped = data.strip()
            if stripped == "[DONE]":
                return [DONE]
            if not stripped:  # an empty keep-alive
                return []
        payload = load_json(data, "stream event")
        if type(payload) is not dict:
            raise self.codec._bad(f"stream event is not an object: {data[:200]!r}")
        try:
            return self._event(payload.get("type") or event.event, payload)
        except (AttributeError, TypeError, KeyError) as exc:
            raise self.codec._bad(f"stream event does not have the Responses API shape "
                                  f"({exc}): {data[:200]!r}") from None

    def _event(self, kind: str, p: dict[str, Any]) -> list[Delta]:
        if kind == "response.output_text.delta" or kind == "response.refusal.delta":
            text = p.get("delta")  # logprobs, obfuscation: ignored
            if not isinstance(text, str):
                raise TypeError(f"{kind} delta is {_kind(text)}")
            if self.memory and text:
                self.text.append(text)
            if not text:
                return []
            return [TextDelta(text) if kind == "response.output_text.delta" else Refusal(text)]
        if kind in ("response.function_call_arguments.delta",
                    "response.custom_tool_call_input.delta"):
            index, delta = p["output_index"], _str(p.get("delta"))
            if not delta:
                return []
            self.args.add(index)
            return [ToolCallChunk(index, arguments=delta)]
        if kind in _REASONING:  # a part is (event, output index, part index)
            piece = (kind, p.get("output_index"), p.get(_REASONING[kind]))
            return self._reasoning(piece, _str(p.get("delta")))
        if kind == "response.output_item.added":
            item = p["item"]
            if item.get("type") not in _CALLS:
                return []
            index, cid = p["output_index"], item.get("call_id")
            self.calls[index] = _str(cid)
            return [ToolCallChunk(index, _str(cid) or None, _str(item.get("name")) or None,
                                  custom=item.get("type") == "custom_tool_call")]
        if kind == "response.output_item.done":
            item = p["item"]
            return self._call_done(p["output_index"], item) \
                if item.get("type") in _CALLS else []
        if kind in ("response.created", "response.in_progress", "response.queued"):
            r = p["response"]
            return [Meta(_str(r.get("id")) or None, _str(r.get("model")) or None)]
        if kind in ("response.completed", "response.incomplete"):
            return self._final(p["response"])
        if kind == "response.failed":
            raise failed_error(self.codec.name, (p.get("response") or {}).get("error"))
        if kind == "error":  # fields at the top level, or nested under "error"
            err = p.get("error")
            if not isinstance(err, dict):
                err = {k: v for k, v in p.items() if k not in ("type", "sequence_number")}
            raise failed_error(self.codec.name, err)
        return []  # .done events repeat the deltas; built-in tool progress is raw only

    def _reasoning(self, piece: tuple[Any, ...], text: str) -> list[Delta]:
        if not text:
            return []
        if self.memory:
            if piece != self.piece and self.reasoning:
                text = _PIECE + text
            self.piece = piece
            self.reasoning.append(text)
        return [ReasoningDelta(text)]

    def _call_done(self, index: int, item: Mapping[str, Any]) -> list[Delta]:
        if not self.memory:
            return [ToolCallChunk(index, complete=True)]
        if index in self.ended:
            return []
        self.ended.add(index)
        custom = item.get("type") == "custom_tool_call"
        raw = _str(item.get("input" if custom else "arguments"))
        if index not in self.calls:  # never announced: the whole call arrives here
            cid, name = _str(item.get("call_id")), _str(item.get("name"))
            if not cid or not name:
                raise self.codec._bad("a function_call item needs a string call_id and name")
            self.calls[index] = cid
            return [ToolCallChunk(index, cid, name, raw, complete=True, custom=custom)]
        return [ToolCallChunk(index, arguments="" if index in self.args else raw,
                              complete=True, custom=custom)]

    def _final(self, r: dict[str, Any]) -> list[Delta]:
        codec = self.codec
        codec.check_status(r)
        out: list[Delta] = []
        if self.memory:  # add what the server sent only in the final object
            final = _Output(r.get("output"), codec.name)
            out += _missing(self.text, final.text, TextDelta)
            out += _missing(self.reasoning, final.reasoning, ReasoningDelta)
            for index, call in final.call_index.items():
                if index not in self.ended:
                    custom = call.arguments_error == CUSTOM_TOOL_INPUT
                    out += self._call_done(index, {
                        "type": "custom_tool_call" if custom else "function_call",
                        "call_id": call.id, "name": call.name,
                        "input" if custom else "arguments": call.raw_arguments})
            has_calls = bool(final.calls)
        else:
            has_calls = any(isinstance(i, dict) and i.get("type") in _CALLS
                            for i in r.get("output") or ())
        finish, raw = _finish(r, has_calls)
        out.append(Meta(_str(r.get("id")) or None, _str(r.get("model")) or None))
        if isinstance(usage := r.get("usage"), dict):
            out.append(UsageUpdate(usage_from(usage)))
        out += [Finish(finish, raw), DONE]
        return out


def _missing(streamed: list[str], final: str, make: Callable[[str], Delta]) -> list[Delta]:
    """The tail of ``final`` the stream did not carry (all of it if nothing came)."""
    sent = "".join(streamed)
    if len(final) > len(sent) and final.startswith(sent):
        return [make(final[len(sent):])]
    return []


# --- encoding helpers ----------------------------------------------------------


def encode_input(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(instructions, input items) for the conversation."""
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    custom: set[str] = set()  # ids of custom tool calls: their results are custom too
    for i, m in enumerate(messages):
        images = any(isinstance(p, ImagePart) for p in m.parts)
        if images and m.role in ("system", "assistant"):
            raise InvalidMessageError(f"messages[{i}]: a {m.role} message may hold text only")
        if m.role == "system":
            if not items:  # leading system messages are the instructions
                instructions.append(m.text)
            else:
                items.append({"role": "system", "content": [_part(TextPart(m.text))]})
        elif m.role == "user":
            items.append({"role": "user", "content": [_part(p) for p in m.parts or [TextPart("")]]})
        elif m.role == "assistant":
            if m.parts or not m.tool_calls:
                # An earlier turn as an EasyInputMessage with string content, as the
                # official SDK sends it: an output_text list would have to be a full
                # output item (id, type, status), which the spec requires.
                items.append({"role": "assistant", "content": m.text})
            items += [_function_call(c, i, j) for j, c in enumerate(m.tool_calls)]
            custom.update(c.id for c in m.tool_calls if c.arguments_error == CUSTOM_TOOL_INPUT)
        else:  # a tool result
            if not m.tool_call_id:
                raise InvalidMessageError(f"messages[{i}] is a tool result without tool_call_id")
            output: Any = [_part(p) for p in m.parts] if images else m.text
            kind = "custom_tool_call_output" if m.tool_call_id in custom else \
                "function_call_output"
            items.append({"type": kind, "call_id": m.tool_call_id, "output": output})
    return "\n\n".join(t for t in instructions if t), items


def _part(p: Part) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"type": "input_text", "text": p.text}
    return {"type": "input_image", "image_url": p.url, "detail": p.detail or "auto"}


def _function_call(c: ToolCall, i: int, j: int) -> dict[str, Any]:
    if not c.id:
        raise InvalidMessageError(
            f"messages[{i}].tool_calls[{j}] ({c.name!r}) has no id; the Responses API pairs "
            "each function_call with its function_call_output by call_id")
    if c.arguments_error == CUSTOM_TOOL_INPUT:
        return {"type": "custom_tool_call", "call_id": c.id, "name": c.name,
                "input": c.raw_arguments}
    return {"type": "function_call", "call_id": c.id, "name": c.name,
            "arguments": arguments_text(c)}


def _tool(t: Tool) -> dict[str, Any]:
    described = {"description": t.description} if t.description else {}
    if t.strict:
        from ..tools.jsonschema import strict_schema
        return {"type": "function", "name": t.name, **described,
                "parameters": strict_schema(t.parameters), "strict": True}
    return {"type": "function", "name": t.name, **described,
            "parameters": dict(t.parameters), "strict": False}


def encode_tool_choice(choice: Any, tools: Sequence[Tool]) -> Any:
    """"auto" / "none" / "required" / a tool name / a dict -> the Responses shape."""
    if isinstance(choice, str) and choice in ("auto", "none", "required", "any"):
        return "required" if choice == "any" else choice
    name = choice.name if isinstance(choice, Tool) else choice
    if isinstance(choice, Mapping):
        if not isinstance(fn := choice.get("function"), Mapping):
            return dict(choice)  # already the Responses shape (or a built-in tool)
        name = fn.get("name")  # Chat Completions' nested shape: flattened
    names = [t.name for t in tools]
    if not isinstance(name, str) or name not in names:
        raise InvalidMessageError(
            f"tool_choice {choice!r} is neither 'auto', 'none', 'required' nor the name of a "
            f"tool in this call (tools: {', '.join(names) or 'none'})")
    return {"type": "function", "name": name}


def _str(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _int(v: Any) -> int | None:
    # a negative count is junk (it would lower cost and budgets' spend)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None
