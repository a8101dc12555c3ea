"""Budgets: stop before the bill. ``budget=`` on the client, per call, or per tag.

::

    client = AsyncClient(budget=[Budget(usd=5.0, period="day"),
                                 Budget(tokens=200_000, period="hour", tag="batch")])
    await client.complete(model, msgs, tags=["batch"])             # both budgets apply
    await client.complete(model, msgs, budget=Budget(usd=0.01, period=None, name="once"))

Before a call, its cost is estimated (input tokens by :func:`count_tokens`, output
as ``max_tokens`` or the budget's ``output_tokens``) and *reserved*: an atomic
``incr`` on the client's StateStore. If a reservation passes a limit it is taken
back and :class:`~modelwire.errors.BudgetExceededError` is raised, with no
traffic. After the call the reservation is corrected to the reported cost and
tokens (``Response.cost``; a stream when its final event arrives). A call that
fails before an answer is refunded; a stream cut mid-way or closed early by the
caller keeps its estimate (tokens were spent, and no usage was reported). With
the Redis store, every process shares the budget.

What is guaranteed under concurrency: every reservation is one atomic ``incr``,
so calls racing for the last of a budget never pass its limit on their
estimates (with the Redis store, across processes too); the settled total can
end above the limit only by what calls' reported usage exceeded their estimates
(input counted by the chars/4 fallback, or a provider ignoring ``max_tokens``).
Budgets that name one counter (same name, unit and period: a per-call
``Budget`` without a ``name`` shares the client's ``"client"`` counter) are
reserved once, and the tightest limit decides. The middleware sits inside
Fallback, so each target tried is reserved at its own price (a paid fallback
of a free local model is held to the budget; a failed attempt is refunded).
A reported usage that makes no sense (a negative count) never replaces the
estimate. Embeddings are estimated from their inputs, with no output.

Periods are fixed windows of wall time (``"minute"``, ``"hour"``, ``"day"``,
``"week"``, ``"month"`` = 30 days, or seconds; ``None`` = forever).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import (
    BudgetExceededError,
    ConfigurationError,
    ModelwireError,
    ProviderError,
)
from ..response import Response

if TYPE_CHECKING:
    from ..pipeline import Call, Next, Outcome
    from ..state.base import StateStore

PERIODS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0, "week": 604800.0,
           "month": 2592000.0}


@dataclass(frozen=True, slots=True)
class Budget:
    """A USD and/or token limit over a period. ``tag``: applies only to calls tagged so."""

    usd: float | None = None
    tokens: int | None = None
    period: float | str | None = "day"
    name: str = ""  # the state key; defaults to the tag, or "client"
    tag: str | None = None
    output_tokens: int = 1024  # output estimate for calls without max_tokens

    def __post_init__(self) -> None:
        if self.usd is None and self.tokens is None:
            raise ConfigurationError("Budget needs usd=, tokens= or both")
        for field, v in (("usd", self.usd), ("tokens", self.tokens)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not v > 0 or math.isinf(v)):
                raise ConfigurationError(f"Budget.{field} must be a positive number, got {v!r}")
        if isinstance(self.period, str) and self.period not in PERIODS:
            raise ConfigurationError(f"Budget.period must be seconds, None or one of "
                                     f"{', '.join(PERIODS)}; got {self.period!r}")
        if not isinstance(self.period, (str, type(None))) and (
                isinstance(self.period, bool) or not isinstance(self.period, (int, float))
                or not self.period > 0):
            raise ConfigurationError(f"Budget.period must be positive seconds, got "
                                     f"{self.period!r}")
        if not isinstance(self.output_tokens, int) or self.output_tokens < 1:
            raise ConfigurationError("Budget.output_tokens must be an int >= 1")

    @property
    def seconds(self) -> float | None:
        return PERIODS[self.period] if isinstance(self.period, str) else self.period

    @property
    def key_name(self) -> str:
        return self.name or (f"tag:{self.tag}" if self.tag else "client")


def coerce_budgets(value: object) -> list[Budget]:
    items = value if isinstance(value, (list, tuple)) else [value]
    for b in items:
        if not isinstance(b, Budget):
            raise ConfigurationError(
                f"budget= takes a modelwire.observe.budget.Budget or a list of them, "
                f"got {type(b).__name__}")
    return list(items)  # type: ignore[arg-type]


@dataclass(slots=True)
class _Hold:
    key: str
    amount: float  # reserved so far
    unit: str  # "usd" | "tokens"
    ttl: float | None


class BudgetMiddleware:
    """Reserve, refuse or settle every call against its budgets (see module docstring)."""

    def __init__(self, budgets: Sequence[Budget], store: StateStore,
                 clock: Callable[[], float] = time.time) -> None:
        self.budgets = list(budgets)
        self.store = store
        self.clock = clock

    def __repr__(self) -> str:
        return f"<BudgetMiddleware budgets={len(self.budgets)}>"

    def __call__(self, call: Call, next: Next) -> Awaitable[Outcome]:
        # No budget for this call: hand back next's awaitable (no frame of our own).
        if not self.budgets and not call.options:
            return next(call)
        return self._run(call, next)

    def applicable(self, call: Call) -> list[Budget]:
        tags = call.options.get("tags") or ()
        if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
            raise ConfigurationError(f"tags= must be a list of strings, got {tags!r}")
        active = [b for b in self.budgets if b.tag is None or b.tag in tags]
        extra = call.options.get("budget")
        if extra is not None:
            active += coerce_budgets(extra)
        return active

    def _key(self, b: Budget, unit: str, now: float) -> tuple[str, float | None, float | None]:
        seconds = b.seconds
        if seconds is None:
            return f"budget:{b.key_name}:{unit}", None, None
        window = math.floor(now / seconds)
        # the period is part of the key: two budgets of one name and different periods
        # are two counters, never one counter read against two windows
        return (f"budget:{b.key_name}:{unit}:{float(seconds)!r}s:{window}", seconds * 2,
                (window + 1) * seconds - now)

    async def status(self) -> dict[str, dict[str, float]]:
        """Spent so far in the current period, per budget: ``{name: {"usd": ..}}``
        (budgets sharing a name are told apart by their period: ``"client/hour"``)."""
        now = self.clock()
        out: dict[str, dict[str, float]] = {}
        names = [b.key_name for b in self.budgets]
        for b in self.budgets:
            row = {}
            for unit, limit in (("usd", b.usd), ("tokens", b.tokens)):
                if limit is not None:
                    row[unit] = await self.store.get(self._key(b, unit, now)[0]) or 0.0
            label = b.key_name
            if names.count(label) > 1:
                label += f"/{b.period if b.period is not None else 'forever'}"
            out.setdefault(label, {}).update(row)
        return out

    async def _run(self, call: Call, next: Next) -> Outcome:
        budgets = [] if "verb" in call.options else self.applicable(call)  # counts are free
        if not budgets:
            return await next(call)
        holds = await self._reserve(call, budgets)
        try:
            outcome = await next(call)
        except ProviderError as e:
            if not getattr(e, "partial", None):  # nothing came back: nothing to pay for
                await self._settle(holds, 0.0, 0.0)
            raise
        except BaseException:
            await self._settle(holds, 0.0, 0.0)
            raise
        if isinstance(outcome, Response):  # Embeddings too
            await self._settle_response(holds, outcome)
            return outcome

        async def finished(r: Response) -> None:
            await self._settle_response(holds, r)
        outcome.on_finish.append(finished)  # type: ignore[union-attr]
        return outcome

    async def _reserve(self, call: Call, budgets: list[Budget]) -> list[_Hold]:
        from .cost import estimate_cost
        model = call.target.name
        est_in = _estimate_input(call)
        now = self.clock()
        # One reservation per state key: a per-call Budget without a name shares the
        # client budget's counter ("client"), so it must not be charged twice; the
        # tightest limit on a key decides.
        plan: dict[str, list[Any]] = {}
        for b in budgets:
            est_out = 0 if call.mode == "embed" else (
                call.max_tokens if call.max_tokens is not None else b.output_tokens)
            for unit, limit in (("usd", b.usd), ("tokens", b.tokens)):
                if limit is None:
                    continue
                if unit == "tokens":
                    est = float(est_in + est_out)
                else:
                    price = estimate_cost(model, est_in, est_out)
                    if price.total is None:
                        hint = (" (an Azure deployment name is not a model name: the price "
                                "is known only once the answer names its model)"
                                if call.target.provider == "azure" else "")
                        raise ConfigurationError(
                            f"budget {b.key_name!r} has a USD limit but {model} cannot be "
                            f"priced ({price.reason}){hint}; use a token budget for it")
                    est = price.total
                key, ttl, resets = self._key(b, unit, now)
                row = plan.get(key)
                if row is None:
                    plan[key] = [est, limit, b, unit, ttl, resets]
                else:
                    row[0] = max(row[0], est)
                    if limit < row[1]:
                        row[1], row[2] = limit, b
        holds: list[_Hold] = []
        try:
            for key, (est, limit, b, unit, ttl, resets) in plan.items():
                total = await self.store.incr(key, est, ttl)
                holds.append(_Hold(key, est, unit, ttl))
                if est > 0 and total > limit + 1e-12:
                    raise BudgetExceededError(b.key_name, unit, limit, total - est, est,
                                              resets)
        except BaseException:
            await self._settle(holds, 0.0, 0.0)
            raise
        return holds

    async def _settle_response(self, holds: list[_Hold], r: Response) -> None:
        from .cost import usage_problem
        u = r.usage
        # Only a sane reported usage replaces the estimate: a negative count from a
        # hostile or broken server must not hand the budget back.
        usable = u.source == "reported" and usage_problem(u) is None
        tokens = float((u.input_tokens or 0) + (u.output_tokens or 0)) if usable else None
        usd = None
        if usable and any(h.unit == "usd" for h in holds):
            usd = r.cost.total
        await self._settle(holds, usd, tokens)

    async def _settle(self, holds: list[_Hold], usd: float | None,
                      tokens: float | None) -> None:
        """Correct each reservation to the actual figure (None: keep the estimate)."""
        for h in holds:
            actual = usd if h.unit == "usd" else tokens
            if actual is not None and actual != h.amount:
                await self.store.incr(h.key, actual - h.amount, h.ttl)
                h.amount = actual



def _estimate_input(call: Call) -> int:
    """The call's input tokens as :func:`count_tokens` has them (exact where it can),
    else the rate limiter's chars/4 estimate (no tokenizer installed, a local model
    with tools, ...): a reservation must never stop a call the budget allows."""
    from .tokens import count_tokens
    model = call.target.name
    try:
        if call.mode == "embed":
            return sum(count_tokens(model, text=t).tokens for t in call.inputs or ())
        if call.mode == "text":
            return count_tokens(model, text=call.prompt or "").tokens
        return count_tokens(model, call.messages, tools=call.tools or None).tokens
    except ModelwireError:
        from ..middleware.ratelimit import estimate_tokens
        chars = sum(len(t) for t in call.inputs or ()) if call.mode == "embed" else 0
        return estimate_tokens(call, 0) + (chars + 3) // 4
