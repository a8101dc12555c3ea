"""Keys, base URLs and model ids: explicit arguments > environment > defaults."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError, InvalidModelError, MissingAPIKeyError
from .pipeline import Target
from .registry import DETECTION_ORDER, ProviderSpec, get_spec


@dataclass(slots=True)
class Settings:
    api_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    base_urls: Mapping[str, str] = field(default_factory=dict, repr=False)  # may embed keys
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per provider
    env: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False)

    def api_key(self, spec: ProviderSpec) -> str | None:
        key = value = None
        try:
            if (key := self.api_keys.get(spec.name)) and (
                    key := _clean_key(key, f"api_keys[{spec.name!r}]")):
                return key
            for var in spec.key_env:
                if (value := self.env.get(var)) and (value := _clean_key(value, var)):
                    return value
        except ConfigurationError:
            key = value = None  # not a local of a raising frame: trackers capture locals
            raise
        return None

    def base_url(self, spec: ProviderSpec) -> str | None:
        if url := self.base_urls.get(spec.name):
            return url.rstrip("/")
        for var in spec.base_url_env:
            if value := self.env.get(var):
                return value.rstrip("/")
        return spec.base_url

    def provider_options(self, spec: ProviderSpec) -> dict[str, Any]:
        opts = dict(spec.options)
        if var := opts.get("api_version_env"):
            opts["api_version"] = self.env.get(var) or opts.get("api_version")
        opts.update(self.options.get(spec.name, {}))
        return opts

    def is_configured(self, spec: ProviderSpec) -> bool:
        if spec.requires_key:
            return self.api_key(spec) is not None and self.base_url(spec) is not None
        if spec.transport == "subprocess":  # the Claude Code CLI: is its program here?
            from .transports.subprocess import find_program
            return find_program(self.provider_options(spec), self.env) is not None
        return spec.transport != "http"  # local servers are opt-in by name

    def resolve(self, model_id: str) -> Target:
        """``"<provider>/<model>"`` (split on the first slash) to a Target."""
        if not isinstance(model_id, str) or "/" not in model_id:
            raise InvalidModelError(
                f"model id {model_id!r} must look like '<provider>/<model>', "
                "e.g. 'openai/gpt-4o-mini' or 'anthropic/claude-sonnet-4-5'"
            )
        provider, model = model_id.split("/", 1)
        spec = get_spec(provider)
        if not model.isprintable():  # a newline would forge lines in logs and errors
            raise InvalidModelError(
                f"model id {model_id[:80]!r} holds control characters (a newline?); "
                "check the model name")
        if not model.strip():  # never silently the provider's default model
            example = f"{provider}/{spec.default_model or '<model>'}"
            raise InvalidModelError(
                f"model id {model_id!r} names no model: write '<provider>/<model>', "
                f"e.g. {example!r} (or pass model=None for the default model)")
        base_url = self.base_url(spec)
        if base_url is None:
            names = " or ".join(spec.base_url_env) or "a base URL"
            raise InvalidModelError(
                f"provider {provider!r} needs an endpoint: set {names}, or pass "
                f"base_urls={{{provider!r}: ...}}"
            )
        _check_base_url(provider, base_url, spec)
        key = self.api_key(spec)
        if key is None and spec.requires_key:
            raise MissingAPIKeyError(provider, spec.key_env)
        if key is not None and (problem := key_problem(key)) is not None:
            del key  # not a local of a frame that raises: trackers capture locals
            raise ConfigurationError(f"the API key for provider {provider!r} {problem}")
        return Target(spec, model, base_url, key, self.provider_options(spec))

    def default_model(self) -> str:
        """The first configured provider in DETECTION_ORDER, with its default model."""
        for name in DETECTION_ORDER:
            spec = get_spec(name)
            if self.is_configured(spec) and spec.default_model:
                return f"{name}/{spec.default_model}"
        return "local/smollm2-135m-instruct"


_BAD_KEY_CHAR = re.compile(r"[\s\x00-\x1f\x7f]")


def _clean_key(key: object, where: str) -> str:
    """The key without surrounding whitespace (a newline read from a file, a pasted
    space; only whitespace: "", unset); whitespace or control characters inside it
    are the caller's mistake."""
    if not isinstance(key, str):
        kind, key = type(key).__name__, None  # not a local of the raising frame
        raise ConfigurationError(f"the API key in {where} must be a string, got {kind}")
    if _BAD_KEY_CHAR.search(key):
        key = key.strip()
        if _BAD_KEY_CHAR.search(key):
            key = None
            raise ConfigurationError(
                f"the API key in {where} contains whitespace or control characters "
                "(not shown here): check how it was copied")
    return key


def _check_base_url(provider: str, url: str, spec: ProviderSpec) -> None:
    """A malformed base URL is the caller's mistake: say so before any traffic
    (and without echoing the URL, which may carry a key in its query)."""
    if spec.transport != "http":
        return
    if _has_credentials(url):
        raise ConfigurationError(
            f"the base URL for provider {provider!r} carries credentials (user:password@); "
            "modelwire does not send URL credentials: remove them from the URL and pass "
            f"the key as api_keys={{{provider!r}: ...}} or in the provider's environment "
            "variable"
        )
    if not _is_http_url(url):
        names = " or ".join(spec.base_url_env) or "base_urls"
        raise InvalidModelError(
            f"the base URL for provider {provider!r} is not an http(s) URL with a host "
            "(or it holds spaces or control characters); "
            f"check {names} or base_urls={{{provider!r}: 'https://host/...'}}"
        )


def key_problem(key: Any) -> str | None:
    """What makes ``key`` unusable, never the key itself; None if it is fine. A key
    goes into an HTTP header: a str of visible ASCII only. A newline would inject
    headers (and aiohttp's own refusal is a raw ValueError). Not cached: a cache
    would hold every key as its own key."""
    if not isinstance(key, str):
        return f"must be a str, got {type(key).__name__}"
    if key.isascii() and key.isprintable() and " " not in key and key:
        return None
    return ("is not usable in an HTTP header: it has whitespace, control characters "
            "(a newline?) or non-ASCII characters. Check the key you pasted (its value "
            "is not shown here)")


@lru_cache(maxsize=256)
def _has_credentials(url: str) -> bool:
    """``user:pass@`` (or ``user@``) in the authority: never sent, never shown."""
    authority = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    return "@" in authority


@lru_cache(maxsize=256)  # resolve() runs on every call; a URL is parsed once
def _is_http_url(url: str) -> bool:
    if not url.isprintable() or " " in url:  # a space, newline or tab: never quoted for us
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
