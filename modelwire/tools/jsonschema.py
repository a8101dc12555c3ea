"""Pure JSON Schema rewrites shared by codecs (no third-party imports)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JSON = dict[str, Any]

_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not")


def walk(schema: Any, fn: Any) -> Any:
    """Apply ``fn(node) -> node`` to every schema node, bottom-up; returns a new tree.

    Only schema positions are visited, so a *property* named ``title`` or
    ``default`` is never mistaken for the keyword.
    """
    if not isinstance(schema, Mapping):
        return schema
    node: JSON = dict(schema)
    for key in _SUBSCHEMA_LISTS:
        if isinstance(node.get(key), list):
            node[key] = [walk(s, fn) for s in node[key]]
    for key in _SUBSCHEMA_MAPS:
        if isinstance(node.get(key), Mapping):
            node[key] = {k: walk(s, fn) for k, s in node[key].items()}
    for key in _SUBSCHEMA_ONE:
        if isinstance(node.get(key), Mapping):
            node[key] = walk(node[key], fn)
    return fn(node)


def strip_titles(schema: Mapping[str, Any]) -> JSON:
    """Drop pydantic's generated ``title`` keywords (noise in every prompt)."""
    def drop(node: JSON) -> JSON:
        if isinstance(node.get("title"), str):
            del node["title"]
        return node
    out: JSON = walk(schema, drop)
    return out


def strict_schema(schema: Mapping[str, Any]) -> JSON:
    """OpenAI strict mode's rules: every object closed and every property required.

    A property that was optional becomes nullable instead (``anyOf [X, null]``),
    and ``default`` (not allowed in strict mode) is dropped. Idempotent.
    """
    def fix(node: JSON) -> JSON:
        node.pop("default", None)
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if extra is True or (isinstance(extra, Mapping) and extra) or (
                node.get("type") == "object" and props is None and extra is None):
            # closing it would leave the model only {} to send, silently
            from ..errors import UnsupportedFeatureError
            raise UnsupportedFeatureError(
                "strict mode cannot express an object with free keys (a dict parameter or "
                "field): use a model/dataclass with named fields or a list of key/value "
                "pairs, or leave strict off")
        if node.get("type") == "object" or isinstance(props, Mapping):
            props = dict(props or {})
            required = set(node.get("required") or ())
            for name, sub in props.items():
                if name not in required and not _nullable(sub):
                    props[name] = {"anyOf": [sub, {"type": "null"}]}
            node["properties"] = props
            node["required"] = list(props)
            node["additionalProperties"] = False
        return node
    out: JSON = walk(schema, fix)
    defs = {**(out.get("definitions") or {}), **(out.get("$defs") or {})}

    def inline(node: JSON) -> JSON:
        # strict mode refuses keywords beside $ref ("$ref cannot have keywords
        # {'description'}"), which pydantic writes for a described nested model:
        # the definition is inlined there, its own keywords under the caller's
        ref = node.get("$ref")
        if isinstance(ref, str) and len(node) > 1:
            name = ref.rsplit("/", 1)[-1]
            if ref.startswith(("#/$defs/", "#/definitions/")) and isinstance(
                    defs.get(name), Mapping):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**defs[name], **rest}
        return node
    inlined: JSON = walk(out, inline)
    return inlined


def _nullable(schema: Any) -> bool:
    if not isinstance(schema, Mapping):
        return False
    t = schema.get("type")
    if t == "null" or (isinstance(t, list) and "null" in t):
        return True
    return any(isinstance(s, Mapping) and s.get("type") == "null"
               for s in schema.get("anyOf") or ())
