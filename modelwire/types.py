"""Input types: messages, content parts and tools.

Callers may pass OpenAI-style dicts or these typed objects; ``to_messages`` and
``to_tools`` turn either into the typed form once, at the edge, with a clear
:class:`~modelwire.errors.InvalidMessageError` for anything malformed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union, overload

from . import validate
from .errors import InvalidMessageError, InvalidParameterError
from .response import ToolCall

if TYPE_CHECKING:
    from .tools.schema import FunctionTool

Role = Literal["system", "user", "assistant", "tool"]
_ROLES = ("system", "user", "assistant", "tool")


@dataclass(slots=True, frozen=True)
class TextPart:
    text: str


@dataclass(slots=True, frozen=True)
class ImagePart:
    """An image by URL; ``data:`` URLs carry inline base64 bytes."""

    url: str
    detail: str | None = None

    @property
    def media_type(self) -> str | None:
        if self.url.startswith("data:"):
            return self.url[5:].split(";", 1)[0] or None
        return None

    @property
    def base64_data(self) -> str | None:
        if self.url.startswith("data:") and ";base64," in self.url:
            return self.url.split(";base64,", 1)[1]
        return None


Part = Union[TextPart, ImagePart]


@dataclass(slots=True)
class Message:
    role: Role
    content: str | list[Part] = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # role == "tool": which call this answers
    name: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def parts(self) -> list[Part]:
        if isinstance(self.content, str):
            return [TextPart(self.content)] if self.content else []
        return self.content


@dataclass(slots=True, frozen=True)
class Tool:
    """A function the model may call. ``parameters`` is a JSON Schema object.

    ``strict=True`` asks for OpenAI's strict mode (the schema is rewritten to
    its rules once). Each codec's translation of the tool is computed once per
    Tool object and provider and kept on it (``parameters`` must therefore not
    be mutated after the tool is first sent). ``Tool.from_function(fn)`` builds
    one from a typed Python function (see :mod:`modelwire.tools`).
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    strict: bool = False
    _wire: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def wire_form(self, key: str, build: Callable[[Tool], Any]) -> Any:
        """``build(self)`` computed once per ``key`` (a codec + its options) and cached."""
        cache = self._wire
        try:
            return cache[key]
        except KeyError:
            value = cache[key] = build(self)
            return value

    @staticmethod
    def from_function(fn: Callable[..., Any], *, name: str | None = None,
                      description: str | None = None, strict: bool = False,
                      requires_approval: bool = False,
                      timeout: float | None = None) -> FunctionTool:
        """A tool from a typed function: schema from its hints, text from its docstring."""
        from .tools.schema import function_tool
        return function_tool(fn, name=name, description=description, strict=strict,
                             requires_approval=requires_approval, timeout=timeout)


MessageLike = Union[Message, Mapping[str, Any]]
ToolLike = Union[Tool, Mapping[str, Any], Callable[..., Any]]


def to_messages(messages: Iterable[MessageLike] | str) -> list[Message]:
    """Validate and convert the caller's messages. A bare string is one user message."""
    if isinstance(messages, str):
        return [Message("user", messages)]
    if isinstance(messages, Mapping) or not isinstance(messages, Iterable):
        raise InvalidMessageError(
            f"messages is a {type(messages).__name__}; pass a list of messages "
            "(dicts like {'role': 'user', 'content': '...'}) or a string"
        )
    out: list[Message] = []
    for i, m in enumerate(messages):
        out.append(m if isinstance(m, Message) else _message_from_dict(m, i))
    if not out:
        raise InvalidMessageError("messages is empty: pass at least one message")
    return out


def _message_from_dict(m: Any, i: int) -> Message:
    if type(m) is not dict and not isinstance(m, Mapping):  # skip the ABC check for dicts
        raise InvalidMessageError(
            f"messages[{i}] is a {type(m).__name__}; expected a dict like "
            "{'role': 'user', 'content': '...'} or a modelwire.Message"
        )
    role = m.get("role")
    if role not in _ROLES:
        raise InvalidMessageError(
            f"messages[{i}] has role {role!r}; expected one of {', '.join(_ROLES)}"
        )
    content = m.get("content")
    if type(content) is not str:
        content = _content(content, i)
    raw_calls = m.get("tool_calls")
    calls = [_tool_call(c, i, j) for j, c in enumerate(raw_calls)] if raw_calls else []
    tool_call_id = m.get("tool_call_id")
    if role == "tool" and not tool_call_id:
        raise InvalidMessageError(
            f"messages[{i}] is a tool result without 'tool_call_id': set it to the id "
            "of the assistant tool call it answers"
        )
    if calls and role != "assistant":
        raise InvalidMessageError(f"messages[{i}]: only assistant messages carry tool_calls")
    return Message(role, content, calls, tool_call_id, m.get("name"))


