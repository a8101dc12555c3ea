"""Output types: Response, Usage, ToolCall, and the events a stream yields."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union

if TYPE_CHECKING:
    from .observe.cost import Cost
    from .types import Message

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]
Provenance = Literal["reported", "estimated", "none"]


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str
    arguments_error: str | None = None  # why raw_arguments did not parse; arguments is then None
    # provider-private data (Gemini's thought signature, ...), keyed by the provider it
    # came from and sent back only to that provider: {"gemini": {"thoughtSignature": ...}}
    provider_data: dict[str, Any] | None = None


@dataclass(slots=True)
class Usage:
    """Token counts. ``source`` says whether the provider reported them or we estimated.

    ``source == "none"``: nobody reported usage (e.g. a llama.cpp server's
    stream carries no usage chunk); the counts are then None, never zeros
    that would read as reported.

    ``input_tokens`` is the whole prompt, cached tokens included, for every
    provider (OpenAI's ``prompt_tokens`` already is; Anthropic's ``input_tokens``
    excludes cache reads and writes, so its codec adds them back).
    ``cached_input_tokens`` (prompt tokens read from the cache) and
    ``cache_write_tokens`` (prompt tokens written to it) are parts of
    ``input_tokens``, never extra. ``total_tokens`` = input + output.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    source: Provenance = "none"

    def merged(self, other: Usage) -> Usage:
        """Fields the newer report sets win; counts never go backwards to zero."""
        def pick(a: int | None, b: int | None) -> int | None:
            return b if b is not None else a  # a reported 0 is a number, not "unknown"

        def count(a: int | None, b: int | None) -> int | None:
            return a if b is None or (b == 0 and a) else b
        inp = count(self.input_tokens, other.input_tokens)
        out = count(self.output_tokens, other.output_tokens)
        total = count(self.total_tokens, other.total_tokens)
        if inp is not None or out is not None:
            total = max(total or 0, (inp or 0) + (out or 0))
        return Usage(
            inp, out, total,
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
    refusal: str | None = None  # the model declined (OpenAI ``refusal``); also in ``text``
    raw: Any = None  # decoded provider JSON (non-streamed calls)
    attempts: list[Attempt] = field(default_factory=list)
    parsed: Any = None  # the validated value when the call asked for a response_format
    cached: bool = False  # served from the response cache (usage is the original call's)
    _cost: Cost | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def message(self) -> Message:
        """This answer as the assistant message to append to a history."""
        return self.to_message()

    def to_message(self) -> Message:
        from .types import Message  # types imports this module
        return Message("assistant", self.text, list(self.tool_calls))

    @property
    def cost(self) -> Cost:
        """USD from the usage (``genai-prices``, the ``cost`` extra), computed on first
        access, never on the hot path. Unknown models give ``total=None`` + ``reason``."""
        if self._cost is None:
            from .observe.cost import cost_of
            self._cost = cost_of(self.provider, self.model, self.usage)
        return self._cost

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape the CLI and gateway print."""
        u = self.usage
        return {
            "text": self.text,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments,
                 **({"raw_arguments": c.raw_arguments, "arguments_error": c.arguments_error}
                    if c.arguments_error else {})}
                for c in self.tool_calls
            ],
            **({"refusal": self.refusal} if self.refusal is not None else {}),
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


@dataclass(slots=True)
class Embeddings(Response):
    """What ``embed()`` returns: one vector per input, in input order.

    A Response (so retries, limits, fallback and hooks treat it like any
    answer): ``usage.input_tokens`` are the tokens embedded (``source`` says
    whether the provider reported them), ``text`` stays empty.
    """

    vectors: list[list[float]] = field(default_factory=list)


# --- stream events (what callers iterate over) ------------------------------
#
# Immutable records with value equality, like frozen dataclasses, but written
# out: defining six frozen dataclasses costs ~1.7 ms at import (each generates
# and compiles its methods), which a short script's cold start pays in full.


class _Event:
    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            assert isinstance(other, _Event)
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.__class__, self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, self._values())


_set = object.__setattr__


class TextDelta(_Event):
    __slots__ = __match_args__ = ("text",)
    text: str

    def __init__(self, text: str) -> None:
        _set(self, "text", text)


class ReasoningDelta(_Event):
    __slots__ = __match_args__ = ("text",)
    text: str

    def __init__(self, text: str) -> None:
        _set(self, "text", text)


class ToolCallStart(_Event):
    __slots__ = __match_args__ = ("index", "id", "name")
    index: int  # position among this response's tool calls, 0-based
    id: str
    name: str

    def __init__(self, index: int, id: str, name: str) -> None:
        _set(self, "index", index)
        _set(self, "id", id)
        _set(self, "name", name)


class ToolCallArgumentsDelta(_Event):
    __slots__ = __match_args__ = ("index", "id", "delta")
    index: int
    id: str
    delta: str

    def __init__(self, index: int, id: str, delta: str) -> None:
        _set(self, "index", index)
        _set(self, "id", id)
        _set(self, "delta", delta)


class ToolCallEnd(_Event):
    __slots__ = __match_args__ = ("index", "tool_call")
    index: int
    tool_call: ToolCall  # arguments parsed, or None with arguments_error set

    def __init__(self, index: int, tool_call: ToolCall) -> None:
        _set(self, "index", index)
        _set(self, "tool_call", tool_call)


class UsageUpdate(_Event):
    __slots__ = __match_args__ = ("usage",)
    usage: Usage

    def __init__(self, usage: Usage) -> None:
        _set(self, "usage", usage)


StreamEvent = Union[
    TextDelta, ReasoningDelta, ToolCallStart, ToolCallArgumentsDelta, ToolCallEnd, UsageUpdate
]
