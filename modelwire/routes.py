"""Named model routes: an alias maps to the model's id on each provider that serves it.

``client.complete("deepseek-chat", ...)`` goes to the first route whose
provider is configured (its key is set; keyless providers such as ``mock``,
``local`` and local servers named in a route count as configured); the later
configured routes become its fallbacks, ahead of any ``fallbacks=`` given.
Routes whose provider has no key are skipped; when none is left the error
names every variable that would enable one. An id with a slash
(``"openai/gpt-4o-mini"``) is never an alias. A name that is neither raises
InvalidModelError listing the known aliases.

Aliases come from, highest first: the client's ``aliases=`` argument, the user
config file (:mod:`modelwire.userconfig`), and :data:`BUILTIN_ALIASES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .errors import ConfigurationError, InvalidModelError
from .registry import get_spec
from .userconfig import check_routes

if TYPE_CHECKING:
    from .config import Settings
    from .pipeline import Target

AliasesLike = Mapping[str, "str | Sequence[str]"]

BUILTIN_ALIASES: dict[str, tuple[str, ...]] = {
    "deepseek-chat": ("deepseek/deepseek-chat", "openrouter/deepseek/deepseek-chat",
                      "together/deepseek-ai/DeepSeek-V3",
                      "fireworks/accounts/fireworks/models/deepseek-v3"),
    "llama-3.3-70b": ("groq/llama-3.3-70b-versatile",
                      "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
                      "fireworks/accounts/fireworks/models/llama-v3p3-70b-instruct",
                      "openrouter/meta-llama/llama-3.3-70b-instruct"),
    "gpt-4o-mini": ("openai/gpt-4o-mini", "openrouter/openai/gpt-4o-mini"),
    "claude-sonnet-4-5": ("anthropic/claude-sonnet-4-5", "openrouter/anthropic/claude-sonnet-4.5"),
    "gemini-2.5-flash": ("gemini/gemini-2.5-flash", "openrouter/google/gemini-2.5-flash"),
    "smollm2": ("local/smollm2-135m-instruct",),
}


class NoRouteConfiguredError(ConfigurationError):
    """No provider serving this alias is configured (a MissingAPIKeyError-like mistake)."""


class Routes:
    """The alias table of one client: code > user file > built-ins."""

    __slots__ = ("_layers",)

    def __init__(self, *layers: Mapping[str, Sequence[str]]) -> None:
        self._layers = layers  # highest precedence first

    def get(self, name: str) -> tuple[str, ...] | None:
        for layer in self._layers:
            if name in layer:
                return tuple(layer[name])
        return None

    def plan(self, settings: Settings, model: str, prefer: str | None = None) -> list[Target]:
        return plan(settings, self, model, prefer)

    def names(self) -> list[str]:
        seen: dict[str, None] = {}
        for layer in self._layers:
            seen.update(dict.fromkeys(layer))
        return sorted(seen)


def coerce_aliases(aliases: AliasesLike | None) -> dict[str, tuple[str, ...]]:
    """Validate ``aliases=``: ``{"name": "p/model" | ["p/model", ...]}``."""
    if aliases is None:
        return {}
    if not isinstance(aliases, Mapping):
        raise ConfigurationError(
            f"aliases= must be a dict of alias -> route(s), got {type(aliases).__name__}")
    return {k: check_routes(k, v, "aliases=") for k, v in aliases.items()}


def provider_of(route: str) -> str:
    return route.split("/", 1)[0]


def usable(settings: Settings, route: str) -> bool:
    """Is the route's provider configured (key set; for the CLI provider, its program
    found), or a keyless local server (ollama, vllm, ...) named here explicitly?"""
    spec = get_spec(provider_of(route))
    return settings.is_configured(spec) or (not spec.requires_key and spec.transport == "http")


def plan(settings: Settings, routes: Routes, model: str,
         prefer: str | None = None) -> list[Target]:
    """The targets for ``model``, primary first. ``prefer`` moves that provider's route
    to the front (ConfigurationError if the alias has none there or it is not configured)."""
    if not isinstance(model, str) or "/" in model:
        target = settings.resolve(model)
        if prefer is not None and prefer != target.provider:
            raise ConfigurationError(
                f"model id {model!r} names provider {target.provider!r}; to move a model "
                "between providers, give it an alias with a route on each")
        return [target]
    ids = routes.get(model)
    if ids is None:
        import difflib
        names = routes.names()
        close = difflib.get_close_matches(model, names, n=1, cutoff=0.6)
        known = ", ".join(names) or "(none)"
        raise InvalidModelError(
            f"model {model!r} is neither '<provider>/<model>' (e.g. 'openai/gpt-4o-mini') "
            f"nor a known alias{f' (did you mean {close[0]!r}?)' if close else ''}; "
            f"known aliases: {known} "
            "(add one with `modelwire aliases set NAME PROVIDER/MODEL` or aliases={...})")
    if prefer is not None:
        chosen = [r for r in ids if provider_of(r) == prefer]
        if not chosen:
            raise ConfigurationError(
                f"alias {model!r} has no route on provider {prefer!r}; its routes: "
                f"{', '.join(ids)}")
        if not usable(settings, chosen[0]):
            settings.resolve(chosen[0])  # raises MissingAPIKeyError naming the variable
        ids = (chosen[0], *(r for r in ids if r != chosen[0]))
    live = [r for r in ids if usable(settings, r)]
    if not live:
        env = [v for r in ids for v in get_spec(provider_of(r)).key_env]
        raise NoRouteConfiguredError(
            f"no provider serving {model!r} is configured: set one of "
            f"{', '.join(dict.fromkeys(env))} (routes: {', '.join(ids)})")
    return [settings.resolve(r) for r in live]
