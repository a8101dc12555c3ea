"""Health checks: is each provider usable from here, right now?

For every configured provider (or the ones named): is a key present, is the
API reachable, the round-trip latency, and the circuit-breaker state. The
probe is a cheap authenticated GET that lists models (``{base}/models`` on the
OpenAI wire, ``{base}/v1/models`` for Anthropic, ``{base}/v1beta/models`` for
Gemini): it never spends tokens. Probes bypass the middleware, so they are
neither retried nor counted by the breaker. A provider that needs a key and
has none is reported as "no key" and not probed (``reachable`` is None).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import ConfigurationError, ProviderError
from .middleware import find
from .middleware.breaker import Breaker
from .pipeline import Timeouts
from .registry import ANTHROPIC, GEMINI, ProviderSpec, all_specs, get_spec
from .transports.base import WireRequest

if TYPE_CHECKING:
    from .client import AsyncClient
    from .config import Settings

PROBE_TIMEOUTS = Timeouts(connect=5.0, read=10.0, total=10.0)
_RANK = {"closed": 0, "half-open": 1, "open": 2}


@dataclass(slots=True)
class HealthReport:
    provider: str
    key_present: bool
    reachable: bool | None  # None: not probed (a key is required and none is set)
    latency: float | None = None  # seconds for the probe's round trip
    breaker: str | None = None  # worst state over this provider's targets; None: no breaker
    error: str | None = None  # why it is not usable, never a key
    key_required: bool = True  # False: local servers, the embedded model, the mock

    @property
    def ok(self) -> bool:
        return bool(self.reachable) and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "key_present": self.key_present,
                "key_required": self.key_required,
                "reachable": self.reachable, "latency": self.latency,
                "breaker": self.breaker, "error": self.error}


def probe_request(spec: ProviderSpec, base_url: str, key: str | None,
                  options: dict[str, Any]) -> WireRequest:
    """The GET that lists models, authenticated the way this provider expects."""
    base = base_url.rstrip("/")
    if spec.codec == ANTHROPIC:
        url = f"{base}/v1/models"
    elif spec.codec == GEMINI:
        url = f"{base}/v1beta/models"
    elif spec.auth == "api-key":  # Azure OpenAI: the deployment-less models list
        url = f"{base}/openai/models?api-version={options.get('api_version') or '2024-10-21'}"
    else:
        url = f"{base}/models"
    headers = dict(spec.headers)
    if key:
        if spec.auth == "bearer":
            headers["authorization"] = f"Bearer {key}"
        elif spec.auth != "none":
            headers[spec.auth] = key
    return WireRequest("GET", url, headers)


async def health_check(client: AsyncClient,
                       providers: Sequence[str] | None = None) -> list[HealthReport]:
    """One report per provider: the configured ones, or exactly those named."""
    if providers is None:
        specs = [s for s in all_specs()
                 if s.transport != "mock" and client.settings.is_configured(s)]
    else:
        if isinstance(providers, str):
            providers = [providers]
        specs = [get_spec(name) for name in providers]  # UnknownProviderError if misspelt
    breaker = find(client.middleware, Breaker)
    return list(await asyncio.gather(*(_check(client, s, breaker) for s in specs)))


async def _check(client: AsyncClient, spec: ProviderSpec, breaker: Breaker | None) -> HealthReport:
    settings = client.settings
    try:
        key = settings.api_key(spec)
    except ConfigurationError as e:  # a key that is not a usable string: report, send nothing
        report = HealthReport(spec.name, key_present=True, reachable=None,
                              key_required=spec.requires_key, error=str(e))
        report.breaker = await _breaker_state(breaker, spec.name)
        return report
    report = HealthReport(spec.name, key_present=key is not None, reachable=False,
                          key_required=spec.requires_key)
    report.breaker = await _breaker_state(breaker, spec.name)
    if spec.transport != "http":
        return await _local(spec, report, settings)
    if key is None and spec.requires_key:  # nothing to probe with: send nothing
        report.reachable = None
        report.error = f"no key: set {' or '.join(spec.key_env)}"
        return report
    base_url = settings.base_url(spec)
    if base_url is None:
        report.error = f"no endpoint configured: set {' or '.join(spec.base_url_env)}"
        return report
    if key is not None:
        from .config import key_problem
        problem = key_problem(key)  # a newline would inject headers: never sent
        if problem is not None:
            report.error = f"the API key {problem}"
            return report
    request = probe_request(spec, base_url, key, settings.provider_options(spec))
    transport = client.transport_for(spec)
    started = time.perf_counter()
    try:
        resp = await transport.send(request, PROBE_TIMEOUTS)
        try:
            body = await resp.read(client.max_response_bytes)  # bounded like any answer
        finally:
            await resp.aclose()
    except ProviderError as e:
        report.error = _redacted(f"{type(e).__name__}: {e.message}", key)
        return report
    report.latency = time.perf_counter() - started
    report.reachable = True
    if resp.status in (401, 403):
        report.error = (f"the API key was rejected (HTTP {resp.status})" if key else
                        f"no API key: set {' or '.join(spec.key_env)} (HTTP {resp.status})")
    elif resp.status >= 400:
        report.error = f"the models endpoint answered HTTP {resp.status}"
    elif resp.status >= 300:  # redirects are never followed: the key stays here
        host = urlsplit(resp.headers.get("location") or "").hostname
        report.error = (f"the models endpoint answered HTTP {resp.status}, a redirect"
                        f"{f' to {host}' if host else ''}; check the base URL")
    elif not _is_model_list(body):
        text = _redacted(body[:4096].decode("utf-8", "replace"), key)[:120]
        report.error = f"the models endpoint did not answer a JSON model list: {text!r}"
    return report


def _redacted(text: str, key: str | None) -> str:
    """``text`` without the key (a server may echo it back)."""
    return text.replace(key, "[redacted]") if key and key in text else text


def _is_model_list(body: bytes) -> bool:
    """``{"data": [...]}`` (OpenAI, Anthropic), ``{"models": [...]}`` (Gemini) or a list."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    if isinstance(data, dict):
        return isinstance(data.get("data"), list) or isinstance(data.get("models"), list)
    return isinstance(data, list)


async def _local(spec: ProviderSpec, report: HealthReport, settings: Settings) -> HealthReport:
    """Non-HTTP providers: the mock is always there; local needs its extra installed;
    claude-cli needs its program (found, and answering ``--version``)."""
    if spec.transport == "local" and importlib.util.find_spec("llama_cpp") is None:
        report.error = "the local provider needs: pip install 'modelwire[local]'"
        return report
    if spec.transport == "subprocess":
        from .transports.subprocess import probe_program
        report.latency, report.error = await probe_program(settings.provider_options(spec),
                                                           settings.env)
        report.reachable = report.error is None
        return report
    report.reachable = True
    report.latency = 0.0
    return report


async def _breaker_state(breaker: Breaker | None, provider: str) -> str | None:
    if breaker is None:
        return None
    worst = "closed"
    for key, name in breaker.seen().items():
        if name.split("/", 1)[0] == provider:
            state = await breaker.state(key)
            if _RANK[state] > _RANK[worst]:
                worst = state
    return worst
