"""Call arguments checked before any traffic: types, ranges, JSON-ability.

Every failure is an :class:`~modelwire.errors.InvalidParameterError` that says
what was wrong and what is allowed. ``bool`` is not a number here (``True``
would otherwise go out as ``max_tokens: true``); NaN and infinities are not
numbers either (JSON cannot carry them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidParameterError

_STRICT = json.JSONEncoder(allow_nan=False)  # built once: json.dumps(allow_nan=...) is not
_STRICT_SORTED = json.JSONEncoder(allow_nan=False, sort_keys=True)
MAX_STOP_SEQUENCES = 32  # more than any provider accepts (OpenAI: 4, Anthropic: 8191 chars)
_INT64 = 2**63


def number(name: str, value: Any, low: float, high: float) -> None:
    """``value`` is None or a finite int/float in [low, high]."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise InvalidParameterError(
            f"{name} must be a number from {low:g} to {high:g}, got {value!r}")
    if not low <= value <= high:
        raise InvalidParameterError(f"{name} must be from {low:g} to {high:g}, got {value!r}")


def integer(name: str, value: Any, low: int, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterError(f"{name} must be {what}, got {value!r}")
    if not low <= value < _INT64:
        raise InvalidParameterError(
            f"{name} must be {what} from {low} to {_INT64 - 1} (a 64-bit integer), "
            f"got {value!r}")


def stop_sequences(stop: Any) -> list[str] | None:
    if stop is None:
        return None
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
        raise InvalidParameterError(
            f"stop must be a string or a list of strings, got {stop!r:.200}")
    if any(s == "" for s in stop):  # "" is found everywhere: the answer would be empty
        raise InvalidParameterError(
            "stop holds an empty string, which would end every answer before its first "
            "character; pass non-empty stop strings (or none)")
    if len(stop) > MAX_STOP_SEQUENCES:
        raise InvalidParameterError(
            f"stop has {len(stop)} sequences; at most {MAX_STOP_SEQUENCES} are allowed "
            "(most providers accept 4 to 16)")
    return list(stop) or None


def json_object(name: str, value: Any) -> None:
    """``value`` is a dict with string keys that JSON can encode exactly."""
    if not isinstance(value, Mapping):
        raise InvalidParameterError(f"{name} must be a dict, got {type(value).__name__}")
    try:
        _STRICT.encode(value)
    except (TypeError, ValueError, RecursionError) as e:
        raise InvalidParameterError(
            f"{name} must hold only JSON values (strings, finite numbers, booleans, None, "
            f"lists, dicts with string keys): {e}") from None
    if not all(isinstance(k, str) for k in value):
        raise InvalidParameterError(f"{name} keys must be strings")


# Fields the call's own arguments set on every wire (Chat Completions, Responses,
# Anthropic, Gemini, text completions): extra= would silently replace them.
_OWNED = {"model": "the model id (the first argument)",
          "messages": "messages=", "input": "messages=", "contents": "messages=",
          "prompt": "complete_text(prompt=...)"}


def extra_fields(extra: Mapping[str, Any], stream: bool) -> None:
    """``extra`` may add provider fields, never replace what the call itself sends."""
    for name, use in _OWNED.items():
        if name in extra:
            raise InvalidParameterError(
                f"extra={{{name!r}: ...}} would replace the request's own {name!r}; "
                f"pass it as {use} instead")
    if "stream" in extra and extra["stream"] is not stream:
        raise InvalidParameterError(
            "extra={'stream': ...} contradicts the call: use stream() or complete()")


def settings_map(name: str, value: Any, values: type | tuple[type, ...], example: str) -> None:
    """A client argument such as ``api_keys=``: None or a dict of provider name to
    ``values``. Never echoes the values (they may be keys)."""
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise InvalidParameterError(
            f"{name} must be a dict like {example}, got a {type(value).__name__}")
    for k, v in value.items():
        if not isinstance(k, str):
            raise InvalidParameterError(
                f"{name} must be a dict like {example}; one of its keys is a "
                f"{type(k).__name__}, not a provider name")
        if not (v is None or isinstance(v, values)):
            raise InvalidParameterError(
                f"{name} must be a dict like {example}; its entry for {k[:40]!r} is a "
                f"{type(v).__name__}")


def seconds(name: str, value: Any) -> float:
    """A positive, finite number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise InvalidParameterError(
            f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


_checked_schemas: dict[str, None] = {}  # canonical JSON of schemas already checked
# The same schema object passed again (the usual case: one Tool list reused for
# every call) skips even the canonical JSON: id -> the object, kept alive so the
# id cannot be reused. A schema mutated in place after its first call is not
# re-checked here; the request encoder still refuses anything JSON cannot carry.
_checked_objects: dict[int, Any] = {}


def tool_schema(name: str, schema: Any) -> None:
    """A tool's ``parameters``: a JSON Schema object (checked against its meta-schema)."""
    if _checked_objects.get(id(schema)) is schema:
        return
    if not isinstance(schema, Mapping):
        raise InvalidParameterError(
            f"tool {name!r}: parameters must be a JSON Schema object (a dict like "
            f"{{'type': 'object', 'properties': {{...}}}}), got {type(schema).__name__}")
    try:
        key = _STRICT_SORTED.encode(schema)
    except (TypeError, ValueError, RecursionError) as e:
        raise InvalidParameterError(
            f"tool {name!r}: parameters must be JSON ({e})") from None
    if key in _checked_schemas:
        _remember(schema)
        return
    kind = schema.get("type", "object")
    if kind != "object":
        raise InvalidParameterError(
            f"tool {name!r}: parameters must describe an object (type 'object'), "
            f"got type {kind!r}")
    # lazily: ~45 ms, only once tools are passed
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
    from jsonschema.validators import validator_for  # type: ignore[import-untyped]

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as e:
        where = "/".join(str(p) for p in e.path) or "(top level)"
        raise InvalidParameterError(
            f"tool {name!r}: parameters is not a valid JSON Schema at {where}: "
            f"{e.message[:300]}") from None
    if len(_checked_schemas) >= 1024:
        _checked_schemas.clear()
    _checked_schemas[key] = None
    _remember(schema)


def _remember(schema: Any) -> None:
    if len(_checked_objects) >= 1024:
        _checked_objects.clear()
    _checked_objects[id(schema)] = schema


def model_ids(name: str, value: Any) -> None:
    """A list of ``"<provider>/<model>"`` strings (a bare string is a common slip)."""
    if value is None:
        return
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(
            isinstance(m, str) for m in value):
        raise InvalidParameterError(
            f"{name} must be a list of model ids like ['openai/gpt-4o-mini'], got {value!r:.200}")


def unknown_keywords(unknown: Sequence[str], known: Sequence[str]) -> InvalidParameterError:
    return InvalidParameterError(
        f"unknown argument(s) {', '.join(unknown)}; the call's arguments are "
        f"{', '.join(sorted(known))} (provider-specific fields go in extra={{...}})")


def cache_option(value: Any, middleware: list[Any]) -> None:
    """``cache=`` per call: a bool, and True needs a client built with a cache."""
    if not isinstance(value, bool):
        raise InvalidParameterError(
            f"cache (per call) must be True or False, got {value!r}")
    if value:
        from .middleware import find
        from .middleware.cache import ResponseCache
        if find(middleware, ResponseCache) is None:
            from .errors import ConfigurationError
            raise ConfigurationError(
                "cache=True on a call needs a client with a response cache: build it with "
                "AsyncClient(cache=True) (in memory), cache=DiskCache() or "
                "cache=RedisCache(url); nothing would be cached otherwise")


def byte_limit(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
        raise InvalidParameterError(
            f"{name} must be an int of at least 1024 (bytes), got {value!r}")
    return value


def fixed(kwargs: Mapping[str, Any], method: str, *names: str) -> None:
    """Keywords the method itself decides: a typed error instead of a TypeError."""
    for name in names:
        if name in kwargs:
            raise InvalidParameterError(
                f"{method}() does not take {name}=...: use complete() / stream() for chat "
                "messages and complete_text() / stream_text() for a prompt")


# Every keyword build_call takes (for the unknown-keyword error).
KEYWORDS = ("model", "messages", "prompt", "tools", "tool_choice", "temperature",
             "max_tokens", "stop", "top_p", "seed", "timeout", "extra", "fallbacks",
             "response_format", "retries")
