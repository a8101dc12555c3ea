"""Where the OpenAI-compatible providers differ: request fields and error bodies.

The family shares one wire; these are the real differences, kept as data and
small functions so the codec itself stays provider-blind:

* Azure addresses a *deployment* under a resource endpoint with a dated
  ``api-version`` query, or (the v1 API, GA since August 2025) a plain
  ``{endpoint}/openai/v1`` base with the model in the body.
* The output-token limit is ``max_completion_tokens`` on OpenAI proper (where
  ``max_tokens`` is deprecated and refused by reasoning models), Groq and xAI;
  everybody else documents ``max_tokens``. Mistral refuses the newer name.
* Mistral validates bodies strictly (unknown fields are a 422): it spells
  ``tool_choice: "required"`` as ``"any"``, the seed as ``random_seed``, and
  refuses ``stream_options`` (its streams carry usage anyway).
* Error bodies come in several shapes (see the section at the end); the
  classification (provider code, then status, then text) lives there too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ..errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    InvalidMessageError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    detail_message,
    error_for,
)
from ..pipeline import Target
from ..types import Tool
from .base import request_id

AZURE_DEFAULT_API_VERSION = "2024-10-21"
# api_version values that select Azure's v1 API instead of a dated one.
_AZURE_V1 = {"v1", "latest", "preview"}
# Dated Azure versions from here on accept max_completion_tokens (o-series era);
# 2024-10-21 GA documents only max_tokens.
_AZURE_MCT_SINCE = "2024-12-01"

_MAX_COMPLETION_TOKENS = frozenset({"openai", "groq", "xai"})
_STRICT_MISTRAL = frozenset({"mistral"})
# Call ids a provider refuses, from a conversation that started elsewhere, are
# mapped (the same way every time; unique in the request). Mistral takes only 9
# letters/digits ("Tool call id was call_... but must be a-z, A-Z, 0-9, with a
# length of 9"); OpenAI and Azure at most 40 characters ("string too long.
# Expected a string with maximum length 40"), which a Responses API fc_ id or a
# proxy's id exceeds.
_CALL_IDS: dict[str, tuple[re.Pattern[str], Any]] = {
    "mistral": (re.compile(r"[a-zA-Z0-9]{9}"), lambda digest: digest[:9]),
    "openai": (re.compile(r".{1,40}", re.S), lambda digest: "call_" + digest[:32]),
    "azure": (re.compile(r".{1,40}", re.S), lambda digest: "call_" + digest[:32]),
}
CALL_ID_RULES = frozenset(_CALL_IDS)


def map_call_ids(provider: str, messages: list[dict[str, Any]]) -> None:
    """Rewrite the call ids of encoded chat ``messages`` in place (calls and results)."""
    import hashlib
    valid, make = _CALL_IDS[provider]
    latest: dict[str, str] = {}
    used: set[str] = set()
    for m in messages:
        for c in m.get("tool_calls") or ():
            cid = c.get("id") or ""
            wire, n = cid, 0
            while not valid.fullmatch(wire) or wire in used:
                wire = make(hashlib.sha256(f"{cid}#{n}".encode()).hexdigest())
                n += 1
            used.add(wire)
            latest[cid] = c["id"] = wire
        cid = m.get("tool_call_id")
        if isinstance(cid, str) and cid in latest:
            m["tool_call_id"] = latest[cid]


def endpoint_url(target: Target, mode: str) -> str:
    """The full URL for a chat (``mode="chat"``) or legacy text completion."""
    path = "chat/completions" if mode == "chat" else "completions"
    if target.spec.name == "azure":
        return _azure_url(target, path)
    base = target.base_url
    return f"{base}{path}" if base.endswith("/") else f"{base}/{path}"


def azure_api_version(target: Target) -> str:
    v = target.options.get("api_version") or target.spec.options.get("api_version")
    return str(v) if v else AZURE_DEFAULT_API_VERSION


def _azure_is_v1(target: Target) -> bool:
    return (azure_api_version(target) in _AZURE_V1
            or target.base_url.rstrip("/").endswith("/openai/v1"))


def _azure_url(target: Target, path: str) -> str:
    base = target.base_url.rstrip("/")
    version = azure_api_version(target)
    query = "?api-version=preview" if version == "preview" else ""
    if base.endswith("/openai/v1"):  # already the v1 base URL: use as is
        return f"{base}/{path}{query}"
    if base.endswith("/openai"):  # tolerate an endpoint given with /openai
        base = base[: -len("/openai")]
    if _azure_is_v1(target):
        return f"{base}/openai/v1/{path}{query}"
    deployment = quote(target.model, safe="")
    return f"{base}/openai/deployments/{deployment}/{path}?api-version={quote(version, safe='')}"


def max_tokens_field(target: Target, mode: str) -> str:
    if mode != "chat":
        return "max_tokens"  # the legacy completions API only knows max_tokens
    name = target.spec.name
    if name == "azure":
        if _azure_is_v1(target) or azure_api_version(target)[:10] >= _AZURE_MCT_SINCE:
            return "max_completion_tokens"
        return "max_tokens"
    return "max_completion_tokens" if name in _MAX_COMPLETION_TOKENS else "max_tokens"


def accepts_stream_options(provider: str) -> bool:
    return provider not in _STRICT_MISTRAL


def seed_field(provider: str) -> str:
    return "random_seed" if provider in _STRICT_MISTRAL else "seed"


def tool_choice(provider: str, value: Any, tools: Sequence[Tool]) -> Any:
    """Normalize "auto" / "none" / "required" / a tool name / an OpenAI dict."""
    if isinstance(value, Tool):
        value = value.name
    if isinstance(value, str):
        if value in ("auto", "none"):
            return value
        if value in ("required", "any"):
            return "any" if provider in _STRICT_MISTRAL else "required"
        names = [t.name for t in tools]
        if value not in names:
            raise InvalidMessageError(
                f"tool_choice {value!r} is neither 'auto', 'none', 'required' nor the name "
                f"of a tool in this call (tools: {', '.join(names) or 'none'})"
            )
        return {"type": "function", "function": {"name": value}}
    if isinstance(value, Mapping):
        return dict(value)  # an OpenAI-shaped dict: the caller knows the wire
    raise InvalidMessageError(
        f"tool_choice must be 'auto', 'none', 'required', a tool name or a dict, "
        f"got {type(value).__name__}"
    )


# --- error bodies -------------------------------------------------------------
# The family's error shapes: OpenAI/Groq/DeepSeek ``{"error": {message, type,
# code, param}}`` (Groq adds ``failed_generation``; in-stream errors add
# ``status_code``), OpenRouter ``{"error": {"code": 429, "metadata": {raw}}}``,
# Azure ``{"error": {"code": "DeploymentNotFound"}}`` or ``{"statusCode",
# "message"}``, Mistral ``{"object": "error", "message": {...}}``, Ollama
# ``{"error": "text"}``, and HTML from proxies.

# Provider error codes/types (lower-cased) that decide the class on their own.
_BY_CODE: dict[str, type[ProviderError]] = {
    "context_length_exceeded": ContextWindowExceededError,
    "model_not_found": NotFoundError, "deploymentnotfound": NotFoundError,
    "notfound": NotFoundError, "not_found_error": NotFoundError,
    "invalid_api_key": AuthenticationError, "invalid_authentication": AuthenticationError,
    "authentication_error": AuthenticationError, "unauthorized": AuthenticationError,
    "401": AuthenticationError,
    "permission_denied": PermissionDeniedError, "permissiondenied": PermissionDeniedError,
    "unsupported_country_region_territory": PermissionDeniedError, "403": PermissionDeniedError,
    "insufficient_quota": RateLimitError, "rate_limit_exceeded": RateLimitError,
    "429": RateLimitError,
    "server_error": ServerError, "internal_error": ServerError,
    "overloaded": OverloadedError, "engine_overloaded": OverloadedError,
    "server_overloaded": OverloadedError, "overloaded_error": OverloadedError,
    "timeout": RequestTimeoutError,
    "tool_use_failed": BadRequestError, "content_filter": BadRequestError,
}
# Billing, not load: waiting does not help, so never retried.
_NOT_RETRYABLE = frozenset({"insufficient_quota"})
REQUEST_ID_HEADERS = ("x-request-id", "apim-request-id", "request-id")
_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.S | re.I)


def classify(provider: str, status: int, headers: Mapping[str, str],
             body: bytes) -> ProviderError:
    # Parse whatever the content type says: DeepSeek labels JSON errors
    # application/octet-stream; proxies answer with HTML.
    text = body.decode("utf-8", "replace")
    try:
        payload: Any = json.loads(text) if text.strip() else None
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        return error_object(provider, status, headers, payload)
    snippet = " ".join(_TAGS.sub(" ", text).split())[:300]
    return _typed(provider, status, headers, snippet or "empty error body", None, (),
                  payload if payload is not None else text)


def error_object(provider: str, status: int | None, headers: Mapping[str, str],
                 payload: dict[str, Any]) -> ProviderError:
    """A decoded error body, a 200 body with ``error``, or an in-stream error chunk."""
    err = payload.get("error")
    if isinstance(err, dict):
        message, code, kind = err.get("message"), err.get("code"), err.get("type")
        meta = err.get("metadata")
        if isinstance(meta, dict) and meta.get("raw"):  # OpenRouter's upstream detail
            message = f"{message} ({meta.get('provider_name') or 'upstream'}: {meta['raw']})"
        if status is None or status < 400:  # in-stream or HTTP 200: its own status
            wire = err.get("status_code") or code
            status = wire if type(wire) is int else status
    else:
        message = err if isinstance(err, str) else payload.get("message")
        code, kind = payload.get("code"), payload.get("type")
        if status is None and type(payload.get("statusCode")) is int:
            status = payload["statusCode"]
    if not isinstance(message, str):
        message = detail_message(payload) or (
            json.dumps(message)[:500] if message is not None else "unknown error")
    keys = tuple(str(k).lower() for k in (code, kind) if k is not None)
    code_str = str(code) if code is not None else (str(kind) if kind is not None else None)
    return _typed(provider, status, headers, message, code_str, keys, payload)


def _typed(provider: str, status: int | None, headers: Mapping[str, str], message: str,
           code: str | None, keys: tuple[str, ...], body: Any) -> ProviderError:
    """Provider code first, then status (error_for), then message text."""
    kind = next((_BY_CODE[k] for k in keys if k in _BY_CODE), None)
    if kind is None and (status is None or status < 400):
        kind = _kind_from_text(message)
    extra: dict[str, Any] = {}
    if _NOT_RETRYABLE.intersection(keys):
        extra["retryable"] = False
    elif status == 402:  # OpenRouter: out of credits; billing, not load
        kind, extra["retryable"] = RateLimitError, False
    elif (provider in ("llamacpp", "local") and status == 500
          and "validation error" in message.lower()):
        # llama-cpp-python's server answers request-schema errors with a 500;
        # retrying them would only repeat the same rejection.
        kind = BadRequestError
    return error_for(status, message, code=code, kind=kind, headers=headers or None,
                     provider=provider, body=body,
                     request_id=request_id(headers, *REQUEST_ID_HEADERS), **extra)


def _kind_from_text(message: str) -> type[ProviderError] | None:
    """Last resort for errors with neither an error status nor a known code."""
    text = message.lower()
    if "rate limit" in text or "rate-limit" in text:
        return RateLimitError
    if "overloaded" in text:
        return OverloadedError
    return None


def azure_url(target: Target, path: str) -> str:
    """Azure's URL for ``path`` (``chat/completions``, ``embeddings``, ...)."""
    return _azure_url(target, path)
