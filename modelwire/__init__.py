"""modelwire: one fast, dependable interface to every major LLM provider."""

from .client import AsyncClient
from .errors import (
    AllTargetsFailedError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CircuitOpenError,
    ClientRateLimitError,
    ConfigurationError,
    ContextWindowExceededError,
    InvalidMessageError,
    InvalidModelError,
    InvalidParameterError,
    MalformedResponseError,
    MaxTurnsExceededError,
    MissingAPIKeyError,
    MissingDependencyError,
    ModelwireError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderConnectionError,
    ProviderError,
    RateLimitError,
    RedirectError,
    RequestTimeoutError,
    ResponseTooLargeError,
    ServerError,
    StreamInterruptedError,
    StructuredOutputError,
    UnknownProviderError,
    UnsupportedFeatureError,
)
from .pipeline import Timeouts
from .response import (
    Attempt,
    Embeddings,
    ReasoningDelta,
    Response,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallArgumentsDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from .sync import Client
from .types import ImagePart, Message, TextPart, Tool, tool

__version__ = "0.1.0"

_LAZY = {"count_tokens": ("observe.tokens", "count_tokens"),
         "TokenCount": ("observe.tokens", "TokenCount")}


def __getattr__(name: str) -> object:
    # Observability helpers load on first use: `import modelwire` stays lean.
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'modelwire' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f".{target[0]}", __name__), target[1])
    globals()[name] = value
    return value

__all__ = [
    "AllTargetsFailedError", "AsyncClient", "Attempt", "AuthenticationError", "BadRequestError",
    "CircuitOpenError", "Client", "ClientRateLimitError", "ConfigurationError",
    "ContextWindowExceededError", "ImagePart", "InvalidMessageError", "InvalidModelError",
    "MalformedResponseError", "Message", "MissingAPIKeyError", "MissingDependencyError",
    "ModelwireError", "NotFoundError", "OverloadedError", "PermissionDeniedError",
    "ProviderConnectionError", "ProviderError", "RateLimitError", "ReasoningDelta",
    "RedirectError", "RequestTimeoutError", "Response", "ResponseTooLargeError", "ServerError",
    "StreamEvent", "StreamInterruptedError",
    "TextDelta", "TextPart", "Timeouts", "Tool", "ToolCall", "ToolCallArgumentsDelta",
    "ToolCallEnd", "ToolCallStart", "UnknownProviderError", "UnsupportedFeatureError", "Usage",
    "UsageUpdate", "__version__",
    "InvalidParameterError",
    "BudgetExceededError", "TokenCount", "count_tokens",
    # tools and structured output
    "Embeddings", "MaxTurnsExceededError", "StructuredOutputError", "tool",
]
