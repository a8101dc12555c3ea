"""LLMCommunication, SimpleLLMService and ServiceFactory: the old service facades.

Each holds one ``modelwire.Client`` (or shares the one passed as ``client=``),
so retries, fallback, the breaker, streaming and typed errors all apply.
Errors come out as modelwire's own, each also an instance of its old class
(:mod:`modelwire.compat.errors`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

from ..errors import ConfigurationError, InvalidMessageError, ModelwireError
from ..response import TextDelta
from ..routes import BUILTIN_ALIASES, Routes, provider_of
from ..sync import Client
from ..types import MessageLike
from ._warn import deprecated, quiet
from .errors import translate, translated
from .observe import MetricsCollector
from .providers import ProviderConfig, ProviderManager
from .types import LLMResponse
from .utilities import CircuitBreaker, ResponseCache, RetryHandler, SecureConfig

_CONFIG = ("model", "api_key", "base_url", "max_tokens", "temperature", "timeout",
           "max_retries", "system_prompt", "fallbacks", "retry_handler", "circuit_breaker",
           "cache", "metrics", "client", "env")


class LLMCommunication:
    """Talk to one provider. ``provider=None`` picks the first available one
    (anthropic, openai, claude-cli, then the local model).

    ``config``: ``model`` (a model name on that provider, or a full
    ``"<provider>/<model>"`` id, which then names the provider), ``api_key``,
    ``base_url``, ``max_tokens``, ``temperature``, ``timeout`` (seconds),
    ``max_retries``, ``system_prompt``, ``fallbacks`` (modelwire ids),
    ``retry_handler``, ``circuit_breaker``, ``cache`` (ResponseCache), ``metrics``
    (MetricsCollector), ``client`` (a shared ``modelwire.Client``, not closed by
    us), ``env`` (instead of os.environ).
    Unset values come from ``ProviderConfig.from_env(provider)``.
    """

    def __init__(self, provider: str | None = None, **config: Any) -> None:
        deprecated("LLMCommunication", "modelwire.Client().complete()")
        unknown = sorted(set(config) - set(_CONFIG))
        if unknown:
            raise translate(ConfigurationError(
                f"unknown LLMCommunication option(s) {', '.join(unknown)}; "
                f"known: {', '.join(_CONFIG)}"))
        _check_types(config)
        if config.get("client") is not None:
            lost = [k for k in _CLIENT_SETTINGS if config.get(k) is not None]
            if lost:  # they would be silently ignored: the shared client has its own
                raise translate(ConfigurationError(
                    f"LLMCommunication got client= and {', '.join(lost)}: a shared client "
                    "keeps its own settings; pass them to modelwire.Client(...) instead "
                    "(e.g. api_keys=, base_urls=, timeout=, max_retries=, fallbacks=)"))
        env = config.get("env")
        with quiet():
            self.manager = ProviderManager(env)
        shared: Client | None = config.get("client")
        model = config.get("model")
        alias = None
        routes = _routes(shared).get(model) if isinstance(model, str) and "/" not in model \
            else None
        if provider is None and routes:
            alias = model  # a modelwire alias: its routes (and their fallbacks) decide
            provider = provider_of(routes[0])
        self.provider = provider or self.manager.get_active_provider()
        base = ProviderConfig.from_env(self.provider, self.manager.env)
        model = model or base.model
        self.model_id = alias or legacy_model_id(_routes(shared), self.provider, model)
        self.provider = provider_of(self.model_id) if "/" in self.model_id else self.provider
        self.max_tokens: int | None = _given(config, "max_tokens", base.max_tokens)
        self.temperature: float | None = config.get("temperature")
        self.system_prompt: str | None = config.get("system_prompt")
        self.cache: ResponseCache | None = config.get("cache")
        self.metrics: MetricsCollector | None = config.get("metrics")
        self._api_key = config.get("api_key") or base.api_key
        self._owns_client = shared is None
        self.client: Client = shared or self._new_client(config, base, env)
        if alias is not None:  # the route a call would take now
            with contextlib.suppress(ModelwireError):
                self.provider = self.client.aio.plan(alias)[0].provider
        if self.metrics is not None and not self._owns_client:
            self.metrics.attach(self.client)  # a shared client: read its client.metrics
        self.last_response: LLMResponse | None = None

    def _new_client(self, config: Mapping[str, Any], base: ProviderConfig,
                    env: Mapping[str, str] | None) -> Client:
        options: dict[str, Any] = {}
        for helper in (config.get("retry_handler"), config.get("circuit_breaker")):
            if isinstance(helper, (RetryHandler, CircuitBreaker)):
                with translated():
                    options.update(helper.client_options())
        metrics = config.get("metrics")
        if isinstance(metrics, MetricsCollector):
            options.update(metrics.client_options())  # its middleware counts for us
        if config.get("max_retries") is not None:
            options["max_retries"] = config["max_retries"]
        timeout = _given(config, "timeout", base.timeout)
        base_url = config.get("base_url") or base.base_url
        with translated():
            return Client(
                api_keys={self.provider: self._api_key} if config.get("api_key") else None,
                base_urls={self.provider: base_url} if base_url else None,
                timeout=timeout, fallbacks=config.get("fallbacks"), env=env, **options)

    def __repr__(self) -> str:
        return f"<LLMCommunication {self.model_id!r}>"

    # --- the old verbs ------------------------------------------------------

    def _messages(self, messages: Iterable[MessageLike] | str) -> list[Any]:
        if isinstance(messages, Mapping) or not isinstance(messages, (str, Iterable)):
            raise translate(InvalidMessageError(
                f"messages must be a prompt string or a list of messages like "
                f"[{{'role': 'user', 'content': '...'}}], got {type(messages).__name__}"))
        msgs: list[Any] = [{"role": "user", "content": messages}] if isinstance(
            messages, str) else list(messages)
        if self.system_prompt and not any(
                (m.get("role") if isinstance(m, Mapping) else getattr(m, "role", None))
                == "system" for m in msgs):
            msgs.insert(0, {"role": "system", "content": self.system_prompt})
        return msgs

    def _kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs.setdefault("max_tokens", self.max_tokens)
        kwargs.setdefault("temperature", self.temperature)
        return kwargs

    def generate_text(self, prompt: str, **kwargs: Any) -> str:
        """The reply's text for one user prompt."""
        return self.generate_response(prompt, **kwargs).content

    def generate_response(self, messages: Iterable[MessageLike] | str,
                          **kwargs: Any) -> LLMResponse:
        """One answer as an LLMResponse (content, usage, timing, ids)."""
        msgs, kw = self._messages(messages), self._kwargs(kwargs)
        key = None
        if self.cache is not None:
            key = ResponseCache.key(self.model_id, [repr(m) for m in msgs], kw, self._api_key)
            hit = self.cache.get(key)
            if hit is not None:
                return hit  # type: ignore[no-any-return]
        with translated():
            response = self.client.complete(self.model_id, msgs, **kw)
        result = LLMResponse.from_response(response)
        self.last_response = result
        if self.cache is not None and key is not None:
            self.cache.set(key, result)
        return result

    def generate_stream(self, messages: Iterable[MessageLike] | str,
                        **kwargs: Any) -> Iterator[str]:
        """Text pieces as they arrive; ``last_response`` is set when it ends."""
        msgs, kw = self._messages(messages), self._kwargs(kwargs)
        with translated(), self.client.stream(self.model_id, msgs, **kw) as stream:
            for event in stream:
                if isinstance(event, TextDelta):
                    yield event.text
            response = stream.response
        self.last_response = LLMResponse.from_response(response)

    def get_provider_info(self) -> dict[str, Any]:
        """Provider, model, limits and the detected providers (the key masked)."""
        return {"provider": self.provider, "model": self.model_id.split("/", 1)[-1],
                "model_id": self.model_id, "max_tokens": self.max_tokens,
                "temperature": self.temperature,
                "api_key": SecureConfig.mask_api_key(self._api_key),
                "has_api_key": bool(self._api_key),
                "available_providers": self.manager.detect_available_providers()}

    def health_check(self) -> dict[str, Any]:
        """Is the provider usable? modelwire's health check: key present, reachable,
        latency, breaker state, by listing models (never spends tokens)."""
        provider = self.provider
        with translated():
            reports = self.client.health_check([provider])
        r = reports[0].to_dict() if reports else {"provider": provider, "error": "no report"}
        r["healthy"] = bool(r.get("reachable")) and not r.get("error")
        return r  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> LLMCommunication:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


