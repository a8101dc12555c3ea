"""OpenTelemetry spans and metrics following the GenAI semantic conventions (the ``otel`` extra).

``AsyncClient(otel=True)`` (or ``otel=OpenTelemetry(tracer_provider=..., meter_provider=...,
record_content=False)``) adds one outermost middleware: a CLIENT span per call,
named ``"{operation} {model}"`` (``chat gpt-4o-mini``), with

* ``gen_ai.operation.name``, ``gen_ai.provider.name`` (and the older
  ``gen_ai.system``), ``gen_ai.request.model``, ``gen_ai.request.temperature`` /
  ``max_tokens`` / ``top_p`` / ``seed`` / ``stop_sequences``, ``server.address`` /
  ``server.port``;
* ``gen_ai.response.model``, ``gen_ai.response.id``, ``gen_ai.response.finish_reasons``,
  ``gen_ai.usage.input_tokens`` / ``output_tokens`` when the call returns (a
  stream's span ends with its final event, its failure, or when the caller
  closes it early: event ``modelwire.stream_abandoned``);
* retries, fallbacks, breaker openings and limiter waits as span events
  (``modelwire.retry``, ...); a failure sets ``error.type`` and an ERROR status.

Prompts and completions are recorded (``gen_ai.input.messages`` /
``gen_ai.output.messages``, JSON) only with ``record_content=True``.

Metrics: ``gen_ai.client.operation.duration`` (s) and ``gen_ai.client.token.usage``
(``gen_ai.token.type`` = input | output) histograms.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import MissingDependencyError, ProviderError
from ..hooks import BreakerOpened, Event, FallbackTaken, RateLimitWait, RetryScheduled
from ..response import Embeddings, Response

if TYPE_CHECKING:
    from ..pipeline import Call, Next, Outcome

_SCOPE = "modelwire"
# Call.mode -> gen_ai.operation.name (the conventions' well-known values)
_OPERATIONS = {"chat": "chat", "text": "text_completion", "embed": "embeddings"}
# modelwire provider -> the conventions' well-known gen_ai.provider.name (others as is)
PROVIDER_NAMES = {"gemini": "gcp.gemini", "azure": "azure.ai.openai", "mistral": "mistral_ai",
                  "xai": "x_ai", "openai-responses": "openai"}


def _otel() -> tuple[Any, Any]:
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        raise MissingDependencyError("OpenTelemetry export", "otel",
                                     "opentelemetry-api") from None
    return trace, metrics


class OpenTelemetry:
    """The OpenTelemetry middleware (and its settings)."""

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None,
                 record_content: bool = False) -> None:
        trace, metrics = _otel()
        self._trace = trace
        self.record_content = record_content
        self.tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s",
            description="GenAI operation duration")
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}",
            description="Measures number of input and output tokens used")

    def __repr__(self) -> str:
        return f"<OpenTelemetry record_content={self.record_content}>"

    # --- hooks: events on the current span --------------------------------

    def on_event(self, event: Event) -> None:
        span = self._trace.get_current_span()
        if not span.is_recording():
            return
        if isinstance(event, RetryScheduled):
            span.add_event("modelwire.retry", {"modelwire.target": event.target,
                                               "modelwire.attempt": event.attempt,
                                               "modelwire.wait_s": event.wait,
                                               "error.type": type(event.error).__name__})
        elif isinstance(event, FallbackTaken):
            span.add_event("modelwire.fallback", {"modelwire.from": event.from_target,
                                                  "modelwire.to": event.to_target,
                                                  "error.type": type(event.error).__name__})
        elif isinstance(event, BreakerOpened):
            span.add_event("modelwire.breaker_opened", {"modelwire.target": event.target})
        elif isinstance(event, RateLimitWait):
            span.add_event("modelwire.rate_limit_wait", {"modelwire.target": event.target,
                                                         "modelwire.wait_s": event.seconds})

    # --- the middleware ------------------------------------------------------

    async def __call__(self, call: Call, next: Next) -> Outcome:
        if call.options and "verb" in call.options:
            return await next(call)
        import time
        target = call.target
        operation = _OPERATIONS.get(call.mode, "chat")
        attrs = _request_attributes(call, operation)
        if self.record_content:
            attrs["gen_ai.input.messages"] = _input_json(call)
        span = self.tracer.start_span(f"{operation} {target.model}",
                                      kind=self._trace.SpanKind.CLIENT, attributes=attrs)
        started = time.perf_counter()
        metric_attrs = {"gen_ai.operation.name": operation,
                        "gen_ai.provider.name": attrs["gen_ai.provider.name"],
                        "gen_ai.request.model": target.model}
        try:
            with self._trace.use_span(span, end_on_exit=False, record_exception=False,
                                      set_status_on_exception=False):
                outcome = await next(call)
        except BaseException as e:
            self._fail(span, e, started, metric_attrs)
            raise
        if isinstance(outcome, Response):  # Embeddings too
            self._finish(span, outcome, started, metric_attrs)
            return outcome

        async def finished(r: Response) -> None:
            self._finish(span, r, started, metric_attrs)

        def failed(error: BaseException) -> None:
            self._fail(span, error, started, metric_attrs)

        def abandoned() -> None:
            span.add_event("modelwire.stream_abandoned")
            self.duration.record(time.perf_counter() - started, metric_attrs)
            span.end()

        async def ended(end: Response | ProviderError | None) -> None:
            if end is None:
                abandoned()
            elif isinstance(end, Response):
                await finished(end)
            else:
                failed(end)

        outcome.on_end.append(ended)  # type: ignore[union-attr]  # once: the response, the error, or None
        return outcome

    def _finish(self, span: Any, r: Response, started: float,
                metric_attrs: dict[str, Any]) -> None:
        import time
        span.set_attribute("gen_ai.response.model", r.model)
        if r.request_id:
            span.set_attribute("gen_ai.response.id", r.request_id)
        if not isinstance(r, Embeddings):  # an embedding does not stop generating
            span.set_attribute("gen_ai.response.finish_reasons", [r.finish_reason])
        attrs = dict(metric_attrs, **{"gen_ai.response.model": r.model})
        if r.usage.source == "reported":  # each count only when reported and a count
            for kind, n in (("input", r.usage.input_tokens), ("output", r.usage.output_tokens)):
                if isinstance(n, int) and n >= 0 and not (kind == "output"
                                                          and isinstance(r, Embeddings)):
                    span.set_attribute(f"gen_ai.usage.{kind}_tokens", n)
                    self.token_usage.record(n, dict(attrs, **{"gen_ai.token.type": kind}))
        if r.time_to_first_token is not None:
            span.set_attribute("modelwire.time_to_first_token_s", r.time_to_first_token)
        served = next((a for a in r.attempts if a.error is None), None)
        if served is not None and len(r.attempts) > 1:  # a fallback served it
            span.set_attribute("modelwire.served_by", f"{served.provider}/{served.model}")
        if self.record_content:
            span.set_attribute("gen_ai.output.messages", _output_json(r))
        self.duration.record(time.perf_counter() - started, attrs)
        span.end()

    def _fail(self, span: Any, error: BaseException, started: float,
              metric_attrs: dict[str, Any]) -> None:
        import time
        name = type(error).__name__
        span.set_attribute("error.type", name)
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, name))
        self.duration.record(time.perf_counter() - started,
                             dict(metric_attrs, **{"error.type": name}))
        span.end()


def _request_attributes(call: Call, operation: str) -> dict[str, Any]:
    target = call.target
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": PROVIDER_NAMES.get(target.provider, target.provider),
        "gen_ai.system": PROVIDER_NAMES.get(target.provider, target.provider),
        "gen_ai.request.model": target.model,
    }
    for key, value in (("temperature", call.temperature), ("max_tokens", call.max_tokens),
                       ("top_p", call.top_p), ("seed", call.seed),
                       ("stop_sequences", call.stop)):
        if value is not None:
            attrs[f"gen_ai.request.{key}"] = value
    parts = urlsplit(target.base_url)
    if parts.hostname and parts.scheme in ("http", "https"):
        attrs["server.address"] = parts.hostname
        attrs["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    return attrs


def _input_json(call: Call) -> str:
    if call.mode == "text":
        return json.dumps([{"role": "user", "parts": [{"type": "text",
                                                       "content": call.prompt}]}])
    return json.dumps([{"role": m.role, "parts": [{"type": "text", "content": m.text}]}
                       for m in call.messages], ensure_ascii=False)


def _output_json(r: Response) -> str:
    parts: list[dict[str, Any]] = [{"type": "text", "content": r.text}] if r.text else []
    parts += [{"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
              for c in r.tool_calls]
    return json.dumps([{"role": "assistant", "parts": parts,
                        "finish_reason": r.finish_reason}], ensure_ascii=False)
