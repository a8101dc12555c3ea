"""In-process metrics: ``client.metrics``, fed by one middleware and the client's hooks.

Per ``provider/model`` (the target that served, or failed):

* counters: ``calls``, ``successes``, ``errors`` by exception type, ``retries``,
  ``fallbacks`` (taken away from this target), ``breaker_openings``,
  ``limiter_waits`` (+ ``limiter_wait_seconds``), ``input_tokens``,
  ``output_tokens``, ``cached_input_tokens``, ``usage_unreported`` (calls whose
  provider reported no usage, or a negative or implausible count: their tokens are
  not in the sums),
  ``streams_abandoned`` (closed by the caller before their end: a call, no error);
* distributions: ``latency`` (seconds), ``ttft`` (time to first token, streams),
  ``output_tps`` (output tokens per second of generation, after the first token
  for streams), each with count, mean, min, max, p50, p95, p99.

Memory is bounded whatever the call count: a distribution is a fixed-bucket
histogram (log-spaced buckets, each 4% wider than the last, from 1e-6 to 1e6,
at most ~700 counters, allocated as values land in them), so a quantile is exact
to within 2% of its value (the bucket's geometric middle, clamped to the
observed min/max). Model ids come from callers, so the number of rows is bounded
too: past ``max_models`` (default 1000) distinct ``provider/model`` keys, calls
are recorded under ``"(other)/(other)"`` (a row that never answered gives its
place up first, folded there), and the snapshot's ``over_max_models`` counts how
often that happened: nothing is dropped, and Prometheus label cardinality stays
bounded.

Recording happens on the client's event loop; ``snapshot()`` may be called from
any thread while calls run. Every counter is exact, but a snapshot is not an
atomic cut: with calls finishing meanwhile, one row's fields (``successes``,
``latency.count``) can differ by the calls that ended while it was read.

Cost is priced at ``snapshot()`` time from the summed reported usage per model
(``genai-prices``; nothing is priced on the hot path). Long-context tier prices
apply per call, so for models with tiers the summed figure is a lower bound;
``cost_basis`` in the snapshot says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import AllTargetsFailedError, ModelwireError, ProviderError
from ..response import Response

if TYPE_CHECKING:
    from ..hooks import Event
    from ..pipeline import Call, Next, Outcome
    from ..streaming import AsyncStream

_LOW, _HIGH, _GROWTH = 1e-6, 1e6, 1.04
_LOG_GROWTH = math.log(_GROWTH)
_NBUCKETS = math.ceil(math.log(_HIGH / _LOW) / _LOG_GROWTH) + 2  # + under/overflow
QUANTILES = (0.5, 0.95, 0.99)
MAX_MODELS = 1000
OTHER = "(other)/(other)"  # where targets past max_models are recorded
PLAUSIBLE_TOKENS = 10**9  # cost.PLAUSIBLE_TOKENS, without importing the cost module here


class Histogram:
    """Fixed log-spaced buckets: constant memory, quantiles within 2% relative error."""

    __slots__ = ("buckets", "count", "max", "min", "total")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}  # bucket index -> count (only those used)
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float) -> None:
        if not 0.0 <= value < math.inf:  # NaN, negative or infinite: not a duration or
            return  # rate (and the snapshot must stay JSON: no Infinity)
        if value < _LOW:
            i = 0
        elif value >= _HIGH:
            i = _NBUCKETS - 1
        else:
            i = 1 + int(math.log(value / _LOW) / _LOG_GROWTH)
        buckets = self.buckets
        buckets[i] = buckets.get(i, 0) + 1
        self.count += 1
        self.total += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def quantile(self, q: float) -> float | None:
        if not self.count:
            return None
        rank = q * (self.count - 1) + 1  # the rank-th smallest (1-based), rounded up
        seen = 0
        for i, n in sorted(self.buckets.items()):
            seen += n
            if seen >= rank:
                if i == 0:
                    mid = self.min
                elif i == _NBUCKETS - 1:
                    mid = self.max
                else:
                    mid = _LOW * _GROWTH ** (i - 1) * math.sqrt(_GROWTH)
                return min(max(mid, self.min), self.max)
        return self.max

    def merge(self, other: Histogram) -> None:
        for i, n in other.buckets.items():
            self.buckets[i] = self.buckets.get(i, 0) + n
        self.count += other.count
        self.total += other.total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def summary(self) -> dict[str, float | int | None]:
        if not self.count:
            return {"count": 0}
        out: dict[str, float | int | None] = {
            "count": self.count, "mean": self.total / self.count,
            "min": self.min, "max": self.max}
        for q in QUANTILES:
            out[f"p{round(q * 100)}"] = self.quantile(q)
        return out


class ModelStats:
    __slots__ = ("breaker_openings", "cache_hits", "cache_saved_input_tokens",
                 "cache_saved_output_tokens", "cache_write_tokens", "cached_input_tokens", "calls",
                 "errors", "fallbacks", "input_tokens", "latency", "limiter_wait_seconds",
                 "limiter_waits", "output_tokens", "output_tps", "reasoning_tokens", "retries",
                 "streams_abandoned", "successes", "ttft", "usage_unreported")

    def __init__(self) -> None:
        self.calls = self.successes = self.retries = self.fallbacks = 0
        self.breaker_openings = self.limiter_waits = self.usage_unreported = 0
        self.streams_abandoned = self.cache_hits = 0
        self.cache_saved_input_tokens = self.cache_saved_output_tokens = 0
        self.input_tokens = self.output_tokens = self.cached_input_tokens = 0
        self.cache_write_tokens = self.reasoning_tokens = 0
        self.limiter_wait_seconds = 0.0
        self.errors: dict[str, int] = {}
        self.latency = Histogram()
        self.ttft = Histogram()
        self.output_tps = Histogram()

    def merge_into(self, other: ModelStats) -> None:
        """Add every count and distribution of this row to ``other``."""
        for name in self.__slots__:
            mine = getattr(self, name)
            if isinstance(mine, Histogram):
                getattr(other, name).merge(mine)
            elif isinstance(mine, dict):
                for kind, n in mine.items():
                    other.errors[kind] = other.errors.get(kind, 0) + n
            else:
                setattr(other, name, getattr(other, name) + mine)


class MetricsCollector:
    """Counters and distributions per ``provider/model``; ``snapshot()``, ``reset()``."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter, *,
                 max_models: int = MAX_MODELS) -> None:
        if isinstance(max_models, bool) or not isinstance(max_models, int) or max_models < 1:
            from ..errors import ConfigurationError
            raise ConfigurationError(f"max_models must be an int >= 1, got {max_models!r}")
        self.clock = clock
        self.max_models = max_models
        self._models: dict[str, ModelStats] = {}
        self.over_limit = 0  # recordings of targets past max_models, kept under OTHER
        self.started = time.time()

    def __repr__(self) -> str:
        return f"<MetricsCollector models={len(self._models)}>"

    def stats(self, target: str) -> ModelStats:
        s = self._models.get(target)
        if s is None:
            if len(self._models) >= self.max_models:
                self.over_limit += 1
                # a row that never answered (a caller's made-up model names, each a
                # 404) gives its place up, folded into OTHER, so models that do answer
                # keep rows of their own
                models = self._models
                victim = next((k for k, v in models.items()
                               if not v.successes and k != OTHER), None)
                if victim is None:
                    target = OTHER
                else:
                    models.pop(victim).merge_into(self.stats_other())
                s = models.get(target)
            if s is None:
                s = self._models[target] = ModelStats()
        return s

    def stats_other(self) -> ModelStats:
        s = self._models.get(OTHER)
        if s is None:
            s = self._models[OTHER] = ModelStats()
        return s

    # --- recording ---------------------------------------------------------

    def record_response(self, target: str, r: Response, elapsed: float) -> None:
        s = self.stats(target)
        s.successes += 1
        s.latency.add(elapsed)
        u = r.usage
        counts = (u.input_tokens or 0, u.output_tokens or 0, u.cached_input_tokens or 0,
                  u.cache_write_tokens or 0, u.reasoning_tokens or 0)
        if r.cached:  # served by the response cache: nothing spent, the saving counted
            s.cache_hits += 1
            s.cache_saved_input_tokens += u.input_tokens or 0
            s.cache_saved_output_tokens += u.output_tokens or 0
        # a negative or implausible count is no count: not summed (as cost.usage_problem)
        elif u.source == "reported" and min(counts) >= 0 and max(counts) <= PLAUSIBLE_TOKENS:
            s.input_tokens += u.input_tokens or 0
            s.output_tokens += u.output_tokens or 0
            s.cached_input_tokens += u.cached_input_tokens or 0
            s.cache_write_tokens += u.cache_write_tokens or 0
            s.reasoning_tokens += u.reasoning_tokens or 0
        else:
            s.usage_unreported += 1
        ttft = r.time_to_first_token
        if ttft is not None:
            s.ttft.add(ttft)
        generating = elapsed - (ttft or 0.0)
        if u.output_tokens and generating > 0:
            s.output_tps.add(u.output_tokens / generating)

    def record_error(self, target: str, error: BaseException) -> None:
        errors = self.stats(target).errors
        name = type(error).__name__
        errors[name] = errors.get(name, 0) + 1

    def on_event(self, event: Event) -> None:
        """The hooks subscriber: retries, fallbacks, breaker openings, limiter waits."""
        # By class name: the event classes are imported only once an event happens
        # (modelwire.events), and a default client must not import them up front.
        kind = type(event).__name__
        if kind == "RetryScheduled":
            self.stats(event.target).retries += 1  # type: ignore[union-attr]
        elif kind == "FallbackTaken":
            self.stats(event.from_target).fallbacks += 1  # type: ignore[union-attr]
        elif kind == "BreakerOpened":
            self.stats(event.target).breaker_openings += 1  # type: ignore[union-attr]
        elif kind == "RateLimitWait":
            s = self.stats(event.target)  # type: ignore[union-attr]
            s.limiter_waits += 1
            s.limiter_wait_seconds += event.seconds  # type: ignore[union-attr]

    # --- reading -------------------------------------------------------------

    def reset(self) -> None:
        self._models.clear()
        self.over_limit = 0
        self.started = time.time()

    def snapshot(self, *, cost: bool = True) -> dict[str, Any]:
        """A plain dict (JSON-ready): ``{"since": ..., "models": {...}, "totals": {...}}``."""
        models: dict[str, Any] = {}
        totals: dict[str, Any] = {"calls": 0, "successes": 0, "errors": 0, "input_tokens": 0,
                                  "output_tokens": 0, "cost_usd": 0.0 if cost else None}
        table = None
        for target, s in sorted(self._models.items()):
            row: dict[str, Any] = {k: getattr(s, k) for k in (
                "calls", "successes", "retries", "fallbacks", "breaker_openings",
                "limiter_waits", "limiter_wait_seconds", "input_tokens", "output_tokens",
                "cached_input_tokens", "cache_write_tokens", "reasoning_tokens",
                "usage_unreported", "streams_abandoned", "cache_hits",
                "cache_saved_input_tokens", "cache_saved_output_tokens")}
            row["errors"] = dict(s.errors)
            row["latency"] = s.latency.summary()
            row["ttft"] = s.ttft.summary()
            row["output_tps"] = s.output_tps.summary()
            if cost:
                priced = _price(target, s)
                row["cost_usd"], row["cost_note"] = priced.total, priced.reason
                if s.cache_hits:
                    row["cache_saved_usd"] = _saved(target, s)
                table = table or priced.price_table
                if priced.total is not None and totals["cost_usd"] is not None:
                    totals["cost_usd"] += priced.total
                elif s.successes:  # answered, but not priced: the total leaves it out
                    totals.setdefault("cost_unpriced_models", []).append(target)
            models[target] = row
            for k in ("calls", "successes", "input_tokens", "output_tokens"):
                totals[k] += row[k]
            totals["errors"] += sum(s.errors.values())
        out: dict[str, Any] = {"since": self.started, "models": models, "totals": totals}
        if self.over_limit:
            out["over_max_models"] = self.over_limit
        if cost:
            out["cost_basis"] = ("summed reported usage per model, priced at snapshot time by "
                                 + (table or "genai-prices"))
        return out