_CLIENT_SETTINGS = ("api_key", "base_url", "timeout", "max_retries", "fallbacks",
                    "retry_handler", "circuit_breaker")


def _given(config: Mapping[str, Any], name: str, default: Any) -> Any:
    """``config[name]`` unless absent or None (0 is a value: the client rejects it)."""
    value = config.get(name)
    return default if value is None else value


_TYPES: dict[str, tuple[type, ...]] = {
    "retry_handler": (RetryHandler,), "circuit_breaker": (CircuitBreaker,),
    "cache": (ResponseCache,), "metrics": (MetricsCollector,), "client": (Client,),
    "env": (Mapping,)}


def _check_types(config: Mapping[str, Any]) -> None:
    for name, kinds in _TYPES.items():
        value = config.get(name)
        if value is not None and not isinstance(value, kinds):
            raise translate(ConfigurationError(
                f"LLMCommunication {name}= must be a {kinds[0].__name__} (from "
                f"{kinds[0].__module__}), got {type(value).__name__} {value!r:.40}"))


def _routes(client: Client | None) -> Routes:
    """The alias table a call would use: the client's, else user config + built-ins."""
    with translated():
        if client is not None:
            return client.aio.routes
        from .. import userconfig
        return Routes(userconfig.load().aliases, BUILTIN_ALIASES)


