"""Call, Target and the middleware chain.

A middleware is ``async (call, next) -> Outcome``: it may inspect or replace the
call, call ``next`` zero or more times, and return what ``next`` returned. The
chain is a flat list, outermost first, around one terminal step (the endpoint,
which encodes, sends and decodes). ``Outcome`` is a :class:`Response` for
``complete`` and a primed :class:`~modelwire.streaming.AsyncStream` for
``stream``: the terminal step returns a stream only once its first event has
arrived, so retry and fallback can act before the caller sees any output and
never after.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, Union

from .response import Response
from .types import Message, Tool
from .validate import seconds

if TYPE_CHECKING:
    from .registry import ProviderSpec
    from .streaming import AsyncStream
    from .structured import OutputSpec

Outcome = Union[Response, "AsyncStream"]

# Per-call keyword arguments middleware understands (they land in Call.options).
# A middleware that reads a new one adds its name here, so typos are caught.
CALL_OPTIONS: set[str] = {"max_retries", "breaker", "budget", "cache", "tags"}
Next = Callable[["Call"], Awaitable[Outcome]]

MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # default limit of one complete() body
MAX_EVENT_BYTES = 16 * 1024 * 1024  # default limit of one SSE event / line in stream()


@dataclass(slots=True, frozen=True)
class Timeouts:
    """Seconds; None disables a limit.

    * ``connect``: opening the connection.
    * ``read``: the longest silence on the socket (any byte counts, SSE keep-alive
      comments included).
    * ``total``: the whole call, retries, backoff waits and fallbacks included.
    * ``first_event``: streams only, the longest wait from sending an attempt to
      its first content event. With fallbacks, a target that misses it hands
      over to the next at once (no retries on it); without, it is retried.
    """

    connect: float | None = 10.0
    read: float | None = 120.0
    total: float | None = 600.0
    first_event: float | None = None

    @classmethod
    def coerce(cls, value: Timeouts | float | None, default: Timeouts) -> Timeouts:
        """A Timeouts from seconds (for the whole call) or a Timeouts; every field
        set must be a positive, finite number (InvalidParameterError otherwise)."""
        if value is None:
            return default
        if isinstance(value, Timeouts):
            for f in fields(value):
                if (v := getattr(value, f.name)) is not None:
                    seconds(f"Timeouts.{f.name}", v)
            return value
        s = seconds("timeout", value)
        return cls(connect=min(s, default.connect or s), read=s, total=s,
                   first_event=default.first_event)


@dataclass(slots=True, frozen=True)
class Target:
    """One concrete place a call can go: provider row + model + base URL + key."""

    spec: ProviderSpec
    model: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    # e.g. azure api_version; not in repr: a program provider's env option holds keys
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def provider(self) -> str:
        return self.spec.name

    @property
    def name(self) -> str:
        return f"{self.spec.name}/{self.model}"

    @property
    def key(self) -> str:
        """Identity for breaker / rate-limit state: provider + base URL + model."""
        return f"{self.spec.name}|{self.base_url}|{self.model}"


@dataclass(slots=True)
class Call:
    """Everything about one request except where it goes (``target``)."""

    messages: list[Message]
    target: Target
    mode: Literal["chat", "text", "embed"] = "chat"
    prompt: str | None = None  # mode == "text"
    stream: bool = False
    tools: list[Tool] = field(default_factory=list)
    tool_choice: Any = None
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    top_p: float | None = None
    seed: int | None = None
    extra: Mapping[str, Any] | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    deadline: float | None = None  # time.monotonic() by which the call must finish
    fallbacks: Sequence[Target] = ()
    options: dict[str, Any] = field(default_factory=dict)  # per-call middleware knobs
    max_response_bytes: int = MAX_RESPONSE_BYTES  # a complete() body, at most
    max_event_bytes: int = MAX_EVENT_BYTES  # one stream event / line, at most
    response_format: OutputSpec | None = None  # structured output (modelwire.structured)
    inputs: list[str] | None = None  # mode == "embed": the texts to embed

    def with_target(self, target: Target) -> Call:
        return replace(self, target=target)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()


class Middleware(Protocol):
    async def __call__(self, call: Call, next: Next) -> Outcome: ...


def chain(middleware: Sequence[Middleware], terminal: Next) -> Next:
    """Compose ``middleware`` (outermost first) around ``terminal``."""
    handler = terminal
    for mw in reversed(middleware):
        handler = _bind(mw, handler)
    return handler


def _bind(mw: Middleware, nxt: Next) -> Next:
    # A plain function handing back the middleware's coroutine, not a coroutine
    # awaiting it: one frame fewer per layer on every call.
    def run(call: Call) -> Awaitable[Outcome]:
        return mw(call, nxt)
    return run
