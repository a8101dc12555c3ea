"""modelwire: one fast, dependable interface to every major LLM provider."""

from .client import AsyncClient
from .errors import (
    AllTargetsFailedError,
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ClientRateLimitError,
    ConfigurationError,
    ContextWindowExceededError,
    InvalidMessageError,
    InvalidModelError,
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
    RequestTimeoutError,
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

__all__ = [
    "AllTargetsFailedError", "AsyncClient", "Attempt", "AuthenticationError", "BadRequestError",
    "CircuitOpenError", "Client", "ClientRateLimitError", "ConfigurationError",
    "ContextWindowExceededError", "ImagePart", "InvalidMessageError", "InvalidModelError",
    "MalformedResponseError", "Message", "MissingAPIKeyError", "MissingDependencyError",
    "ModelwireError", "NotFoundError", "OverloadedError", "PermissionDeniedError",
    "ProviderConnectionError", "ProviderError", "RateLimitError", "ReasoningDelta",
    "RequestTimeoutError", "Response", "ServerError", "StreamEvent", "StreamInterruptedError",
    "TextDelta", "TextPart", "Timeouts", "Tool", "ToolCall", "ToolCallArgumentsDelta",
    "ToolCallEnd", "ToolCallStart", "UnknownProviderError", "UnsupportedFeatureError", "Usage",
    "UsageUpdate", "__version__",
    # tools and structured output
    "Embeddings", "MaxTurnsExceededError", "StructuredOutputError", "tool",
]
