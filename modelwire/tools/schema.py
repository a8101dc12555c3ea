"""Tool.from_function: JSON Schema from type hints, text from the docstring.

pydantic builds the arguments model (Literal, Optional, defaults, lists,
nested dataclasses / TypedDicts / pydantic models all work) and validates the
model's arguments against it before the function runs, so the function gets
real instances (a nested dataclass arrives as that dataclass). docstring-parser
reads Google, reST and NumPy docstrings for the description and for each
parameter's description. Both are imported here only, on first use.
"""

from __future__ import annotations

import functools
import inspect
import typing
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError, MissingDependencyError
from ..types import _TOOL_NAME, Tool
from .jsonschema import strict_schema, strip_titles


class ArgumentsError(Exception):
    """The model's arguments failed validation; ``str()`` is a short, safe summary."""


@dataclass(slots=True, frozen=True)
class FunctionTool(Tool):
    """A :class:`Tool` that can run: the function, its arguments model, its options.

    ``requires_approval``: the tool loop stops and hands the call back instead
    of running it. ``timeout``: seconds for one run (overrides the loop's).
    Calling the object calls the function.
    """

    fn: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    requires_approval: bool = False
    timeout: float | None = None
    is_async: bool = False
    _model: Any = field(default=None, repr=False, compare=False)
    _positional: tuple[str, ...] = field(default=(), repr=False, compare=False)
    _nullable_defaults: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        assert self.fn is not None
        return self.fn(*args, **kwargs)

    def validate(self, arguments: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """(positional, keyword) arguments for the function, validated and converted.

        Raises :class:`ArgumentsError` with a short message the model can act on.
        """
        from pydantic import ValidationError

        args = dict(arguments)
        for name in self._nullable_defaults:  # strict mode sends null for "not given"
            if name in args and args[name] is None:
                del args[name]
        try:
            value = self._model.model_validate(args)
        except ValidationError as e:
            raise ArgumentsError(_summary(e)) from e
        given = [(f.alias or n, getattr(value, n)) for n, f in type(value).model_fields.items()]
        pos = [v for n, v in given if n in self._positional]
        kw = {n: v for n, v in given if n not in self._positional}
        return pos, kw


_BY_FUNCTION: weakref.WeakKeyDictionary[Callable[..., Any], FunctionTool] = \
    weakref.WeakKeyDictionary()


def tool_for(fn: Callable[..., Any]) -> FunctionTool:
    """The FunctionTool of a plain function, built once per function."""
    if isinstance(fn, FunctionTool):
        return fn
    try:
        return _BY_FUNCTION[fn]
    except (KeyError, TypeError):
        pass
    built = function_tool(fn)
    try:
        _BY_FUNCTION[fn] = built
    except TypeError:  # not weak-referenceable (a builtin): just don't cache
        pass
    return built


def function_tool(fn: Callable[..., Any], *, name: str | None = None,
                  description: str | None = None, strict: bool = False,
                  requires_approval: bool = False, timeout: float | None = None) -> FunctionTool:
    if isinstance(fn, FunctionTool) and fn.fn is not None:  # decorated twice: rebuild
        fn = fn.fn
    if not callable(fn):
        raise ConfigurationError(f"Tool.from_function needs a function, got {fn!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(
            timeout, (int, float)) or not 0 < timeout < float("inf")):
        raise ConfigurationError(f"tool timeout must be seconds > 0, got {timeout!r}")
    try:
        import pydantic
    except ImportError:
        raise MissingDependencyError("Tool.from_function", "tools", "pydantic") from None
    inner: Any = fn
    while isinstance(inner, functools.partial):  # the partial's function names and documents it
        inner = inner.func
    plain = inspect.isfunction(inner) or inspect.ismethod(inner) or inspect.isbuiltin(inner)
    target: Any = inner if plain or isinstance(inner, type) else type(inner).__call__
    tool_name = name or getattr(inner, "__name__", None) or type(inner).__name__
    if tool_name == "<lambda>":
        raise ConfigurationError("a lambda has no name the model can call: pass "
                                 "Tool.from_function(fn, name=...) or use a def")
    if not isinstance(tool_name, str) or not _TOOL_NAME.fullmatch(tool_name):
        raise ConfigurationError(  # said here, where the tool is defined, not at a call
            f"tool name {str(tool_name)[:80]!r}: OpenAI, Anthropic and Gemini accept 1 to "
            "64 letters, digits, '_' and '-' only; pass name=...")
    summary, param_docs = _docstring(inner)
    try:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(target, include_extras=True)
    except (TypeError, ValueError, NameError, SyntaxError, AttributeError) as e:
        raise ConfigurationError(
            f"cannot read the signature of tool {tool_name!r}: {e}") from None
    first = next(iter(sig.parameters), None)
    if first in ("self", "cls") and inspect.isfunction(inner) and "." in getattr(
            inner, "__qualname__", ""):  # @tool on a method inside its class body
        raise ConfigurationError(
            f"tool {tool_name!r} takes {first}: the model cannot supply it. Make the tool "
            f"from the bound method instead (tools=[obj.{tool_name}] or "
            f"Tool.from_function(obj.{tool_name})), not with @tool inside the class")
    fields: dict[str, Any] = {}
    positional: list[str] = []
    nullable_defaults: list[str] = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ConfigurationError(
                f"tool {tool_name!r} has *{p.name}: a tool's parameters must be named so the "
                "model can be told about them")
        if p.kind is p.POSITIONAL_ONLY:
            positional.append(p.name)
        annotation = hints.get(p.name, Any)
        default = ... if p.default is p.empty else p.default
        if default is not ... and default is not None:
            nullable_defaults.append(p.name)
        # fields are named p0, p1... with the parameter's name as alias: a parameter may
        # be called anything (json, schema, model_config, _private) without clashing
        # with pydantic's own names
        fields[f"p{len(fields)}"] = (annotation, pydantic.Field(
            default, alias=p.name, description=param_docs.get(p.name)))
    try:
        model = pydantic.create_model(  # type: ignore[call-overload]
            f"{tool_name}_arguments", __config__=pydantic.ConfigDict(extra="forbid"), **fields)
        schema = strip_titles(model.model_json_schema())
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError,
            TypeError, ValueError) as e:
        raise ConfigurationError(
            f"tool {tool_name!r}: a parameter's type has no JSON Schema ({e}); use JSON-like "
            "types (str, int, float, bool, list, dict, Literal, dataclasses, TypedDicts, "
            "pydantic models)") from None
    schema.pop("additionalProperties", None)  # extra="forbid" adds it; strict mode sets it
    schema.setdefault("properties", {})
    if strict:
        schema = strict_schema(schema)
    return FunctionTool(
        tool_name, summary if description is None else description, schema, strict,
        fn=fn, requires_approval=requires_approval, timeout=timeout,
        is_async=inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(fn),
        _model=model, _positional=tuple(positional),
        _nullable_defaults=tuple(nullable_defaults) if strict else (),
    )


def _docstring(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    doc = inspect.getdoc(fn)
    if not doc:
        return "", {}
    try:
        import docstring_parser
    except ImportError:
        raise MissingDependencyError("Tool.from_function (docstrings)", "tools",
                                     "docstring-parser") from None
    try:
        parsed = docstring_parser.parse(doc)
    except Exception:  # the parser trips on odd text ("::    ::"): the docstring as is
        return doc, {}
    text = "\n\n".join(p for p in (parsed.short_description, parsed.long_description) if p)
    return text, {p.arg_name: p.description for p in parsed.params if p.description}


def _summary(e: Any) -> str:
    """pydantic's errors as one short line per problem, without URLs or input dumps."""
    lines = []
    for err in e.errors(include_url=False)[:10]:
        where = ".".join(str(x) for x in err.get("loc", ())) or "arguments"
        lines.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(lines)
