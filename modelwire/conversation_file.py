"""A conversation's file form: messages as JSON dicts and back, read with typed errors.

``message_to_dict`` / ``message_from_dict`` keep everything a message carries
(images, tool calls with unparsed arguments and provider-private data); a
tampered or corrupt file is a ConfigurationError naming what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .response import ToolCall
from .types import ImagePart, Message, TextPart


def message_to_dict(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role}
    if isinstance(m.content, str):
        out["content"] = m.content
    else:
        out["content"] = [{"type": "text", "text": p.text} if isinstance(p, TextPart)
                          else {"type": "image_url", "image_url": {"url": p.url,
                                                                   "detail": p.detail}}
                          for p in m.content]
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments,
                              "raw_arguments": c.raw_arguments,
                              "arguments_error": c.arguments_error,
                              "provider_data": c.provider_data} for c in m.tool_calls]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        out["name"] = m.name
    return out


def message_from_dict(d: Mapping[str, Any], i: int = 0) -> Message:
    """A message written by :func:`message_to_dict` (ConfigurationError if it is not one)."""
    if not isinstance(d, Mapping):
        raise _corrupt(f"messages[{i}] is a {type(d).__name__}, not an object")
    role = d.get("role")
    if role not in ("system", "user", "assistant", "tool"):
        raise _corrupt(f"messages[{i}] has role {role!r}")
    content = d.get("content", "")
    if isinstance(content, list):
        content = [_part(p, i) for p in content]
    elif not isinstance(content, str):
        raise _corrupt(f"messages[{i}].content is a {type(content).__name__}")
    raw_calls = d.get("tool_calls") or []
    if not isinstance(raw_calls, list) or (raw_calls and role != "assistant"):
        raise _corrupt(f"messages[{i}].tool_calls must be a list on an assistant message")
    calls = [_call(c, i) for c in raw_calls]
    call_id, name = d.get("tool_call_id"), d.get("name")
    if role == "tool" and not isinstance(call_id, str):
        raise _corrupt(f"messages[{i}] is a tool result without a tool_call_id")
    if not isinstance(call_id, (str, type(None))) or not isinstance(name, (str, type(None))):
        raise _corrupt(f"messages[{i}]: tool_call_id and name must be strings")
    return Message(role, content, calls, call_id, name)


def _part(p: Any, i: int) -> TextPart | ImagePart:
    if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str):
        return TextPart(p["text"])
    image = p.get("image_url") if isinstance(p, Mapping) else None
    if isinstance(p, Mapping) and p.get("type") == "image_url" and isinstance(image, Mapping) \
            and isinstance(image.get("url"), str) \
            and isinstance(image.get("detail"), (str, type(None))):
        return ImagePart(image["url"], image.get("detail"))
    raise _corrupt(f"messages[{i}].content has a part that is neither text nor an image: "
                   f"{str(p)[:80]}")


def _call(c: Any, i: int) -> ToolCall:
    if not isinstance(c, Mapping) or not isinstance(c.get("id"), str) \
            or not isinstance(c.get("name"), str) or not c["name"]:
        raise _corrupt(f"messages[{i}] has a tool call without a string id and name")
    args, raw = c.get("arguments"), c.get("raw_arguments", "{}")
    error, data = c.get("arguments_error"), c.get("provider_data")
    if not isinstance(args, (dict, type(None))) or not isinstance(raw, str) \
            or not isinstance(error, (str, type(None))) \
            or not isinstance(data, (dict, type(None))):
        raise _corrupt(f"messages[{i}] tool call {c['id']!r} has fields of the wrong type")
    if args is None and error is None:
        error = "arguments missing from the saved conversation"
    return ToolCall(c["id"], c["name"], args, raw, error, data)


def _corrupt(what: str) -> ConfigurationError:
    return ConfigurationError(f"the saved conversation is corrupt: {what}")


def _read(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigurationError(f"cannot read conversation {str(path)!r}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{str(path)!r} is not a saved modelwire conversation")
    return data


def _jsonable(settings: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in settings.items():
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue  # a response_format class, a callable...: not saved
        out[k] = v
    return out