def _price(target: str, s: ModelStats) -> Any:
    from dataclasses import replace

    from ..response import Usage
    from .cost import FREE, Cost, cost_of
    provider, _, model = target.partition("/")
    if target == OTHER:
        return Cost(None, reason="calls to models past max_models are summed across "
                                 "models here, so they cannot be priced")
    if not s.successes:
        return Cost(None, reason="no successful calls")
    reported = s.successes - s.usage_unreported
    if reported <= 0 and provider not in FREE:  # no usage at all: unknown, never 0
        return Cost(None, usage_source="none",
                    reason="no call reported usage, so there is nothing to price")
    usage = Usage(s.input_tokens, s.output_tokens, s.input_tokens + s.output_tokens,
                  s.cached_input_tokens, s.cache_write_tokens, s.reasoning_tokens, "reported")
    try:
        priced = cost_of(provider, model, usage)
    except ModelwireError as e:  # the cost extra is not installed
        return Cost(None, reason=str(e))
    if s.usage_unreported and priced.total is not None and provider not in FREE:
        priced = replace(priced, reason=f"a lower bound: {s.usage_unreported} of "
                                        f"{s.successes} calls reported no usage")
    return priced


def _saved(target: str, s: ModelStats) -> float | None:
    """What the cache hits would have cost (their original calls' usage)."""
    from ..response import Usage
    from .cost import cost_of
    provider, _, model = target.partition("/")
    inp, out = s.cache_saved_input_tokens, s.cache_saved_output_tokens
    try:
        return cost_of(provider, model, Usage(inp, out, inp + out, source="reported")).total
    except ModelwireError:
        return None