def legacy_model_id(routes: Routes, provider: str, model: str | None, *,
                    alias_anywhere: bool = False) -> str:
    """The modelwire id for an old (provider, model) pair: a full id as is; an alias's
    route on ``provider`` when it has one (else, with ``alias_anywhere``, the alias
    itself); else ``provider/model``."""
    if model and "/" in model:
        return model
    ids = routes.get(model or "") or ()
    on = [r for r in ids if provider_of(r) == provider]
    if on:
        return on[0]
    return model if alias_anywhere and ids and model else f"{provider}/{model or ''}"


class SimpleLLMService:
    """One-call helpers over an LLMCommunication (made from ``config`` when not given)."""

    def __init__(self, communication: LLMCommunication | None = None, **config: Any) -> None:
        deprecated("SimpleLLMService", "modelwire.Client().complete(...).text")
        with quiet():
            self.communication = communication or LLMCommunication(
                config.pop("provider", None), **config)

    def llm_call(self, prompt: str) -> str:
        """The reply's text."""
        return self.communication.generate_text(prompt)

    def simple_llm(self, prompt: str, model: str | None = None,
                   max_tokens: int | None = None) -> str:
        """The reply's text; ``model`` (a name on the same provider, a modelwire id, or
        an alias) and ``max_tokens`` override the service's for this call."""
        comm = self.communication
        if model is None:
            return comm.generate_text(prompt, max_tokens=max_tokens or comm.max_tokens)
        with translated():
            model_id = legacy_model_id(comm.client.aio.routes, comm.provider, model,
                                       alias_anywhere=True)
            return comm.client.complete(model_id, comm._messages(prompt),
                                        max_tokens=max_tokens or comm.max_tokens).text

    def close(self) -> None:
        self.communication.close()


class ServiceFactory:
    """Builds services from a dict (``provider``, ``model``, ... as LLMCommunication
    takes) or a ProviderConfig."""

    @staticmethod
    def create_llm_service(config: Mapping[str, Any] | ProviderConfig | None = None
                           ) -> SimpleLLMService:
        if isinstance(config, ProviderConfig):
            options: dict[str, Any] = {"provider": config.name, "model": config.model,
                                       "api_key": config.api_key,
                                       "max_tokens": config.max_tokens,
                                       "timeout": config.timeout, "base_url": config.base_url}
            options = {k: v for k, v in options.items() if v is not None}
        elif config is None or isinstance(config, Mapping):
            options = dict(config or {})
        else:
            raise translate(ConfigurationError(
                f"create_llm_service takes a dict or a ProviderConfig, got "
                f"{type(config).__name__}"))
        return SimpleLLMService(**options)
