"""The in-process server's request side: an OpenAI JSON body -> llama-cpp-python arguments.

Pure functions, no llama.cpp import: validation errors become OpenAI-shaped
4xx bodies (so the codec classifies them like any server's), and defaults
follow llama.cpp's own server so the ``local`` and ``llamacpp`` rows answer alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import UnsupportedFeatureError
from .base import WireRequest

_DEFAULTS = {"temperature": 0.8, "top_p": 0.95, "min_p": 0.05, "top_k": 40,
             "repeat_penalty": 1.1}
_FLOATS = ("temperature", "top_p", "min_p", "typical_p", "presence_penalty",
           "frequency_penalty", "repeat_penalty")


class Invalid(Exception):
    """A request the server answers with a 4xx status."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.param, self.status = message, param, status


@dataclass(slots=True)
class LocalRequest:
    name: str  # the model name the caller used
    kind: str  # "chat" (create_chat_completion) | "text" (create_completion)
    kwargs: dict[str, Any]
    stream: bool
    include_usage: bool


def parse(req: WireRequest) -> LocalRequest:
    if req.url.endswith("chat/completions"):
        kind = "chat"
    elif req.url.endswith("completions"):
        kind = "text"
    else:
        raise Invalid(f"no such endpoint: {req.url!r}", status=404)
    if req.method != "POST":
        raise Invalid(f"{req.method} is not allowed here; use POST", status=405)
    try:
        body = json.loads(req.body or b"")
    except (ValueError, RecursionError) as e:
        raise Invalid(f"the request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise Invalid("the request body must be a JSON object")
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise Invalid("'model' must be a non-empty string", "model")
    if body.get("n", 1) != 1:
        raise Invalid("'n' must be 1: a local model answers one choice per call", "n")
    kw: dict[str, Any] = dict(_DEFAULTS, model=name)
    for key in _FLOATS:
        if body.get(key) is not None:
            kw[key] = _number(body[key], key)
    for key in ("seed", "top_k"):
        if body.get(key) is not None:
            kw[key] = _integer(body[key], key)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    kw["max_tokens"] = 16 if limit is None and kind == "text" else limit  # the wire's default
    if limit is not None:
        _integer(limit, "max_tokens", 1)
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise Invalid("'stop' must be a string or an array of strings", "stop")
        kw["stop"] = stop
    if (bias := body.get("logit_bias")) is not None:
        if not isinstance(bias, dict):
            raise Invalid("'logit_bias' must map token ids to numbers", "logit_bias")
        kw["logit_bias"] = {_integer(_int_key(k), "logit_bias"): _number(v, "logit_bias")
                            for k, v in bias.items()}
    if kind == "chat":
        kw["messages"] = _messages(body.get("messages"))
        for key in ("tools", "tool_choice"):
            if body.get(key) is not None:
                kw[key] = body[key]
        if (fmt := _response_format(body.get("response_format"))) is not None:
            kw["response_format"] = fmt
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise Invalid("'prompt' must be a string", "prompt")
        kw["prompt"] = prompt
    options = body.get("stream_options")
    usage = isinstance(options, dict) and bool(options.get("include_usage"))
    return LocalRequest(name, kind, kw, bool(body.get("stream")), usage)


def _number(v: Any, key: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Invalid(f"'{key}' must be a number, got {v!r}", key)
    return float(v)


def _integer(v: Any, key: str, minimum: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or (minimum is not None and v < minimum):
        floor = f" >= {minimum}" if minimum is not None else ""
        raise Invalid(f"'{key}' must be an integer{floor}, got {v!r}", key)
    return v


def _int_key(k: str) -> Any:
    return int(k) if isinstance(k, str) and k.lstrip("-").isdigit() else k


def _messages(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise Invalid("'messages' must be a non-empty array", "messages")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise Invalid(f"messages[{i}] must be an object with a 'role'", "messages")
        m = dict(m)
        content = m.get("content")
        if content is None:  # an assistant turn that only called tools
            m["content"] = ""
        elif isinstance(content, list):  # chat templates expect a string
            texts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text":
                    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                    raise UnsupportedFeatureError(
                        f"local models take text only; messages[{i}] has a {kind!r} part")
                texts.append(str(part.get("text") or ""))
            m["content"] = "".join(texts)
        elif not isinstance(content, str):
            raise Invalid(f"messages[{i}].content must be a string or an array", "messages")
        out.append(m)
    return out


def _response_format(fmt: Any) -> dict[str, Any] | None:
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return None
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):  # llama.cpp's spelling of a schema-constrained answer
            return {"type": "json_object", "schema": schema}
    raise Invalid(f"unsupported response_format: {fmt!r}", "response_format")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sse(obj: Any) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


def error_body(message: str, status: int, param: str | None = None) -> bytes:
    kind = {404: "not_found_error", 405: "invalid_request_error"}.get(
        status, "invalid_request_error" if status < 500 else "server_error")
    code = "context_length_exceeded" if "exceed context window" in message else None
    return dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})