def _content(c: Any, i: int) -> str | list[Part]:
    if c is None:
        return ""
    if isinstance(c, str):
        return c
    if not isinstance(c, list):
        raise InvalidMessageError(
            f"messages[{i}].content is a {type(c).__name__}; expected a string or a list of parts"
        )
    parts: list[Part] = []
    for j, p in enumerate(c):
        if isinstance(p, (TextPart, ImagePart)):
            parts.append(p)
        elif isinstance(p, str):
            parts.append(TextPart(p))
        elif isinstance(p, Mapping) and p.get("type") == "text":
            parts.append(TextPart(str(p.get("text", ""))))
        elif isinstance(p, Mapping) and p.get("type") == "image_url":
            img = p.get("image_url")
            url = img.get("url") if isinstance(img, Mapping) else img
            if not isinstance(url, str) or not url:
                raise InvalidMessageError(f"messages[{i}].content[{j}]: image_url needs a 'url'")
            detail = img.get("detail") if isinstance(img, Mapping) else None
            parts.append(ImagePart(url, detail))
        else:
            kind = p.get("type") if isinstance(p, Mapping) else type(p).__name__
            raise InvalidMessageError(
                f"messages[{i}].content[{j}] has unsupported type {kind!r}; "
                "use {'type': 'text', ...} or {'type': 'image_url', ...}"
            )
    return parts


def _tool_call(c: Any, i: int, j: int) -> ToolCall:
    if isinstance(c, ToolCall):
        return c
    fn = c.get("function") if isinstance(c, Mapping) else None
    if not isinstance(fn, Mapping) or not fn.get("name"):
        raise InvalidMessageError(
            f"messages[{i}].tool_calls[{j}] needs 'function': {{'name': ..., 'arguments': ...}}"
        )
    raw = fn.get("arguments", "{}")
    if isinstance(raw, Mapping):
        args, raw = dict(raw), json.dumps(raw)
    else:
        try:
            args = json.loads(raw or "{}")
        except (TypeError, ValueError) as e:
            raise InvalidMessageError(
                f"messages[{i}].tool_calls[{j}].function.arguments is not JSON: {e}"
            ) from None
        if not isinstance(args, dict):
            raise InvalidMessageError(
                f"messages[{i}].tool_calls[{j}].function.arguments must be a JSON object, "
                f"got {type(args).__name__}"
            )
    return ToolCall(str(c.get("id") or ""), str(fn["name"]), args, raw or "{}")


_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def to_tools(tools: Iterable[ToolLike] | None) -> list[Tool]:
    """Validate and convert the caller's tools; ``parameters`` must be a JSON Schema
    object (checked against the JSON Schema meta-schema: InvalidParameterError)."""
    if isinstance(tools, (str, Mapping)) or (tools is not None
                                             and not isinstance(tools, Iterable)):
        raise InvalidMessageError(
            f"tools is a {type(tools).__name__}; pass a list of tools")
    out: list[Tool] = []
    for i, t in enumerate(tools or ()):
        if isinstance(t, Tool):
            tool = t
        elif callable(t) and not isinstance(t, Mapping):  # a plain typed function
            from .tools.schema import tool_for
            tool = tool_for(t)  # built once per function
        else:
            fn = t.get("function", t) if isinstance(t, Mapping) else None
            if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
                raise InvalidMessageError(
                    f"tools[{i}] must be a modelwire.Tool or "
                    "{'type': 'function', 'function': {'name': ..., 'parameters': {...}}}"
                )
            params = fn.get("parameters")
            tool = Tool(fn["name"], fn.get("description") or "",
                        {"type": "object", "properties": {}} if params is None else params)
        if not isinstance(tool.name, str) or not tool.name:
            raise InvalidParameterError(f"tools[{i}] needs a non-empty string name")
        if not _TOOL_NAME.fullmatch(tool.name):
            raise InvalidParameterError(
                f"tools[{i}] has the name {tool.name[:80]!r}: OpenAI, Anthropic and Gemini "
                "accept 1 to 64 letters, digits, '_' and '-' only; rename it (from_function "
                "and @tool take name=)")
        if any(o.name == tool.name for o in out):
            raise InvalidParameterError(
                f"tools[{i}]: two tools are named {tool.name!r}; tool names must be unique "
                "(the model calls tools by name)")
        if not isinstance(tool.description, str):
            raise InvalidParameterError(f"tools[{i}] ({tool.name!r}): description must be a "
                                        f"string, got {type(tool.description).__name__}")
        validate.tool_schema(tool.name, tool.parameters)
        out.append(tool)
    return out


@overload
def tool(fn: Callable[..., Any], /) -> FunctionTool: ...


@overload
def tool(*, name: str | None = None, description: str | None = None, strict: bool = False,
         requires_approval: bool = False,
         timeout: float | None = None) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
         description: str | None = None, strict: bool = False, requires_approval: bool = False,
         timeout: float | None = None) -> Any:
    """Decorator: ``@modelwire.tool`` or ``@modelwire.tool(requires_approval=True)``.

    The decorated object is a :class:`~modelwire.tools.schema.FunctionTool`
    (a ``Tool``) that can still be called like the function. Defined here, not in
    :mod:`modelwire.tools`, so ``import modelwire`` does not load that package.
    """
    def wrap(f: Callable[..., Any]) -> FunctionTool:
        return Tool.from_function(f, name=name, description=description, strict=strict,
                                  requires_approval=requires_approval, timeout=timeout)

    return wrap if fn is None else wrap(fn)
