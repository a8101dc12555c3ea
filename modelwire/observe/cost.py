"""Cost in USD from usage, with provenance: which price table, and whether usage was reported.

Prices come from ``genai-prices`` (the ``cost`` extra), whose wheel ships its
price table: no network. A :class:`Cost` always says why when it is not a
number: an unknown model has ``total=None`` and a ``reason``, never 0. Local
and mock models cost 0 with a reason.

The parts: ``input`` is the uncached prompt, ``cached_input`` the prompt read
from the provider's cache, ``cache_write`` the prompt written to it, ``output``
everything generated. ``reasoning`` is the share of ``output`` spent on
thinking tokens (billed as output), so it is *not* added again:
``total = input + cached_input + cache_write + output``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..errors import MissingDependencyError

if TYPE_CHECKING:
    from ..response import Provenance, Usage

# modelwire provider -> genai-prices provider id
PROVIDER_IDS = {
    "openai": "openai", "openai-responses": "openai", "azure": "azure",
    "anthropic": "anthropic", "gemini": "google", "groq": "groq", "mistral": "mistral",
    "deepseek": "deepseek", "openrouter": "openrouter", "together": "together",
    "fireworks": "fireworks", "xai": "x-ai",
}
FREE = {"mock": "mock model: no charge", "local": "local model: runs on this machine, no charge",
        "ollama": "local server: no per-token price", "vllm": "local server: no per-token price",
        "llamacpp": "local server: no per-token price",
        "lmstudio": "local server: no per-token price"}


# More tokens than any one call can take (the largest context windows are ~10M):
# a report above it is a broken or hostile server, not a bill to charge a budget.
PLAUSIBLE_TOKENS = 10**9


@dataclass(frozen=True, slots=True)
class Cost:
    """USD for one call. ``total is None`` means unknown; ``reason`` says why."""

    total: float | None
    input: float | None = None
    cached_input: float | None = None
    cache_write: float | None = None
    output: float | None = None
    reasoning: float | None = None  # part of ``output``, not extra
    usage_source: Provenance = "none"  # "reported" or "estimated" usage was priced
    price_table: str | None = None  # e.g. "genai-prices 0.2.3 (bundled)"
    priced_model: str | None = None  # the price table's model id that matched
    reason: str | None = None
    currency: str = "USD"

    @property
    def known(self) -> bool:
        return self.total is not None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "total", "input", "cached_input", "cache_write", "output", "reasoning",
            "usage_source", "price_table", "priced_model", "reason", "currency")}


def _prices() -> Any:
    try:
        import genai_prices
    except ImportError:
        raise MissingDependencyError("cost calculation", "cost", "genai-prices") from None
    return genai_prices


def price_table_version() -> str:
    gp = _prices()
    from genai_prices import data_snapshot
    snap = data_snapshot.get_snapshot()
    where = f"updated {snap.timestamp:%Y-%m-%d}" if snap.from_auto_update else "bundled"
    return f"genai-prices {gp.__version__} ({where})"


def _f(d: Decimal) -> float:
    return float(d)


def usage_problem(usage: Usage) -> str | None:
    """Why reported ``usage`` cannot be priced or charged as it is (None: it can).

    A server can report anything: a negative count, or more cached / cache-write
    tokens than the whole prompt (``input_tokens`` includes both)."""
    fields = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
              "reasoning_tokens")
    for name in fields:
        v = getattr(usage, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            return f"the reported usage is invalid: {name}={v!r} is not a token count"
        if v is not None and v > PLAUSIBLE_TOKENS:  # no context window is this large
            return (f"the reported usage is implausible: {name}={v} is more than "
                    f"{PLAUSIBLE_TOKENS:,} tokens for one call")
    parts = (usage.cached_input_tokens or 0) + (usage.cache_write_tokens or 0)
    if parts > (usage.input_tokens or 0):
        return (f"the reported usage is inconsistent: cached ({usage.cached_input_tokens}) + "
                f"cache-write ({usage.cache_write_tokens}) tokens exceed the "
                f"{usage.input_tokens} input tokens they are part of")
    return None


def cost_of(provider: str, model: str, usage: Usage) -> Cost:
    """Price ``usage`` for ``provider``/``model``. Never raises for an unknown model
    or a usage report that makes no sense (``total=None`` and a ``reason``)."""
    if provider in FREE:
        return Cost(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, usage.source, None, None, FREE[provider])
    if usage.source == "none":
        return Cost(None, usage_source="none",
                    reason="no usage was reported, so there is nothing to price")
    problem = usage_problem(usage)
    if problem is not None:
        return Cost(None, usage_source=usage.source, reason=problem)
    provider_id = PROVIDER_IDS.get(provider)
    if provider_id is None:
        return Cost(None, usage_source=usage.source,
                    reason=f"no price table entry for provider {provider!r}")
    return _calc(provider_id, model, usage.input_tokens or 0, usage.output_tokens or 0,
                 usage.cached_input_tokens or 0, usage.cache_write_tokens or 0,
                 usage.reasoning_tokens or 0, usage.source)


def _calc(provider_id: str, model: str, inp: int, out: int, cached: int, written: int,
          reasoning: int, source: Provenance) -> Cost:
    table = price_table_version()
    try:
        full = _price(provider_id, model, inp, out, cached, written)
    except LookupError as e:
        return Cost(None, usage_source=source, price_table=table,
                    reason=f"{table} has no price for {provider_id}/{model} ({e})")
    # Parts are priced within the request's own tier (long-context prices depend on
    # the whole prompt): with p = the uncached per-token input price at this tier,
    # price(inp, cached=c) - price(inp) + c * p = c * (cache read price).
    per_input = full_input = Decimal(0)
    if inp and (cached or written):
        full_input = _price(provider_id, model, inp, 0, 0, 0)[0]
        per_input = full_input / inp
    cached_part = write_part = Decimal(0)
    if cached:
        cached_part = _price(provider_id, model, inp, 0, cached, 0)[0] - full_input \
            + cached * per_input
    if written:
        write_part = _price(provider_id, model, inp, 0, 0, written)[0] - full_input \
            + written * per_input
    reasoning_part: Decimal | None = full[1] * reasoning / out if reasoning and out \
        else Decimal(0)
    note = None
    if reasoning > out:  # a share of the output cannot exceed it: the split is unknown
        reasoning_part = None
        note = (f"reasoning tokens ({reasoning}) exceed the output tokens ({out}) they "
                "are part of; the reasoning share is unknown (the total is priced as reported)")
    return Cost(
        total=_f(full[2]), input=_f(full[0] - cached_part - write_part),
        cached_input=_f(cached_part), cache_write=_f(write_part), output=_f(full[1]),
        reasoning=None if reasoning_part is None else _f(reasoning_part),
        usage_source=source, price_table=table, priced_model=full[3], reason=note,
    )


@lru_cache(maxsize=2048)
def _price(provider_id: str, model: str, inp: int, out: int, cached: int,
           written: int) -> tuple[Decimal, Decimal, Decimal, str]:
    gp = _prices()
    usage = gp.Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cached,
                     cache_write_tokens=written)
    try:
        calc = gp.calc_price(usage, model, provider_id=provider_id)
    except LookupError:
        raise
    except Exception as e:  # the table refuses the model in its own words
        raise LookupError(str(e)) from None
    return calc.input_price, calc.output_price, calc.total_price, str(calc.model.id)


def estimate_cost(model: str, input_tokens: int, output_tokens: int) -> Cost:
    """Price token counts you supply (the CLI's ``modelwire cost``; budgets' pre-check)."""
    from ..response import Usage
    from .tokens import split_model
    provider, name = split_model(model)
    return cost_of(provider, name, Usage(input_tokens, output_tokens,
                                         input_tokens + output_tokens, source="estimated"))
