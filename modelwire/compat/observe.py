"""StreamingHandler, TokenCounter, MetricsCollector over modelwire.observe.

``TokenCounter`` counts with :func:`modelwire.observe.tokens.count_tokens`
(the model's own tokenizer: ``source="exact"``), asks the provider when given
a client and the provider counts (``"provider"``), and otherwise returns a
flagged estimate (``"estimated"``, with ``method`` saying how). Every
``TokenCount`` says which it is; none is passed off as another.

``MetricsCollector`` is a view over modelwire's own metrics
(:class:`modelwire.observe.metrics.MetricsCollector`, ``client.metrics``):
the facades hand it to their client, so retries, fallbacks, breaker
openings, tokens and latency are counted by the same middleware that counts
``client.metrics``; ``snapshot()`` keeps the old keys and adds the cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..observe.metrics import Histogram
from ..observe.metrics import MetricsCollector as _Collector
from ..response import Response, TextDelta, Usage
from ..types import MessageLike
from ._warn import deprecated
from .errors import translate, translated
from .types import LlmResponse

if TYPE_CHECKING:
    from ..sync import Client, Stream

ESTIMATE_METHOD = "chars/4 heuristic"
_SOURCES = {"exact": "exact", "provider": "provider", "estimate": "estimated"}


@dataclass(frozen=True, slots=True)
class TokenCount:
    """``source``: "exact" (the model's own tokenizer), "provider" (the provider
    counted), "reported" (usage a response carried), "estimated" (a heuristic;
    ``method`` says which) or "none" (nothing was reported: ``tokens`` is 0)."""

    tokens: int
    source: str
    method: str = ESTIMATE_METHOD
    model: str | None = None

    def __int__(self) -> int:
        return self.tokens


class TokenCounter:
    """Token counts for a model: exact where modelwire has the model's tokenizer
    (OpenAI models, local models), the provider's own count when ``client`` is
    given and the provider counts (Anthropic, Gemini), else a flagged estimate.

    ``model``: the default model (an id such as ``"openai/gpt-4o"``, an alias, or
    an old bare name such as ``"gpt-4"`` or ``"claude-3-5-sonnet"``).
    """

    def __init__(self, model: str | None = None, *, client: Client | None = None) -> None:
        deprecated("TokenCounter", "modelwire.count_tokens / client.count_tokens")
        self.model = model
        self.client = client

    def _model_id(self, model: str | None) -> str | None:
        name = model or self.model
        if not name or "/" in name:
            return name
        if self.client is not None:
            routes = self.client.aio.routes.get(name)
        else:
            from ..routes import BUILTIN_ALIASES
            routes = BUILTIN_ALIASES.get(name)
        if routes:
            return routes[0]
        from ..observe.tokens import openai_encoding_name
        if openai_encoding_name(name) is not None:
            return f"openai/{name}"
        for prefix, provider in (("claude", "anthropic"), ("gemini", "gemini")):
            if name.lower().startswith(prefix):
                return f"{provider}/{name}"
        return None  # an unknown bare name: estimated below

    def _count(self, model: str | None, messages: Iterable[MessageLike] | str | None,
               text: str | None) -> TokenCount:
        model_id = self._model_id(model)
        with translated():
            if model_id is None:
                from ..observe.tokens import _normalize, estimate_tokens
                msgs, _ = _normalize(messages, text, None)
                why = f"no tokenizer known for {model!r}" if (model or self.model) else \
                    "no model given"
                return TokenCount(estimate_tokens(msgs, text, None), "estimated",
                                  f"{ESTIMATE_METHOD} ({why})", model or self.model)
            if self.client is not None:
                c = self.client.count_tokens(model_id, messages, text=text)
            else:
                from ..observe.tokens import count_tokens
                c = count_tokens(model_id, messages, text=text)
        return TokenCount(c.tokens, _SOURCES[c.provenance], c.method, model_id)

    def count_tokens(self, text: str, model: str | None = None) -> TokenCount:
        """The tokens of raw ``text`` (no chat formatting) for ``model``."""
        if not isinstance(text, str):
            from ..errors import InvalidMessageError
            raise translate(InvalidMessageError(
                f"count_tokens takes a string, got {type(text).__name__}"))
        return self._count(model, None, text)

    def count_messages(self, messages: Iterable[MessageLike] | str,
                       model: str | None = None) -> TokenCount:
        """The tokens of a chat prompt, with the model's message formatting."""
        return self._count(model, messages, None)

    @staticmethod
    def from_usage(usage: Usage) -> TokenCount:
        """The total a response carries, with the provenance it carries."""
        method = {"reported": "provider usage", "estimated": "modelwire's usage estimate"}.get(
            usage.source, "no usage was reported")
        return TokenCount(usage.total_tokens or 0, usage.source, method)


