"""Scripting the ``mock`` provider: what the next call to ``mock/...`` answers.

::

    client = modelwire.AsyncClient()
    client.mock.script(
        MockReply("Hello there", usage=(12, 3)),
        MockReply(tool_calls=[("get_weather", {"city": "Paris"})]),
        MockReply(status=429, headers={"retry-after": "2"}),
        MockReply("partial answer", disconnect_after=3),
    )
    client.mock.requests  # the OpenAI JSON bodies the mock received, in order

Replies are used first in, first out, one per request. With none queued the
mock echoes the last user message (``modelwire chat -m mock/echo hi`` prints
``hi``). The mock answers on the real OpenAI wire (JSON, or SSE ending in
``data: [DONE]``), so every codec, middleware and stream path runs exactly as
it does against a live provider.

Embedding requests (``client.embed("mock/...", ...)``) get deterministic unit
vectors (:func:`modelwire.transports.mock.mock_vector`); they take a queued
reply only when it is an error (status >= 400).

Every HTTP attempt takes one reply, so with the default middleware a scripted
429 or 5xx is retried and the retry takes the next reply: script one reply per
attempt, or build the client with ``middleware=[]`` to see each failure as is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from .accumulate import parse_arguments
from .errors import ConfigurationError
from .response import ToolCall, Usage

__all__ = ["MockReply", "MockToolCallLike", "MockUsageLike"]

MockToolCallLike = Union[ToolCall, tuple[str, Union[Mapping[str, Any], str]]]
MockUsageLike = Union[Usage, tuple[int, int]]

_DEFAULT_ERRORS: dict[int, tuple[str, str]] = {  # status -> (type/code, message)
    400: ("invalid_request_error", "Invalid request (scripted by the mock)."),
    401: ("invalid_api_key", "Incorrect API key provided (scripted by the mock)."),
    403: ("permission_denied", "Permission denied (scripted by the mock)."),
    404: ("model_not_found", "The model does not exist (scripted by the mock)."),
    429: ("rate_limit_exceeded", "Rate limit reached (scripted by the mock)."),
    500: ("server_error", "The server had an error (scripted by the mock)."),
    503: ("service_unavailable", "The service is unavailable (scripted by the mock)."),
    529: ("overloaded_error", "Overloaded (scripted by the mock)."),
}


@dataclass(slots=True)
class MockReply:
    """One scripted answer.

    ``text`` / ``tool_calls``: the content. A tool call is a ``ToolCall`` or
    ``(name, arguments)`` where arguments is a dict or a raw JSON string (a
    malformed string scripts a malformed tool call). ``usage``: ``(input,
    output)`` tokens or a ``Usage``; by default a deterministic count of
    whitespace-separated words. ``reasoning``: thinking text, sent as
    ``reasoning_content`` (the DeepSeek/vLLM field). ``finish_reason``: the raw wire value
    (default ``"tool_calls"`` when there are tool calls, else ``"stop"``).

    Timing: ``latency`` seconds before the status line, ``chunk_delay`` seconds
    between stream events (the role chunk leaves with the first delta). Both
    are bounded by the call's timeouts, which then raise RequestTimeoutError
    just as a slow server would make them.

    Shape of a stream: ``text_chunks`` deltas for the text (default: one per
    word), ``arg_chunks`` fragments per tool call's arguments.

    Failures: ``status`` >= 400 sends ``error`` (a message, a full JSON body as
    a dict, or raw bytes) with ``headers`` (e.g. ``{"retry-after": "2"}``).
    ``disconnect_after=N`` resets the connection after N stream events (for a
    non-streamed call: while the body is read); ``truncate_after=N`` ends the
    stream cleanly after N events without ``[DONE]`` (non-streamed: the body is
    cut short). Both always stop before the terminal event.
    """

    text: str = ""
    tool_calls: Sequence[MockToolCallLike] = ()
    usage: MockUsageLike | None = None
    latency: float = 0.0
    chunk_delay: float = 0.0
    text_chunks: int | None = None
    arg_chunks: int = 2
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | Mapping[str, Any] | bytes | None = None
    disconnect_after: int | None = None
    truncate_after: int | None = None
    finish_reason: str | None = None
    reasoning: str = ""

    def __post_init__(self) -> None:
        for name in ("text", "reasoning"):
            if not isinstance(getattr(self, name), str):
                raise ConfigurationError(
                    f"MockReply.{name} must be a str, got {getattr(self, name)!r}")
        for name in ("latency", "chunk_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigurationError(f"MockReply.{name} must be seconds >= 0, got {value!r}")
        _count("text_chunks", self.text_chunks, minimum=1, optional=True)
        _count("arg_chunks", self.arg_chunks, minimum=1)
        _count("disconnect_after", self.disconnect_after, minimum=0, optional=True)
        _count("truncate_after", self.truncate_after, minimum=0, optional=True)
        _count("status", self.status, minimum=100)
        if not isinstance(self.headers, Mapping):
            raise ConfigurationError(f"MockReply.headers must be a dict, got {self.headers!r}")
        self.headers = {str(k).lower(): str(v) for k, v in self.headers.items()}
        self.tool_calls = [_tool_call(c, i) for i, c in enumerate(self.tool_calls)]
        if self.usage is not None and not isinstance(self.usage, Usage) and (
                not isinstance(self.usage, tuple) or len(self.usage) != 2
                or not all(isinstance(n, int) and n >= 0 for n in self.usage)):
            raise ConfigurationError(
                f"MockReply.usage must be (input_tokens, output_tokens) or a Usage, "
                f"got {self.usage!r}"
            )

    @property
    def calls(self) -> list[ToolCall]:
        """The tool calls, normalized (``__post_init__`` converted every form)."""
        return [c for c in self.tool_calls if isinstance(c, ToolCall)]

    @property
    def wire_finish_reason(self) -> str:
        if self.finish_reason:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"

    def usage_for(self, input_words: int) -> tuple[int, int]:
        """(input, output) tokens: scripted, else one per whitespace-separated word."""
        if isinstance(self.usage, Usage):
            return self.usage.input_tokens or 0, self.usage.output_tokens or 0
        if self.usage is not None:
            return self.usage
        out = len(self.text.split()) + len(self.reasoning.split())
        out += sum(len(c.raw_arguments.split()) for c in self.calls)
        return input_words, out

    def error_body(self) -> bytes:
        """The error response body: OpenAI's ``{"error": {...}}`` unless scripted raw."""
        if isinstance(self.error, bytes):
            return self.error
        if isinstance(self.error, Mapping):
            return json.dumps(dict(self.error)).encode()
        kind, message = _DEFAULT_ERRORS.get(
            self.status, ("server_error" if self.status >= 500 else "invalid_request_error",
                          f"HTTP {self.status} (scripted by the mock).")
        )
        body = {"error": {"message": self.error or message, "type": kind, "param": None,
                          "code": kind}}
        return json.dumps(body).encode()


def _count(name: str, value: Any, *, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"MockReply.{name} must be an int >= {minimum}, got {value!r}")


def _tool_call(call: Any, i: int) -> ToolCall:
    if isinstance(call, ToolCall):
        return call
    if not isinstance(call, tuple) or len(call) != 2 or not isinstance(call[0], str):
        raise ConfigurationError(
            f"MockReply.tool_calls[{i}] must be a ToolCall or (name, arguments), got {call!r}"
        )
    name, args = call
    if isinstance(args, str):  # raw arguments, possibly deliberately malformed
        parsed, error = parse_arguments(args)
        return ToolCall(f"call_mock_{i}", name, parsed, args, error)
    if not isinstance(args, Mapping):
        raise ConfigurationError(
            f"MockReply.tool_calls[{i}] arguments must be a dict or a JSON string, got {args!r}"
        )
    return ToolCall(f"call_mock_{i}", name, dict(args), json.dumps(dict(args)))
