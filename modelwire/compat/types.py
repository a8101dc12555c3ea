"""The old result types, built from modelwire's :class:`~modelwire.Response`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import ConfigurationError, ModelwireError
from ..response import Provenance, Response, Usage
from ..types import MessageLike


@dataclass(slots=True)
class UsageInfo:
    """Token counts in the old names. ``source`` says whether the provider reported
    them ("reported"), they were estimated ("estimated") or nobody reported them
    ("none": the counts read 0). ``estimated_cost`` is USD from modelwire's price
    table (:attr:`modelwire.Response.cost`), or None when the call cannot be
    priced; ``cost_note`` says why (or, for a free model, that it is free)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated_cost: float | None = None
    source: Provenance = "none"
    cost_note: str | None = field(default=None, compare=False)

    @classmethod
    def from_usage(cls, usage: Usage) -> UsageInfo:
        # The old fields are ints: counts nobody reported read 0 here, and ``source``
        # stays "none" so they are never mistaken for reported zeros.
        return cls(usage.input_tokens or 0, usage.output_tokens or 0, usage.total_tokens or 0,
                   None, usage.source, "no response to price")

    @classmethod
    def from_response(cls, r: Response) -> UsageInfo:
        """The usage and its price (``Response.cost``; None with a note if unpriced)."""
        info = cls.from_usage(r.usage)
        try:
            cost = r.cost
        except ModelwireError as e:  # the cost extra (genai-prices) is not installed
            info.cost_note = str(e)
            return info
        info.estimated_cost, info.cost_note = cost.total, cost.reason
        if cost.total is not None and cost.reason is None:
            info.cost_note = f"{cost.price_table}, {cost.usage_source} usage"
        return info

    def to_dict(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens, "estimated_cost": self.estimated_cost,
                "source": self.source, "cost_note": self.cost_note}


@dataclass(slots=True)
class LLMResponse:
    """One answer (LLMCommunication.generate_response). ``response`` is modelwire's.

    ``request_id`` is the provider's id when it sent one, else a locally made
    ``"local-<uuid>"`` (so it is never empty); ``response_time`` is seconds.
    """

    content: str
    model: str
    provider: str
    usage: UsageInfo
    response_time: float
    request_id: str
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    finish_reason: str = "stop"
    response: Response | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_response(cls, r: Response) -> LLMResponse:
        return cls(r.text, r.model, r.provider, UsageInfo.from_response(r), r.latency,
                   r.request_id or f"local-{uuid.uuid4().hex}", finish_reason=r.finish_reason,
                   response=r)

    def to_legacy_format(self) -> dict[str, Any]:
        """The old dict shape: content, model, provider, usage, response_time,
        request_id, created_at (ISO 8601), finish_reason."""
        return {"content": self.content, "model": self.model, "provider": self.provider,
                "usage": self.usage.to_dict(), "response_time": self.response_time,
                "request_id": self.request_id, "created_at": self.created_at.isoformat(),
                "finish_reason": self.finish_reason}


@dataclass(slots=True)
class LlmRequest:
    """A request for BaseLlmClient: chat ``messages`` (or a string), or a text ``prompt``
    for CompletionClient. ``model`` overrides the client's; ``options`` are more
    modelwire per-call keywords (``stop``, ``top_p``, ``seed``, ``fallbacks``, ...)."""

    messages: list[MessageLike] | str | None = None
    model: str | None = None
    prompt: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        reserved = sorted({"model", "messages", "prompt"} & set(self.options))
        if reserved:
            from .errors import translate
            raise translate(ConfigurationError(
                f"LlmRequest.options must not hold {', '.join(reserved)}: set the "
                f"LlmRequest field{'s' if len(reserved) > 1 else ''} of that name instead"))
        return {"max_tokens": self.max_tokens, "temperature": self.temperature,
                **self.options}


@dataclass(slots=True)
class LlmResponse:
    """What BaseLlmClient returns. ``response`` is modelwire's full Response."""

    content: str
    model: str
    provider: str
    usage: UsageInfo
    finish_reason: str
    latency: float
    request_id: str | None = None
    response: Response | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_response(cls, r: Response) -> LlmResponse:
        return cls(r.text, r.model, r.provider, UsageInfo.from_response(r),
                   r.finish_reason, r.latency, r.request_id, r)
