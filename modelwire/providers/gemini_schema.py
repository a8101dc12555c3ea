"""JSON Schema -> the OpenAPI subset Gemini's function ``parameters`` accept.

Gemini rejects keys outside its subset (``additionalProperties``, ``$schema``,
...), so tool schemas are rewritten: unsupported keys dropped, ``$ref``
resolved, nullable types and ``const`` rewritten; a recursive schema is a
typed error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidMessageError, UnsupportedFeatureError

JSON = dict[str, Any]

_SCHEMA_KEYS = frozenset({
    "type", "format", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern",
    "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum"})
_FORMATS = {"STRING": ("enum", "date-time"), "INTEGER": ("int32", "int64"),
            "NUMBER": ("float", "double")}


def gemini_schema(schema: Mapping[str, Any], defs: Mapping[str, Any] | None = None,
                  seen: tuple[str, ...] = ()) -> JSON:
    """A JSON Schema rewritten into the OpenAPI subset Gemini's ``parameters`` accepts."""
    if not isinstance(schema, Mapping):
        raise InvalidMessageError(f"tool schema node is {type(schema).__name__}, expected dict")
    if defs is None:
        defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    s = dict(schema)
    if isinstance(ref := s.pop("$ref", None), str):  # inline local references
        name = ref.rsplit("/", 1)[-1]
        if not ref.startswith(("#/$defs/", "#/definitions/")) or name not in defs:
            raise InvalidMessageError(f"tool schema has a $ref gemini cannot resolve: {ref!r}")
        if name in seen:
            raise UnsupportedFeatureError(
                f"tool schema is recursive ({ref}); gemini's 'parameters' cannot express it. "
                "Set the target option tool_schema='json' to send parametersJsonSchema")
        return gemini_schema({**defs[name], **s}, defs, (*seen, name))
    for sub in s.pop("allOf", None) or ():  # pydantic v1 wraps a described $ref in allOf
        sub = gemini_schema(sub, defs, seen)
        s = {**sub, **s, "properties": {**(sub.get("properties") or {}),
                                        **(s.get("properties") or {})},
             "required": [*(sub.get("required") or ()), *(s.get("required") or ())]}
    if "const" in s:
        s["enum"] = [s.pop("const")]
    nullable = bool(s.get("nullable"))
    options = s.pop("anyOf", None) or s.pop("oneOf", None)
    if options is not None and not isinstance(options, list):
        raise InvalidMessageError(f"tool schema anyOf/oneOf is a {type(options).__name__}")
    if options:
        kept = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
        nullable |= len(kept) < len(options)
        if len(kept) == 1:  # Optional[X] -> X, nullable
            merged = gemini_schema({**kept[0], **s}, defs, seen)
            return {**merged, "nullable": True} if nullable else merged
        s["anyOf"] = kept
    if isinstance(kind := s.pop("type", None), list):  # ["string", "null"] -> nullable
        types = [t for t in kind if t != "null"]
        nullable |= len(types) < len(kind)
        kind = types[0] if len(types) == 1 else None
        if len(types) > 1:
            s["anyOf"] = [{"type": t} for t in types]
    enum = s.get("enum")
    if isinstance(enum, list) and not all(isinstance(v, str) for v in enum):
        del s["enum"]  # gemini enums are strings only: keep the values visible in prose
        allowed = "Allowed values: " + ", ".join(json.dumps(v) for v in enum)
        s["description"] = f"{s['description']} ({allowed})" if s.get("description") else allowed
    out: JSON = {"type": str(kind).upper()} if kind else {}
    for key, value in s.items():
        if key not in _SCHEMA_KEYS or value in ({}, []):
            continue  # additionalProperties, $schema, title, examples...: rejected by the API
        if key == "items" and not isinstance(value, Mapping):
            continue  # tuple-style items have no Gemini equivalent
        if key == "properties" and not isinstance(value, Mapping):
            raise InvalidMessageError(f"tool schema 'properties' is a {type(value).__name__}")
        if key == "properties":
            value = {k: gemini_schema(v, defs, seen) for k, v in value.items()}
        elif key == "items":
            value = gemini_schema(value, defs, seen)
        elif key == "anyOf":
            value = [gemini_schema(v, defs, seen) for v in value]
        out[key] = value
    if "required" in out:
        out["required"] = list(dict.fromkeys(out["required"]))
    if "format" in out and out["format"] not in _FORMATS.get(out.get("type", ""), ()):
        del out["format"]  # "uri", "email", ...: the API rejects them
    return {**out, "nullable": True} if nullable else out