class MetricsCollector:
    """The old metrics object, read from modelwire's metrics.

    ``collector`` is the :class:`modelwire.observe.metrics.MetricsCollector` it
    reads (a new one by default): ``LLMCommunication(metrics=m)`` gives it to
    its client (``Client(metrics=m.collector)``), and ``attach(client)`` adds a
    client's own ``client.metrics``. ``snapshot()`` keeps the old keys
    (requests, errors, events, tokens, by_provider, latency) and adds
    ``cost_usd``, ``cost_note`` and ``models`` (modelwire's full snapshot).
    """

    def __init__(self, collector: _Collector | None = None) -> None:
        deprecated("MetricsCollector", "client.metrics (modelwire.observe.metrics)")
        self.collector = collector if collector is not None else _Collector()
        self._sources: list[_Collector] = [self.collector]

    def client_options(self) -> dict[str, Any]:
        """``modelwire.Client(**m.client_options())`` feeds this collector."""
        return {"metrics": self.collector}

    def attach(self, client: Client | Any) -> Callable[[], None]:
        """Read ``client``'s metrics too; returns the function that stops reading them."""
        aio = getattr(client, "aio", client)
        source = getattr(aio, "metrics", None)
        if not isinstance(source, _Collector):
            raise translate(ConfigurationError(
                "this client keeps no metrics (it was made with metrics=False or without "
                "the default middleware): make it with metrics=True, or "
                "modelwire.Client(**collector.client_options())"))
        if all(s is not source for s in self._sources):
            self._sources.append(source)

        def detach() -> None:
            if source is not self.collector:
                self._sources[:] = [s for s in self._sources if s is not source]
        return detach

    def record(self, response: Response) -> None:
        """Count a response that did not come through an attached client."""
        target = f"{response.provider}/{response.model}"
        self.collector.stats(target).calls += 1
        self.collector.record_response(target, response, response.latency)

    def record_error(self, error: BaseException) -> None:
        """Count an error that did not come through an attached client."""
        target = "/".join(p for p in (getattr(error, "provider", None),
                                      getattr(error, "model", None)) if p) or "unknown"
        self.collector.stats(target).calls += 1
        self.collector.record_error(target, error)

    def reset(self) -> None:
        for source in self._sources:
            source.reset()

    def snapshot(self) -> dict[str, Any]:
        models: dict[str, Any] = {}
        cost: float | None = 0.0
        notes: list[str] = []
        for source in self._sources:
            snap = source.snapshot()
            for target, row in snap["models"].items():
                models[target] = _merge_rows(models.get(target), row)
            if snap["totals"].get("cost_unpriced_models"):
                cost = None
                notes.extend(f"not priced: {t} ({snap['models'][t].get('cost_note')})"
                             for t in snap["totals"]["cost_unpriced_models"])
            elif cost is not None and snap["totals"]["cost_usd"] is not None:
                cost += snap["totals"]["cost_usd"]
        latency = Histogram()
        errors: dict[str, int] = {}
        events = {"retries": 0, "fallbacks": 0, "breaker_opened": 0}
        tokens = {"input/reported": 0, "output/reported": 0}
        by_provider: dict[str, int] = {}
        unreported = 0
        for source in self._sources:
            for target, s in list(source._models.items()):  # the loop thread may add one
                _add(latency, s.latency)
                for name, n in s.errors.items():
                    errors[name] = errors.get(name, 0) + n
                events["retries"] += s.retries
                events["fallbacks"] += s.fallbacks
                events["breaker_opened"] += s.breaker_openings
                tokens["input/reported"] += s.input_tokens
                tokens["output/reported"] += s.output_tokens
                unreported += s.usage_unreported
                if s.successes:
                    provider = target.split("/", 1)[0]
                    by_provider[provider] = by_provider.get(provider, 0) + s.successes
        if unreported:
            tokens["calls_without_usage"] = unreported  # their tokens are in no sum
        summary = latency.summary()
        return {
            "requests": sum(row["calls"] for row in models.values()),
            "errors": errors, "events": {k: v for k, v in events.items() if v},
            "tokens": {k: v for k, v in tokens.items() if v}, "by_provider": by_provider,
            "latency": {"count": summary["count"], "p50": summary.get("p50"),
                        "p95": summary.get("p95"), "max": summary.get("max")},
            "cost_usd": cost, "cost_note": "; ".join(notes) or None, "models": models}


def _add(into: Histogram, h: Histogram) -> None:
    if h.count:
        into.merge(h)


def _merge_rows(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    if a is None:
        return b
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k in a \
                and isinstance(a[k], (int, float)):
            out[k] = a[k] + v
    return out


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

