"""``client.embed(model, inputs)``: batching over the codecs' embedding verbs.

Inputs are split into batches within the provider's limit
(:func:`modelwire.providers.embed.batch_size`, or ``batch_size=``); each batch
is one call through the same middleware chain as chat (typed errors,
retries, breakers, rate limits, fallback), up to four batches in flight.
Vectors come back in input order; usage is the sum of the batches' reported
counts (``source="none"`` unless every batch reported them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .errors import InvalidMessageError
from .response import Attempt, Embeddings, Usage

if TYPE_CHECKING:
    from .client import AsyncClient

_IN_FLIGHT = 4


async def embed(client: AsyncClient, model: str | None, inputs: str | Sequence[str], *,
                batch_size: int | None = None, **kwargs: Any) -> Embeddings:
    if isinstance(inputs, (bytes, bytearray, Mapping)) or not isinstance(inputs, Iterable):
        raise InvalidMessageError(
            f"inputs is a {type(inputs).__name__}; embed() takes a string or a list of "
            "strings (decode bytes first)")
    texts = [inputs] if isinstance(inputs, str) else list(inputs)
    if not texts:
        raise InvalidMessageError("embed() needs at least one input text")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidMessageError(f"inputs[{i}] is a {type(t).__name__}; embed() takes "
                                      "strings")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
            batch_size, int) or batch_size < 1):
        raise InvalidMessageError(f"batch_size must be an int >= 1, got {batch_size!r}")
    base = replace(client.build_call(model, None, prompt="", **kwargs), mode="embed",
                   prompt=None)
    from .providers.embed import batch_size as limit
    size = batch_size or limit(base)
    batches = [texts[i:i + size] for i in range(0, len(texts), size)]
    gate = asyncio.Semaphore(_IN_FLIGHT)

    async def one(batch: list[str]) -> Embeddings:
        async with gate:
            outcome = await client._run(replace(base, inputs=batch))
        if not isinstance(outcome, Embeddings) or len(outcome.vectors) != len(batch):
            from .errors import MalformedResponseError
            raise MalformedResponseError(
                f"expected {len(batch)} embeddings, got "
                f"{len(getattr(outcome, 'vectors', ()))}", provider=base.target.provider,
                model=base.target.model)
        return outcome

    tasks = [asyncio.ensure_future(one(b)) for b in batches]
    try:
        parts = await asyncio.gather(*tasks)
    finally:  # one batch failed (or the caller cancelled): the rest are not paid for
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    first = parts[0]
    sizes = {len(v) for p in parts for v in p.vectors}
    if len(sizes) > 1:  # a hostile or misconfigured server: vectors cannot be compared
        from .errors import MalformedResponseError
        raise MalformedResponseError(
            f"the embeddings have different dimensions ({', '.join(map(str, sorted(sizes)))})",
            provider=base.target.provider, model=base.target.model)
    reported = all(p.usage.source == "reported" and p.usage.input_tokens is not None
                   for p in parts)
    tokens = sum(p.usage.input_tokens or 0 for p in parts)
    attempts: list[Attempt] = [a for p in parts for a in p.attempts]
    return Embeddings(
        vectors=[v for p in parts for v in p.vectors],
        usage=Usage(tokens, 0, tokens, source="reported") if reported else Usage(),
        provider=first.provider, model=first.model, request_id=first.request_id,
        latency=max(p.latency for p in parts), attempts=attempts,
    )
