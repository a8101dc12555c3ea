"""The older interfaces existing code calls, as thin translations over modelwire.

Not imported by ``import modelwire``: ``from modelwire.compat import LLMCommunication``.
Every name here runs on modelwire's Client (no second HTTP path) and raises
modelwire's errors, each also an instance of its old exception class. The
names are supported, not deprecated; ``MODELWIRE_COMPAT_WARNINGS=1`` (or
:func:`enable_deprecation_warnings`) makes each one emit a DeprecationWarning
pointing at docs/migration.md, which maps every old name to its modelwire
equivalent.
"""

from ._warn import enable_deprecation_warnings
from .clients import (
    BaseLlmClient,
    ChatClient,
    ClientPool,
    CompletionClient,
    ConfigurationValidator,
    LlmClientFactory,
    ModelRegistry,
)
from .communication import LLMCommunication, ServiceFactory, SimpleLLMService
from .errors import (
    AuthenticationException,
    LLMException,
    ProviderUnavailableException,
    RateLimitException,
    translate,
)
from .observe import MetricsCollector, StreamingHandler, TokenCount, TokenCounter
from .providers import ProviderConfig, ProviderManager
from .types import LlmRequest, LLMResponse, LlmResponse, UsageInfo
from .utilities import CircuitBreaker, InputValidator, ResponseCache, RetryHandler, SecureConfig

__all__ = [
    "AuthenticationException", "BaseLlmClient", "ChatClient", "CircuitBreaker", "ClientPool",
    "CompletionClient", "ConfigurationValidator", "InputValidator", "LLMCommunication",
    "LLMException", "LLMResponse", "LlmClientFactory", "LlmRequest", "LlmResponse",
    "MetricsCollector", "ModelRegistry", "ProviderConfig", "ProviderManager",
    "ProviderUnavailableException", "RateLimitException", "ResponseCache", "RetryHandler",
    "SecureConfig", "ServiceFactory", "SimpleLLMService", "StreamingHandler", "TokenCount",
    "TokenCounter", "UsageInfo", "enable_deprecation_warnings", "translate",
]
