"""Output types: Response, Usage, ToolCall, and the events a stream yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]
Provenance = Literal["reported", "estimated", "none"]


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str


@dataclass(slots=True)
class Usage:
    """Token counts. ``source`` says whether the provider reported them or we estimated.

    ``input_tokens`` is the whole prompt, cached tokens included, for every
    provider (OpenAI's ``prompt_tokens`` already is; Anthropic's ``input_tokens``
    excludes cache reads and writes, so its codec adds them back).
    ``cached_input_tokens`` (prompt tokens read from the cache) and
    ``cache_write_tokens`` (prompt tokens written to it) are parts of
    ``input_tokens``, never extra. ``total_tokens`` = input + output.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    source: Provenance = "none"

    def merged(self, other: Usage) -> Usage:
        """Fields the newer report sets win; counts never go backwards to zero."""
        def pick(a: int | None, b: int | None) -> int | None:
            return b if b is not None else a  # a reported 0 is a number, not "unknown"
        inp = other.input_tokens or self.input_tokens
        out = other.output_tokens or self.output_tokens
        total = other.total_tokens or self.total_tokens
        return Usage(
            inp, out, max(total, inp + out),
            pick(self.cached_input_tokens, other.cached_input_tokens),
            pick(self.cache_write_tokens, other.cache_write_tokens),
            pick(self.reasoning_tokens, other.reasoning_tokens),
            other.source if other.source != "none" else self.source,
        )


@dataclass(slots=True)
class Attempt:
    """One target tried while serving a call (for fallback provenance)."""

    provider: str
    model: str
    error: str | None = None  # exception class and message, None if it served


@dataclass(slots=True)
class Response:
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    provider: str = ""
    model: str = ""
    request_id: str | None = None
    latency: float = 0.0  # seconds, request sent -> response complete
    time_to_first_token: float | None = None  # streams only
    reasoning: str = ""  # thinking / reasoning text, never mixed into ``text``
    raw_finish_reason: str | None = None
    raw: Any = None  # decoded provider JSON (non-streamed calls)
    attempts: list[Attempt] = field(default_factory=list)
    cached: bool = False  # served from the response cache (usage is the original call's)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape the CLI and gateway print."""
        u = self.usage
        return {
            "text": self.text,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls
            ],
            "finish_reason": self.finish_reason,
            "usage": {
                "input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                "total_tokens": u.total_tokens, "cached_input_tokens": u.cached_input_tokens,
                "reasoning_tokens": u.reasoning_tokens, "source": u.source,
            },
            "provider": self.provider,
            "model": self.model,
            "request_id": self.request_id,
            "latency": self.latency,
        }


# --- stream events (what callers iterate over) ------------------------------


@dataclass(slots=True, frozen=True)
class TextDelta:
    text: str


@dataclass(slots=True, frozen=True)
class ReasoningDelta:
    text: str


@dataclass(slots=True, frozen=True)
class ToolCallStart:
    index: int  # position among this response's tool calls, 0-based
    id: str
    name: str


@dataclass(slots=True, frozen=True)
class ToolCallArgumentsDelta:
    index: int
    id: str
    delta: str


@dataclass(slots=True, frozen=True)
class ToolCallEnd:
    index: int
    tool_call: ToolCall  # arguments parsed


@dataclass(slots=True, frozen=True)
class UsageUpdate:
    usage: Usage


StreamEvent = Union[
    TextDelta, ReasoningDelta, ToolCallStart, ToolCallArgumentsDelta, ToolCallEnd, UsageUpdate
]
