"""Provider rows. A provider is data (this table) plus a codec; code only for quirks.

Built-ins and third-party plugins come through the same door: ``register()``.
Plugins publish a ``modelwire.providers`` entry point whose object is a
ProviderSpec or a list of them; they are loaded the first time a name is not
found among the built-ins.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import UnknownProviderError

Auth = Literal["bearer", "x-api-key", "api-key", "x-goog-api-key", "none"]


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    codec: str  # "module:Class", imported lazily
    base_url: str | None  # None: must be configured (azure)
    key_env: tuple[str, ...] = ()
    base_url_env: tuple[str, ...] = ()
    requires_key: bool = True
    auth: Auth = "bearer"
    transport: Literal["http", "mock", "local", "subprocess"] = "http"
    default_model: str | None = None
    stream_usage: bool = True  # accepts stream_options.include_usage
    headers: tuple[tuple[str, str], ...] = ()
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


OPENAI = "modelwire.providers.openai_compat:OpenAICodec"
ANTHROPIC = "modelwire.providers.anthropic:AnthropicCodec"
GEMINI = "modelwire.providers.gemini:GeminiCodec"


def _compat(name: str, url: str | None, model: str | None = None, *, key: bool = True,
            **kw: Any) -> ProviderSpec:
    upper = name.upper()
    return ProviderSpec(name, OPENAI, url, (f"{upper}_API_KEY",), (f"{upper}_BASE_URL",),
                        requires_key=key, default_model=model, **kw)


_BUILTINS: list[ProviderSpec] = [
    _compat("openai", "https://api.openai.com/v1", "gpt-4o-mini"),
    ProviderSpec("azure", OPENAI, None, ("AZURE_OPENAI_API_KEY",),
                 ("AZURE_OPENAI_ENDPOINT",), auth="api-key",
                 options={"api_version_env": "OPENAI_API_VERSION",
                          "api_version": "2024-10-21"}),
    ProviderSpec("anthropic", ANTHROPIC, "https://api.anthropic.com", ("ANTHROPIC_API_KEY",),
                 ("ANTHROPIC_BASE_URL",), auth="x-api-key", default_model="claude-sonnet-4-5",
                 headers=(("anthropic-version", "2023-06-01"),)),
    ProviderSpec("gemini", GEMINI, "https://generativelanguage.googleapis.com",
                 ("GEMINI_API_KEY", "GOOGLE_API_KEY"), ("GEMINI_BASE_URL",),
                 auth="x-goog-api-key", default_model="gemini-2.5-flash"),
    ProviderSpec("openai-responses", "modelwire.providers.openai_responses:ResponsesCodec",
                 "https://api.openai.com/v1", ("OPENAI_API_KEY",), ("OPENAI_BASE_URL",),
                 default_model="gpt-4o-mini"),
    _compat("groq", "https://api.groq.com/openai/v1", "llama-3.3-70b-versatile"),
    _compat("mistral", "https://api.mistral.ai/v1", "mistral-small-latest",
            stream_usage=False),  # rejects unknown fields (stream_options) with a 422
    _compat("deepseek", "https://api.deepseek.com", "deepseek-chat"),
    _compat("openrouter", "https://openrouter.ai/api/v1", "openai/gpt-4o-mini"),
    _compat("together", "https://api.together.xyz/v1",
            "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
    _compat("fireworks", "https://api.fireworks.ai/inference/v1",
            "accounts/fireworks/models/llama-v3p3-70b-instruct"),
    _compat("xai", "https://api.x.ai/v1", "grok-3-mini"),
    _compat("ollama", "http://127.0.0.1:11434/v1", key=False),
    _compat("vllm", "http://127.0.0.1:8000/v1", key=False),
    _compat("llamacpp", "http://127.0.0.1:8080/v1", key=False),
    _compat("lmstudio", "http://127.0.0.1:1234/v1", key=False),
    ProviderSpec("mock", OPENAI, "mock://", requires_key=False, transport="mock",
                 default_model="echo"),
    ProviderSpec("local", OPENAI, "local://", requires_key=False, transport="local",
                 default_model="smollm2-135m-instruct"),
    # The Claude Code CLI (npm @anthropic-ai/claude-code) run as a subprocess: it
    # brings its own login, so no key of ours; configured when `claude` is found.
    ProviderSpec("claude-cli", "modelwire.providers.claude_cli:ClaudeCLICodec", "claude-cli://",
                 requires_key=False, transport="subprocess", default_model="claude-sonnet-4-5"),
]

# The order `Client()` / `modelwire chat` use to pick a default provider: the
# first whose key is set (claude-cli: whose program is found); `local` ends it.
DETECTION_ORDER = ("openai", "anthropic", "claude-cli", "gemini", "groq", "mistral", "deepseek",
                   "openrouter", "together", "fireworks", "xai", "azure", "local")

_REGISTRY: dict[str, ProviderSpec] = {s.name: s for s in _BUILTINS}
_plugins_loaded = False
_codecs: dict[str, Any] = {}


def register(spec: ProviderSpec) -> None:
    """Add or replace a provider row (plugins and tests)."""
    _REGISTRY[spec.name] = spec
    _codecs.pop(spec.name, None)


def _load_plugins() -> None:
    global _plugins_loaded
    _plugins_loaded = True
    from importlib.metadata import entry_points
    for ep in entry_points(group="modelwire.providers"):
        obj = ep.load()
        for spec in obj if isinstance(obj, (list, tuple)) else [obj]:
            register(spec)


def get_spec(name: str) -> ProviderSpec:
    spec = _REGISTRY.get(name)
    if spec is None and not _plugins_loaded:
        _load_plugins()
        spec = _REGISTRY.get(name)
    if spec is None:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownProviderError(
            f"unknown provider {name!r}; known providers: {known} "
            "(or install a plugin that registers it)"
        )
    return spec


def all_specs() -> list[ProviderSpec]:
    if not _plugins_loaded:
        _load_plugins()
    return list(_REGISTRY.values())


def get_codec(spec: ProviderSpec) -> Any:
    """The codec instance for a row (imported on first use, then cached)."""
    codec = _codecs.get(spec.name)
    if codec is None:
        module, _, cls = spec.codec.partition(":")
        codec = getattr(importlib.import_module(module), cls)(spec)
        _codecs[spec.name] = codec
    return codec
