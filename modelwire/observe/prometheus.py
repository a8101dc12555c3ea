"""Prometheus exposition of ``client.metrics`` (the ``prometheus`` extra).

::

    from modelwire.observe.prometheus import register, serve
    register(client.metrics)              # into prometheus_client's default registry
    server = serve(port=9464)             # optional /metrics on 127.0.0.1; server.shutdown()

Nothing is recorded twice: a collector reads ``MetricsCollector.snapshot()`` at
scrape time, so the hot path pays nothing for Prometheus. Families (labels
``provider``, ``model``):

* counters ``modelwire_calls_total``, ``modelwire_errors_total`` (+ ``error_type``),
  ``modelwire_retries_total``, ``modelwire_fallbacks_total``,
  ``modelwire_breaker_openings_total``, ``modelwire_limiter_waits_total``,
  ``modelwire_tokens_total`` (+ ``direction`` = input | output),
  ``modelwire_cost_usd_total`` (only models with a known price);
* summaries ``modelwire_latency_seconds``, ``modelwire_ttft_seconds``,
  ``modelwire_output_tokens_per_second`` with quantiles 0.5, 0.95, 0.99.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import MissingDependencyError
from .metrics import MetricsCollector

_COUNTERS = (("calls", "Calls made (each public call once, whatever its retries)"),
             ("retries", "Retries scheduled"), ("fallbacks", "Fallbacks taken away from the model"),
             ("breaker_openings", "Circuit breaker openings"),
             ("limiter_waits", "Waits imposed by the client-side rate limiter"))
_SUMMARIES = (("latency", "modelwire_latency_seconds", "Call latency in seconds"),
              ("ttft", "modelwire_ttft_seconds", "Time to first token in seconds (streams)"),
              ("output_tps", "modelwire_output_tokens_per_second", "Output tokens per second"))


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise MissingDependencyError("Prometheus export", "prometheus",
                                     "prometheus-client") from None
    return prometheus_client


class ModelwireCollector:
    """A ``prometheus_client`` collector over one :class:`MetricsCollector`."""

    def __init__(self, metrics: MetricsCollector, *, cost: bool = True) -> None:
        if not isinstance(metrics, MetricsCollector):
            from ..errors import ConfigurationError
            raise ConfigurationError(
                "pass client.metrics (a MetricsCollector); the client was built with "
                "metrics=False" if metrics is None else
                f"expected a MetricsCollector, got {type(metrics).__name__}")
        self.metrics = metrics
        self.cost = cost

    def describe(self) -> list[Any]:
        """The families (names fixed, samples none): lets a registry refuse this
        collector twice, which would emit every series twice (a failed scrape)."""
        counters, errors, tokens, cost, summaries = self._families()
        return [*counters.values(), errors, tokens, *([cost] if self.cost else []),
                *summaries.values()]

    def _families(self) -> tuple[dict[str, Any], Any, Any, Any, dict[str, Any]]:
        _client()
        from prometheus_client.core import CounterMetricFamily
        from prometheus_client.metrics_core import Metric
        labels = ["provider", "model"]
        counters = {name: CounterMetricFamily(f"modelwire_{name}", doc, labels=labels)
                    for name, doc in _COUNTERS}
        errors = CounterMetricFamily("modelwire_errors", "Calls that raised, by error type",
                                     labels=[*labels, "error_type"])
        tokens = CounterMetricFamily("modelwire_tokens", "Reported tokens",
                                     labels=[*labels, "direction"])
        cost = CounterMetricFamily("modelwire_cost_usd", "USD from reported usage "
                                   "(genai-prices)", labels=labels)
        summaries = {key: Metric(name, doc, "summary") for key, name, doc in _SUMMARIES}
        return counters, errors, tokens, cost, summaries

    def collect(self) -> Iterator[Any]:
        counters, errors, tokens, cost, summaries = self._families()
        snap = self.metrics.snapshot(cost=self.cost)
        for target, row in snap["models"].items():
            provider, _, model = target.partition("/")
            lv = [provider, model]
            for name, family in counters.items():
                family.add_metric(lv, row[name])
            for kind, n in row["errors"].items():
                errors.add_metric([*lv, kind], n)
            tokens.add_metric([*lv, "input"], row["input_tokens"])
            tokens.add_metric([*lv, "output"], row["output_tokens"])
            if row.get("cost_usd") is not None:
                cost.add_metric(lv, row["cost_usd"])
            for key, name, _ in _SUMMARIES:
                s = row[key]
                if not s["count"]:
                    continue
                base = {"provider": provider, "model": model}
                for q in ("0.5", "0.95", "0.99"):
                    value = s[f"p{round(float(q) * 100)}"]
                    summaries[key].add_sample(name, dict(base, quantile=q), value)
                summaries[key].add_sample(f"{name}_count", base, s["count"])
                summaries[key].add_sample(f"{name}_sum", base, s["mean"] * s["count"])
        yield from counters.values()
        yield errors
        yield tokens
        if self.cost:
            yield cost
        yield from summaries.values()


def register(metrics: MetricsCollector, registry: Any = None, *,
             cost: bool = True) -> ModelwireCollector:
    """Expose ``metrics`` in ``registry`` (default: prometheus_client's global one)."""
    pc = _client()
    collector = ModelwireCollector(metrics, cost=cost)
    try:
        (registry if registry is not None else pc.REGISTRY).register(collector)
    except ValueError as e:  # its families are there already: every series twice
        from ..errors import ConfigurationError
        raise ConfigurationError(
            f"modelwire metrics are already registered in this registry ({e}); register "
            "once, or use a CollectorRegistry per client") from None
    return collector


def serve(port: int = 0, addr: str = "127.0.0.1", registry: Any = None) -> Any:
    """Start a ``/metrics`` HTTP endpoint in a daemon thread (loopback by default).

    Returns the server: ``server.server_port`` is the port (useful with ``port=0``),
    ``server.shutdown()`` stops it."""
    pc = _client()
    try:
        server, _thread = pc.start_http_server(port, addr=addr,
                                               registry=registry if registry is not None
                                               else pc.REGISTRY)
    except OSError as e:  # the port is taken, the address is not ours, ...
        from ..errors import ConfigurationError
        raise ConfigurationError(
            f"cannot serve /metrics on {addr}:{port}: {e.strerror or e}; pick another "
            "port= (0 picks a free one)") from None
    return server


def exposition(registry: Any) -> str:
    """The text exposition of ``registry`` (what a scrape returns)."""
    return str(_client().generate_latest(registry).decode())
