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
    InvalidParameterError,
    MalformedResponseError,
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
    UnknownProviderError,
    UnsupportedFeatureError,
)
from .pipeline import Timeouts
from .response import (
    Attempt,
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
from .types import ImagePart, Message, TextPart, Tool

__version__ = "0.1.0"

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
]
