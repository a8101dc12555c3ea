"""Google Gemini (Generative Language API, v1beta) codec.

Decisions (wire facts checked against tests/fixtures/wire/gemini):

* The API key travels only in a header: URLs end up in logs and error messages.
* Streams have no terminal event; the chunk with ``finishReason`` is the last,
  so it yields Done. STOP yields Done without Finish: the accumulator then says
  "tool_calls" if calls arrived (maybe in an earlier chunk), else "stop", like
  decode. MALFORMED_FUNCTION_CALL and unknown reasons map to "error", never
  "stop". A prompt blocked outright (no candidates) is an empty Response with
  finish_reason "content_filter", like a candidate blocked by SAFETY.
* Function calls arrive whole and without ids: they become ``call_<n>`` (n =
  position among the response's calls), the name the accumulator gives id-less
  streamed calls. Gemini 3 rejects history whose calls lost their
  ``thoughtSignature``: it rides in ``ToolCall.provider_data[<provider>]`` (a
  signed call's id is ``call_<hash of the signature>``, stable across stream and
  body) and is sent back only to this provider, so the ids stay plain for any
  other. Ids of older histories (``<base>__thought__<signature>``, LiteLLM's
  convention) are still split. Signatures on text parts are kept only in ``raw``.
* Usage: input = prompt + toolUsePrompt tokens, output = candidates + thoughts
  (as OpenAI's completion_tokens include reasoning): input + output == total.
* Tool schemas go in ``parameters`` (Gemini's OpenAPI subset, accepted by every
  model), rewritten by :func:`gemini_schema`. Target option ``tool_schema="json"``
  sends ``parametersJsonSchema`` untouched instead (newer models; recursion).
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from .. import errors
from ..accumulate import DONE, Delta, Finish, Meta, ToolCallChunk
from ..errors import InvalidMessageError, MalformedResponseError, UnsupportedFeatureError
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
from .base import dumps, excerpt, load_json
from .gemini_schema import gemini_schema

SIGNATURE_SEP = "__thought__"
JSON = dict[str, Any]

_FINISH: dict[str, FinishReason] = {"STOP": "stop", "MAX_TOKENS": "length", **{
    r: "content_filter" for r in ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT",
                                  "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT",
                                  "IMAGE_RECITATION")}}
_MODES = {"auto": "AUTO", "required": "ANY", "any": "ANY", "none": "NONE"}
_BY_GOOGLE_STATUS: dict[str, type[errors.ProviderError]] = {
    "INVALID_ARGUMENT": errors.BadRequestError, "FAILED_PRECONDITION": errors.BadRequestError,
    "OUT_OF_RANGE": errors.BadRequestError, "UNAUTHENTICATED": errors.AuthenticationError,
    "PERMISSION_DENIED": errors.PermissionDeniedError, "NOT_FOUND": errors.NotFoundError,
    "RESOURCE_EXHAUSTED": errors.RateLimitError, "UNAVAILABLE": errors.ServerError,
    "INTERNAL": errors.ServerError, "UNKNOWN": errors.ServerError,
    "ABORTED": errors.ServerError, "DEADLINE_EXCEEDED": errors.RequestTimeoutError,
}
_KEY_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED"}  # they arrive as 400 INVALID_ARGUMENT

class GeminiCodec:
    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec

    def encode(self, call: Call) -> WireRequest:
        if call.mode == "text":
            raise UnsupportedFeatureError(
                f"provider {self.spec.name!r} has no plain text-completion endpoint "
                "(complete_text/stream_text); use complete() or stream() with messages")
        target = call.target
        system, contents = _contents(call.messages, self.spec.name)
        body: JSON = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        if call.tools:
            as_json = target.options.get("tool_schema") == "json"
            body["tools"] = [{"functionDeclarations": [
                t.wire_form("gemini-json", _json_declaration) if as_json
                else t.wire_form("gemini", _declaration) for t in call.tools]}]
        if (config := _tool_config(call.tool_choice, call.tools)) is not None:
            body["toolConfig"] = config
        gen = {k: v for k, v in (
            ("temperature", call.temperature), ("topP", call.top_p),
            ("maxOutputTokens", call.max_tokens), ("stopSequences", call.stop),
            ("seed", call.seed)) if v is not None}
        if call.response_format is not None:
            gen.update(call.response_format.gemini(target.options.get("tool_schema") == "json"))
        if gen:
            body["generationConfig"] = gen
        if call.extra:
            body = _merge(body, call.extra)
        base = target.base_url.rstrip("/")
        if not base.endswith(("/v1beta", "/v1", "/v1alpha")):
            base += "/v1beta"
        model = quote(target.model.removeprefix("models/"), safe="-._~")
        verb = "streamGenerateContent?alt=sse" if call.stream else "generateContent"
        headers = {"content-type": "application/json", **dict(self.spec.headers)}
        if target.api_key and self.spec.auth == "bearer":
            headers["authorization"] = f"Bearer {target.api_key}"
        elif target.api_key and self.spec.auth != "none":
            headers[self.spec.auth] = target.api_key
        return WireRequest("POST", f"{base}/models/{model}:{verb}", headers, dumps(body),
                           stream=call.stream)

    def encode_embed(self, call: Call) -> WireRequest:
        from .embed import gemini_encode
        headers = {"content-type": "application/json", **dict(self.spec.headers)}
        key = call.target.api_key
        if key and self.spec.auth == "bearer":
            headers["authorization"] = f"Bearer {key}"
        elif key and self.spec.auth != "none":
            headers[self.spec.auth] = key
        return gemini_encode(call, headers)

    def decode_embed(self, body: bytes, headers: Mapping[str, str], call: Call) -> Response:
        from .embed import gemini_decode
        return gemini_decode(body, headers, call)

    def decode(self, body: bytes, headers: Mapping[str, str], call: Call) -> Response:
        data = self._object(load_json(body), "response")
        model = data.get("modelVersion") or call.target.model
        common: JSON = dict(usage=_usage(data.get("usageMetadata")), provider=self.spec.name,
                            model=model, request_id=data.get("responseId"), raw=data)
        cand = _candidate(data)
        if cand is None:
            if block := _block_reason(data):
                return Response(finish_reason="content_filter", raw_finish_reason=block, **common)
            raise MalformedResponseError(
                "gemini response has no candidates and no promptFeedback.blockReason",
                provider=self.spec.name, model=model, body=data)
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        for part in _parts(cand, body):
            if (fc := part.get("functionCall")) is not None:
                cid, name, args, raw, private = _function_call(fc, part, len(calls),
                                                               self.spec.name)
                calls.append(ToolCall(cid or "", name, args, raw, provider_data=private))
            elif (text := _text(part, body)) is not None:
                (thoughts if part.get("thought") else texts).append(text)
        raw_reason = str(cand["finishReason"]) if cand.get("finishReason") else None
        return Response(text="".join(texts), tool_calls=calls, reasoning="".join(thoughts),
                        finish_reason=_finish(raw_reason or "STOP", bool(calls)),
                        raw_finish_reason=raw_reason, **common)

    def decode_event(self, event: SSEEvent) -> list[Delta]:
        if not event.data.strip():
            return []
        obj = self._object(load_json(event.data, "gemini stream event"), "stream event")
        out: list[Delta] = []
        rid = obj.get("responseId")
        if rid or obj.get("modelVersion"):
            out.append(Meta(rid, obj.get("modelVersion")))
        cand = _candidate(obj)
        reason = cand.get("finishReason") if cand is not None else None
        for pos, part in enumerate(_parts(cand, event.data) if cand is not None else ()):
            if (fc := part.get("functionCall")) is not None:
                # Keys are unique within a chunk; across chunks (no state to count
                # with) complete=True makes the accumulator open a new slot for a
                # named call whose key's slot has ended, and name it call_<n>.
                cid, name, _, raw, data = _function_call(fc, part, None, self.spec.name)
                out.append(ToolCallChunk(cid or f"{rid}:{pos}", cid, name, raw, complete=True,
                                         provider_data=data))
            elif text := _text(part, event.data):
                out.append(ReasoningDelta(text) if part.get("thought") else TextDelta(text))
        if usage := obj.get("usageMetadata"):
            out.append(UsageUpdate(_usage(usage)))
        if cand is None and (block := _block_reason(obj)):
            out += [Finish("content_filter", block), DONE]
        elif reason:
            if reason != "STOP":  # STOP: the accumulator picks stop / tool_calls
                out.append(Finish(_finish(str(reason), False), str(reason)))
            out.append(DONE)
        return out

    def _object(self, data: Any, what: str) -> JSON:
        if not isinstance(data, dict):
            raise MalformedResponseError(
                f"gemini {what} is JSON {type(data).__name__}, expected an object",
                provider=self.spec.name)
        if "error" in data:  # an error delivered with HTTP 200 (e.g. mid-stream)
            raise self._error(None, {}, data["error"], data)
        return data

    def encode_count_tokens(self, call: Call) -> WireRequest:
        """``models/{model}:countTokens`` for the whole request (system and tools too)."""
        request = self.encode(call)
        body = json.loads(request.body or b"{}")
        body.pop("generationConfig", None)
        body["model"] = "models/" + call.target.model.removeprefix("models/")
        request.body = dumps({"generateContentRequest": body})
        request.url = request.url.rsplit(":", 1)[0] + ":countTokens"
        request.stream = False
        return request

    def decode_count_tokens(self, body: bytes, headers: Mapping[str, str], call: Call) -> int:
        data = load_json(body) if body.startswith(b"{") else None
        n = data.get("totalTokens") if isinstance(data, dict) else None
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise MalformedResponseError(
                f"countTokens answer has no integer totalTokens: {body[:200]!r}",
                provider=self.spec.name)
        return n

    def classify_error(self, status: int, headers: Mapping[str, str],
                       body: bytes) -> errors.ProviderError:
        try:
            data: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            data = None
        if isinstance(data, list) and data and isinstance(data[0], dict):
            data = data[0]  # streamGenerateContent without alt=sse wraps errors in a list
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return self._error(status, headers, data["error"], data)
        if isinstance(data, dict) and (detail := errors.detail_message(data)):
            return errors.error_for(status, detail, headers=headers, provider=self.spec.name,
                                    body=data)
        text = body[:500].decode("utf-8", "replace").strip()
        return errors.error_for(status, text or f"HTTP {status} with an empty body",
                                headers=headers, provider=self.spec.name, body=text)

    def _error(self, status: int | None, headers: Mapping[str, str], err: Any,
               body: Any) -> errors.ProviderError:
        if not isinstance(err, dict):
            return MalformedResponseError(f"gemini error is not an object: {err!r:.200}",
                                          provider=self.spec.name, status=status, body=body)
        google = err.get("status") if isinstance(err.get("status"), str) else None
        details = [d for d in err.get("details") or () if isinstance(d, dict)]
        reason = next((d["reason"] for d in details if isinstance(d.get("reason"), str)), None)
        kind = _BY_GOOGLE_STATUS.get(google or "")
        if reason in _KEY_REASONS:
            kind = errors.AuthenticationError
        if status is None and isinstance(err.get("code"), int):
            status = err["code"]
        e = errors.error_for(status, str(err.get("message") or google or f"HTTP {status}"),
                             code=reason or google, kind=kind, headers=headers,
                             provider=self.spec.name, body=body)
        if e.retry_after is None:
            e.retry_after = _retry_delay(details)
        return e


# --- request ---------------------------------------------------------------------


def _contents(messages: Sequence[Message], provider: str) -> tuple[list[JSON], list[JSON]]:
    system: list[JSON] = []
    contents: list[JSON] = []
    names: dict[str, str] = {}  # tool_call_id -> function name; the latest assistant wins
    for i, m in enumerate(messages):
        if m.role == "system":
            system += [{"text": p.text} for p in _text_only(m, i, "system") if p.text]
        elif m.role == "tool":
            part = {"functionResponse": _function_response(m, i, names)}
            if i and messages[i - 1].role == "tool":  # results of one turn share a content
                contents[-1]["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
        else:
            parts = [_part(p, i) for p in m.parts]
            for c in m.tool_calls if m.role == "assistant" else ():
                names[c.id] = c.name
                parts.append(_call_part(c, provider))
            contents.append({"role": "model" if m.role == "assistant" else "user",
                             "parts": parts or [{"text": ""}]})
    return system, contents or [{"role": "user", "parts": [{"text": ""}]}]


def _text_only(m: Message, i: int, what: str) -> list[TextPart]:
    if any(isinstance(p, ImagePart) for p in m.parts):
        raise UnsupportedFeatureError(f"messages[{i}]: gemini accepts only text in {what} "
                                      "messages; put images in a user message")
    return [p for p in m.parts if isinstance(p, TextPart)]


def _part(p: TextPart | ImagePart, i: int) -> JSON:
    if isinstance(p, TextPart):
        return {"text": p.text}
    if p.url.startswith("data:"):
        if not p.base64_data or not p.media_type:
            raise InvalidMessageError(f"messages[{i}]: an image data: URL must look like "
                                      "'data:image/png;base64,<data>'")
        return {"inlineData": {"mimeType": p.media_type, "data": p.base64_data}}
    if p.url.startswith(("https://", "http://")):
        mime = mimetypes.guess_type(urlsplit(p.url).path)[0]
        return {"fileData": {"fileUri": p.url, **({"mimeType": mime} if mime else {})}}
    raise InvalidMessageError(f"messages[{i}]: image URL must be http(s) or a data: URL, "
                              f"got {p.url[:40]!r}")


def _call_part(c: ToolCall, provider: str) -> JSON:
    base, _, signature = c.id.partition(SIGNATURE_SEP)  # ids of older histories
    mine = (c.provider_data or {}).get(provider)
    if isinstance(mine, Mapping) and isinstance(mine.get("thoughtSignature"), str):
        signature = mine["thoughtSignature"]
    # args must be an object: arguments that did not parse (arguments_error) go back
    # as {}; the tool result is where the caller tells the model what was wrong.
    part: JSON = {"functionCall": {"name": c.name, "args": c.arguments or {},
                                   **({"id": base} if base else {})}}
    if signature:
        part["thoughtSignature"] = signature
    return part


def _function_response(m: Message, i: int, names: Mapping[str, str]) -> JSON:
    cid = m.tool_call_id or ""
    name = names.get(cid) or m.name
    if not name:
        raise InvalidMessageError(
            f"messages[{i}] is a tool result for tool_call_id {cid!r}, but no earlier "
            "assistant message has a tool call with that id; gemini needs the function "
            "name of every result (or set 'name' on the tool message)")
    text = "".join(p.text for p in _text_only(m, i, "tool"))
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    base = cid.partition(SIGNATURE_SEP)[0]
    return {"name": name, "response": value if isinstance(value, dict) else {"result": text},
            **({"id": base} if base else {})}


def _json_declaration(tool: Tool) -> JSON:
    return _declaration(tool, True)


def _declaration(tool: Tool, as_json: bool = False) -> JSON:
    decl: JSON = {"name": tool.name, **({"description": tool.description}
                                        if tool.description else {})}
    if as_json:
        decl["parametersJsonSchema"] = {k: v for k, v in tool.parameters.items()
                                        if k != "$schema"}
        return decl
    params = gemini_schema(tool.parameters)
    if params.get("properties") or params.get("anyOf") or params.get("type") != "OBJECT":
        decl["parameters"] = params  # left out for tools without arguments, as documented
    return decl


def _tool_config(choice: Any, tools: Sequence[Tool]) -> JSON | None:
    if choice is None:
        return None
    name = choice
    if isinstance(choice, Mapping):  # {"type": "function", "function": {"name": ...}}, ...
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else choice.get("name")
        name = choice.get("type") if name is None else name
    if isinstance(name, str) and name in _MODES:
        return {"functionCallingConfig": {"mode": _MODES[name]}}
    if not isinstance(name, str) or name not in {t.name for t in tools}:
        raise InvalidMessageError(
            f"tool_choice {choice!r} is not 'auto', 'required', 'none' or the name of one "
            f"of the tools ({', '.join(t.name for t in tools) or 'none given'})")
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> JSON:
    """``extra`` over ``base``; nested objects (generationConfig, ...) merge key by key."""
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        out[key] = (_merge(old, value) if isinstance(old, Mapping) and isinstance(value, Mapping)
                    else value)
    return out


# --- response --------------------------------------------------------------------


def _candidate(obj: JSON) -> JSON | None:
    cands = obj.get("candidates")
    if cands and not isinstance(cands, list):
        raise MalformedResponseError("gemini 'candidates' is not a list")
    return next((c for c in cands or () if isinstance(c, dict) and c.get("index", 0) == 0),
                None)


def _block_reason(obj: JSON) -> str | None:
    feedback = obj.get("promptFeedback")
    block = feedback.get("blockReason") if isinstance(feedback, dict) else None
    return str(block) if block else None


def _parts(cand: JSON, body: bytes | str) -> list[JSON]:
    """The candidate's parts. No content, or content without parts, is an empty
    answer (a safety block, MAX_TOKENS spent on thinking); a null or non-list
    ``parts``, or a content that is not an object, is a malformed answer."""
    content = cand.get("content")
    if content is None:
        return []
    if not isinstance(content, dict):
        raise MalformedResponseError(
            f"gemini candidate content is not an object: {excerpt(body)}")
    if "parts" not in content:
        return []
    parts = content["parts"]
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise MalformedResponseError(
            f"gemini candidate content.parts is not a list of objects: {excerpt(body)}")
    return parts


def _text(part: JSON, body: bytes | str) -> str | None:
    text = part.get("text")
    if text is None or isinstance(text, str):
        return text
    raise MalformedResponseError(
        f"gemini part text is JSON {type(text).__name__}, expected a string: {excerpt(body)}")


def _function_call(fc: Any, part: JSON, index: int | None,
                   provider: str) -> tuple[str | None, str, JSON, str, JSON | None]:
    """(id, name, args, raw args, provider data); id None (index None) leaves naming
    to the accumulator. A thought signature goes to provider data, keyed by provider."""
    name = fc.get("name") if isinstance(fc, dict) else None
    if not isinstance(name, str) or not name:
        raise MalformedResponseError(f"gemini functionCall without a name: {fc!r:.200}")
    args = fc.get("args") or {}
    if not isinstance(args, dict):
        raise MalformedResponseError(f"gemini functionCall {name!r} args is not an object")
    cid = fc.get("id") if isinstance(fc.get("id"), str) and fc.get("id") else None
    signature = part.get("thoughtSignature")
    data: JSON | None = None
    if isinstance(signature, str) and signature:  # a stable id the stream can rebuild
        cid = cid or "call_" + hashlib.sha256(signature.encode()).hexdigest()[:16]
        data = {provider: {"thoughtSignature": signature}}
    elif cid is None and index is not None:
        cid = f"call_{index}"
    return cid, name, args, json.dumps(args), data


def _finish(raw: str, has_calls: bool) -> FinishReason:
    reason = _FINISH.get(raw, "error")  # MALFORMED_FUNCTION_CALL, OTHER, unknown: error
    return "tool_calls" if reason == "stop" and has_calls else reason


def _int(value: Any) -> int:
    # a negative count is junk (it would lower cost and budgets' spend)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _usage(meta: Any) -> Usage:
    if not isinstance(meta, dict):
        return Usage()
    inp = _int(meta.get("promptTokenCount")) + _int(meta.get("toolUsePromptTokenCount"))
    thoughts, cached = meta.get("thoughtsTokenCount"), meta.get("cachedContentTokenCount")
    out = _int(meta.get("candidatesTokenCount")) + _int(thoughts)
    return Usage(inp, out, _int(meta.get("totalTokenCount")) or inp + out,
                 cached_input_tokens=None if cached is None else _int(cached),
                 reasoning_tokens=None if thoughts is None else _int(thoughts),
                 source="reported")


def _retry_delay(details: Sequence[JSON]) -> float | None:
    """RetryInfo.retryDelay is a protobuf Duration: "12s" or "0.5s" in JSON."""
    for d in details:
        delay = d.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return min(max(float(delay[:-1]), 0.0), 600.0)
            except ValueError:
                return None
    return None
