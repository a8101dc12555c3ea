"""StreamingHandler, TokenCounter, MetricsCollector over what modelwire has today.

modelwire's observability package (exact token counting, metrics with
quantiles) is being built separately; until it lands these sit on the client's
hooks and on each Response's ``usage``. Provenance is explicit: a
``TokenCount`` or metrics total says ``"reported"`` (the provider's numbers)
or ``"estimated"`` (our heuristic, :data:`ESTIMATE_METHOD`), never one
passed off as the other. Re-pointing them later changes no caller.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..hooks import BreakerOpened, Event, FallbackTaken, RetryScheduled
from ..response import Provenance, Response, TextDelta, Usage
from ..types import MessageLike, to_messages
from ._warn import deprecated
from .errors import translated
from .types import LlmResponse

if TYPE_CHECKING:
    from ..sync import Client, Stream

ESTIMATE_METHOD = "ceil(characters / 4) per text, + 4 per message"


@dataclass(frozen=True, slots=True)
class TokenCount:
    tokens: int
    source: Provenance  # "reported" or "estimated"
    method: str = ESTIMATE_METHOD


class TokenCounter:
    """Token counts: the provider's when a Response is at hand, else an estimate."""

    def __init__(self) -> None:
        deprecated("TokenCounter", "Response.usage (reported) / modelwire.observe")

    @staticmethod
    def count_tokens(text: str, model: str | None = None) -> TokenCount:
        """An ESTIMATE (``source="estimated"``): about four characters a token."""
        return TokenCount(math.ceil(len(text) / 4), "estimated")

    def count_messages(self, messages: Iterable[MessageLike] | str,
                       model: str | None = None) -> TokenCount:
        """An ESTIMATE for a prompt: each message's text plus a few tokens of framing."""
        with translated():
            parsed = to_messages(messages)
        return TokenCount(sum(self.count_tokens(m.text).tokens + 4 for m in parsed),
                          "estimated")

    @staticmethod
    def from_usage(usage: Usage) -> TokenCount:
        """The total a response carries, with the provenance it carries."""
        return TokenCount(usage.total_tokens or 0, usage.source,
                          "provider usage" if usage.source == "reported" else ESTIMATE_METHOD)


class MetricsCollector:
    """Counts calls, errors, tokens (by provenance), latency and resilience events.

    ``attach(client)`` subscribes to a client's hooks (retries, fallbacks,
    breaker openings); ``record(response)`` / ``record_error(exc)`` are called
    by the facades (or by you). ``snapshot()`` is a plain dict.
    """

    def __init__(self) -> None:
        deprecated("MetricsCollector", "client.hooks.subscribe(...) / modelwire.observe")
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.errors: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()  # "input/reported", "output/estimated", ...
        self.latencies: list[float] = []
        self.by_provider: Counter[str] = Counter()

    def attach(self, client: Client | Any) -> Callable[[], None]:
        """Subscribe to ``client.hooks``; returns the unsubscribe function."""
        unsubscribe: Callable[[], None] = client.hooks.subscribe(self.on_event)
        return unsubscribe

    def on_event(self, event: Event) -> None:
        kind = {RetryScheduled: "retries", FallbackTaken: "fallbacks",
                BreakerOpened: "breaker_opened"}.get(type(event))
        if kind:
            self.events[kind] += 1

    def record(self, response: Response) -> None:
        self.requests += 1
        self.by_provider[response.provider] += 1
        self.latencies.append(response.latency)
        u = response.usage
        self.tokens[f"input/{u.source}"] += u.input_tokens or 0  # "input/none": unreported
        self.tokens[f"output/{u.source}"] += u.output_tokens or 0

    def record_error(self, error: BaseException) -> None:
        self.requests += 1
        self.errors[type(error).__name__] += 1

    def snapshot(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def q(p: float) -> float | None:
            return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None
        return {"requests": self.requests, "errors": dict(self.errors),
                "events": dict(self.events), "tokens": dict(self.tokens),
                "by_provider": dict(self.by_provider),
                "latency": {"count": len(lat), "p50": q(0.5), "p95": q(0.95),
                            "max": lat[-1] if lat else None}}


class StreamingHandler:
    """Consume a modelwire stream as text: ``on_chunk(text)`` per delta."""

    def __init__(self, on_chunk: Callable[[str], object] | None = None) -> None:
        deprecated("StreamingHandler", "iterating client.stream(...) for TextDelta events")
        self.on_chunk = on_chunk

    def iter_text(self, stream: Stream) -> Iterator[str]:
        with translated():
            for event in stream:
                if isinstance(event, TextDelta):
                    if self.on_chunk is not None:
                        self.on_chunk(event.text)
                    yield event.text

    def handle(self, stream: Stream) -> LlmResponse:
        """Drain the stream (calling ``on_chunk``); the final response."""
        with stream:
            for _ in self.iter_text(stream):
                pass
            return LlmResponse.from_response(stream.response)
