"""ProviderConfig (settings from the environment) and ProviderManager (detection).

Detection order: anthropic, openai, claude-cli, then the local model (so it
works with no key at all). A provider is available when its key is set;
``claude-cli`` when this modelwire has that provider and the ``claude``
program is on PATH; ``local`` always (it needs the ``local`` extra, and says
so when a call is made without it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..config import Settings
from ..errors import ConfigurationError, UnknownProviderError
from ..registry import ProviderSpec, get_spec
from ._warn import deprecated
from .errors import ProviderUnavailableException, translate

DETECTION_ORDER = ("anthropic", "openai", "claude-cli", "local")
_PREFIX = {"anthropic": "ANTHROPIC", "openai": "OPENAI"}  # the documented variables


@dataclass(slots=True)
class ProviderConfig:
    """One provider's settings. ``api_key`` never appears in the repr."""

    name: str
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    max_tokens: int | None = None
    timeout: float | None = None
    base_url: str | None = None

    @classmethod
    def from_env(cls, name: str, env: Mapping[str, str] | None = None) -> ProviderConfig:
        """Read ``<P>_API_KEY``, ``<P>_MODEL``, ``<P>_MAX_TOKENS`` (P = ANTHROPIC, OPENAI,
        or the provider's own key variable for others) and ``LLM_TIMEOUT`` (seconds).
        A malformed number raises a ConfigurationError (also an LLMException)."""
        env = os.environ if env is None else env
        spec = _spec(name)
        prefix = _PREFIX.get(name, name.upper().replace("-", "_"))
        settings = Settings(env=env)
        return cls(
            name=name,
            model=env.get(f"{prefix}_MODEL") or spec.default_model,
            api_key=settings.api_key(spec),
            max_tokens=_number(env, f"{prefix}_MAX_TOKENS", int),
            timeout=_number(env, "LLM_TIMEOUT", float),
            base_url=env.get(f"{prefix}_BASE_URL") or None,
        )

    @property
    def model_id(self) -> str:
        """The modelwire model id, ``"<provider>/<model>"``."""
        return f"{self.name}/{self.model or ''}"


def _number(env: Mapping[str, str], var: str, kind: type[int] | type[float]) -> int | None:
    raw = env.get(var)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = kind(raw)
    except ValueError:
        value = -1
    if value <= 0:
        raise translate(ConfigurationError(
            f"{var}={raw!r} is not a positive {kind.__name__}: fix or unset it"))
    return value  # type: ignore[return-value]


def _spec(name: str) -> ProviderSpec:
    try:
        return get_spec(name)
    except UnknownProviderError as e:
        raise translate(e) from None


def has_claude_cli() -> bool:
    """Is ``claude-cli`` a provider in this modelwire (it ships on its own branch)?"""
    try:
        get_spec("claude-cli")
    except UnknownProviderError:
        return False
    return True


class ProviderManager:
    """Which providers are usable here, and which one is active."""

    def __init__(self, env: Mapping[str, str] | None = None, *,
                 which: Callable[[str], str | None] | None = None) -> None:
        deprecated("ProviderManager", "modelwire.Client() (default provider) and "
                   "`modelwire providers`")
        self.env = os.environ if env is None else env
        self._which = which
        self._active: str | None = None

    def is_available(self, name: str) -> bool:
        if name == "claude-cli":
            if not has_claude_cli():
                return False
            if self._which is not None:
                return self._which("claude") is not None
            # modelwire's own check: the `program` option, $CLAUDE_CLI_PATH, then PATH
            return Settings(env=self.env).is_configured(get_spec(name))
        spec = _spec(name)
        if not spec.requires_key:
            return True
        return Settings(env=self.env).is_configured(spec)

    def detect_available_providers(self) -> list[str]:
        """Available providers in detection order (``local`` always ends it)."""
        return [n for n in DETECTION_ORDER if self.is_available(n)]

    def get_active_provider(self) -> str:
        """The provider switched to, else the first available one."""
        return self._active or self.detect_available_providers()[0]

    def switch_provider(self, name: str) -> str:
        """Make ``name`` (any modelwire provider) active. Not usable here:
        ProviderUnavailableException (also a modelwire ConfigurationError)."""
        if not self.is_available(name):
            need = ("install the `claude` program on PATH, or set CLAUDE_CLI_PATH to it"
                    if name == "claude-cli" else "set " + " or ".join(_spec(name).key_env))
            raise translate(ConfigurationError(
                f"provider {name!r} is not available here: {need}"),
                ProviderUnavailableException)
        self._active = name
        return name

    def get_provider_config(self, name: str | None = None) -> ProviderConfig:
        return ProviderConfig.from_env(name or self.get_active_provider(), self.env)