class MetricsMiddleware:
    """Outermost middleware: one ``calls`` count, latency and outcome per public call."""

    def __init__(self, collector: MetricsCollector) -> None:
        self.collector = collector

    def __repr__(self) -> str:
        return "<MetricsMiddleware>"

    async def __call__(self, call: Call, next: Next) -> Outcome:
        if call.options and "verb" in call.options:  # count_tokens: not a model call
            return await next(call)
        collector = self.collector
        started = collector.clock()
        target = call.target
        try:
            outcome = await next(call)
        except BaseException as e:
            name = target.name
            if isinstance(e, AllTargetsFailedError):
                name = "/".join(p for p in (e.provider, e.model) if p) or name
            collector.stats(name).calls += 1
            collector.record_error(name, e)
            raise
        if isinstance(outcome, Response):  # Embeddings too
            served = _served(outcome, target.name)
            collector.stats(served).calls += 1
            collector.record_response(served, outcome, collector.clock() - started)
            return outcome
        stream: AsyncStream = outcome  # type: ignore[assignment]
        _watch(collector, stream, started, target.name)
        return stream


def _served(r: Response, default: str) -> str:
    for a in r.attempts:
        if a.error is None:
            return f"{a.provider}/{a.model}"
    return default


def _watch(collector: MetricsCollector, stream: AsyncStream, started: float, name: str) -> None:
    async def finished(r: Response) -> None:
        served = _served(r, name)
        collector.stats(served).calls += 1
        collector.record_response(served, r, collector.clock() - started)
    def failed(error: BaseException) -> None:
        collector.stats(name).calls += 1
        collector.record_error(name, error)

    def abandoned() -> None:
        s = collector.stats(name)
        s.calls += 1
        s.streams_abandoned += 1

    async def ended(end: Response | ProviderError | None) -> None:
        if end is None:
            abandoned()
        elif isinstance(end, Response):
            await finished(end)
        else:
            failed(end)

    stream.on_end.append(ended)  # once: the response, the error, or None
