"""Structured output: ``response_format=`` -> provider-native request fields; parse/validate.

``response_format`` is a pydantic model, a dataclass, a TypedDict (any type
pydantic's TypeAdapter understands) or a JSON Schema dict. It becomes an
:class:`OutputSpec` once per call; each codec asks it for its own wire's fields:

* OpenAI chat: ``response_format: {"type": "json_schema", ..., "strict": true}``
  (the schema rewritten to strict mode's rules); llama.cpp servers (``llamacpp``)
  get ``{"type": "json_object", "schema": ...}`` (grammar-constrained), and the
  in-process ``local`` model the same through its transport;
* Responses: ``text.format`` ``json_schema`` strict;
* Anthropic: a forced tool whose input is the answer (works on every Claude
  model); the decoded tool call becomes the text, so the caller sees JSON text;
* Gemini: ``responseMimeType: application/json`` + ``responseSchema`` (Gemini's
  schema dialect), or ``responseJsonSchema`` with target option ``tool_schema="json"``.

A schema whose root is not an object (``list[Item]``, ``int``) is wrapped as
``{"value": ...}`` on the wire, because tools and strict modes need an object
root, and unwrapped when parsed. ``Response.parsed`` holds the validated value
(an instance of the model / dataclass, or plain JSON for a dict schema, which
is validated against the whole schema with jsonschema).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, MissingDependencyError, StructuredOutputError
from .tools.jsonschema import strict_schema, strip_titles

if TYPE_CHECKING:
    from .client import AsyncClient
    from .response import Response
    from .streaming import AsyncStream
    from .types import MessageLike

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?\s*```\s*$", re.S)
_FENCED = re.compile(r"```(?:json)?[ \t]*\n(.*?)\n?[ \t]*```", re.S)
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(slots=True, frozen=True)
class OutputSpec:
    name: str
    schema: dict[str, Any]  # what goes on the wire (object root)
    wrapped: bool = False  # the real answer is schema["properties"]["value"]
    adapter: Any = field(default=None, repr=False, compare=False)  # pydantic TypeAdapter
    _nullable_defaults: tuple[str, ...] = field(default=(), repr=False, compare=False)

    # --- per-wire request fields ------------------------------------------------

    def openai(self, provider: str) -> dict[str, Any]:
        if provider == "llamacpp":  # llama.cpp's server: grammar from the schema
            return {"type": "json_object", "schema": self.schema}
        schema, strict = self._strict()
        return {"type": "json_schema", "json_schema": {
            "name": self.name, "schema": schema, "strict": strict}}

    def responses(self) -> dict[str, Any]:
        schema, strict = self._strict()
        return {"format": {"type": "json_schema", "name": self.name, "schema": schema,
                           "strict": strict}}

    def _strict(self) -> tuple[dict[str, Any], bool]:
        """Strict mode's schema, or the schema as is when strict mode cannot express it
        (a dict field): then the answer is only validated here (and ``retries=`` repairs)."""
        from .errors import UnsupportedFeatureError
        try:
            return strict_schema(self.schema), True
        except UnsupportedFeatureError:
            return self.schema, False

    def anthropic_tool(self) -> dict[str, Any]:
        return {"name": self.name, "description": "Give the final answer with this tool.",
                "input_schema": self.schema}

    def gemini(self, as_json: bool) -> dict[str, Any]:
        if as_json:
            return {"responseMimeType": "application/json", "responseJsonSchema": self.schema}
        from .providers.gemini_schema import gemini_schema
        return {"responseMimeType": "application/json", "responseSchema": gemini_schema(
            self.schema)}

    # --- the answer -----------------------------------------------------------------

    def parse(self, text: str) -> Any:
        """The validated value of ``text``; raises StructuredOutputError."""
        m = _FENCE.match(text) or _FENCED.search(text)  # a fenced block, maybe after prose
        body = m.group(1) if m else text
        try:
            value = json.loads(body)
        except ValueError as e:
            raise StructuredOutputError(f"the answer is not valid JSON: {e}", raw_text=text,
                                        errors=[f"not valid JSON: {e}"]) from None
        return self.validate(value, text)

    def validate(self, value: Any, text: str) -> Any:
        if self.wrapped:
            if isinstance(value, dict) and "value" in value:
                value = value["value"]
            elif self.adapter is None:
                raise StructuredOutputError("the answer lacks its 'value' key", raw_text=text,
                                            errors=["expected an object with a 'value' key"])
            # else: a model that ignored the wrapper and sent the bare value: validate it
        if self.adapter is None:
            problems = _check_plain(value, self.schema)
            if problems:
                raise StructuredOutputError("the answer does not match the schema: "
                                            + "; ".join(problems), raw_text=text,
                                            errors=problems)
            return value
        if isinstance(value, dict):
            for name in self._nullable_defaults:  # strict mode's null means "not given"
                if value.get(name, 0) is None:
                    del value[name]
        from pydantic import ValidationError
        try:
            return self.adapter.validate_python(value)
        except ValidationError as e:
            problems = [f"{'.'.join(str(x) for x in err.get('loc', ())) or 'value'}: "
                        f"{err.get('msg', 'invalid')}" for err in e.errors(include_url=False)]
            raise StructuredOutputError("the answer does not match the schema: "
                                        + "; ".join(problems[:10]), raw_text=text,
                                        errors=problems) from None


def output_spec(response_format: Any) -> OutputSpec:
    """``response_format`` as an OutputSpec (typed ConfigurationError if unusable)."""
    if isinstance(response_format, OutputSpec):
        return response_format
    if isinstance(response_format, Mapping):
        return _from_schema(response_format)
    if not isinstance(response_format, type) and not hasattr(response_format, "__origin__"):
        raise ConfigurationError(
            f"response_format must be a pydantic model, a dataclass, a TypedDict or a JSON "
            f"Schema dict, got {response_format!r}")
    try:
        import pydantic
    except ImportError:
        raise MissingDependencyError("response_format with a type", "tools", "pydantic") from None
    try:
        adapter = pydantic.TypeAdapter(response_format)
        schema = strip_titles(adapter.json_schema())
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError,
            TypeError) as e:
        raise ConfigurationError(f"response_format {response_format!r} has no JSON Schema: "
                                 f"{e}") from None
    name = _NAME_BAD.sub("_", getattr(response_format, "__name__", "") or "response")[:64]
    wrapped = schema.get("type") != "object"
    if wrapped:
        defs = schema.pop("$defs", None)
        schema = {"type": "object", "properties": {"value": schema}, "required": ["value"],
                  **({"$defs": defs} if defs else {})}
    required = set(schema.get("required") or ())
    nullable = tuple(k for k, v in (schema.get("properties") or {}).items()
                     if k not in required and isinstance(v, Mapping)
                     and v.get("default", None) is not None)
    return OutputSpec(name, schema, wrapped, adapter, nullable)


def _from_schema(schema: Mapping[str, Any]) -> OutputSpec:
    s = dict(schema)
    if s.get("type") not in ("object", None) or not isinstance(s.get("properties", {}),
                                                               Mapping):
        raise ConfigurationError("a JSON Schema response_format needs an object root "
                                 "({'type': 'object', 'properties': {...}})")
    s.setdefault("type", "object")
    name = _NAME_BAD.sub("_", str(s.pop("title", "") or "response"))[:64]
    s.pop("$schema", None)
    return OutputSpec(name, s)


def _check_plain(value: Any, schema: Mapping[str, Any]) -> list[str]:
    """The answer against a JSON Schema dict (jsonschema, as tool schemas are checked)."""
    if not isinstance(value, dict):
        return [f"expected a JSON object, got {type(value).__name__}"]
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
    from jsonschema.validators import validator_for  # type: ignore[import-untyped]
    try:
        validator = validator_for(schema)(schema)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    except SchemaError as e:  # the caller's schema itself is broken
        raise ConfigurationError(f"response_format is not a valid JSON Schema: "
                                 f"{e.message[:200]}") from None
    out: list[str] = []
    for err in errors[:10]:
        where = [str(p) for p in err.absolute_path]
        if err.validator == "required" and isinstance(err.instance, dict):  # pydantic's words
            out += [f"{'.'.join([*where, k])}: Field required" for k in err.validator_value
                    if k not in err.instance]
        else:
            out.append(f"{'.'.join(where) or 'value'}: {err.message[:200]}")
    return out


def finish(response: Response, spec: OutputSpec) -> Response:
    """Set ``response.parsed`` (Anthropic: the forced tool's input becomes the text)."""
    calls = [c for c in response.tool_calls if c.name == spec.name]
    if calls:  # the forced tool (Anthropic) carried the answer (even after some prose)
        response.tool_calls = [c for c in response.tool_calls if c.name != spec.name]
        response.text = calls[0].raw_arguments
        if response.finish_reason == "tool_calls" and not response.tool_calls:
            response.finish_reason = "stop"
    elif response.tool_calls:  # the model asked for tools: not its answer yet (run_tools
        return response       # sends the results back; the final turn is parsed)
    try:
        response.parsed = spec.parse(response.text)
    except StructuredOutputError as e:
        e.response = response
        if response.finish_reason == "length":  # not the model's mistake: the limit's
            raise StructuredOutputError(
                f"the answer was cut off at max_tokens (finish_reason 'length') before its "
                f"JSON was complete; raise max_tokens ({e})", raw_text=e.raw_text,
                errors=e.errors, response=response) from None
        raise
    return response


def partial_value(text: str) -> Any:
    """The object parsed so far from a growing JSON text (jiter's partial mode)."""
    try:
        import jiter
    except ImportError:
        raise MissingDependencyError("partial structured output", "tools", "jiter") from None
    m = re.match(r"^\s*```(?:json)?\s*\n?", text)
    body = text[m.end():] if m else text
    if not body.strip():
        return None
    try:
        return jiter.from_json(body.encode(), partial_mode="trailing-strings")
    except ValueError:
        return None


def partial_of(response: Response, spec: OutputSpec) -> Any:
    """The structured value so far of a stream's partial response."""
    forced = next((c.raw_arguments for c in response.tool_calls if c.name == spec.name), None)
    text = response.text if forced is None else forced  # as finish() decides
    value = partial_value(text)
    if spec.wrapped and isinstance(value, dict):
        return value.get("value")
    return value


# --- the calls (AsyncClient.complete / StreamRequest delegate here) ------------------

_REPAIR = ("Your previous answer did not match the required JSON schema: {errors}. "
           "Answer again with only the corrected JSON.")


async def complete_structured(client: AsyncClient, model: str | None,
                              messages: Iterable[MessageLike] | str,
                              kwargs: dict[str, Any]) -> Response:
    """``complete(..., response_format=X, retries=N)``: validate, let the model repair."""
    from .response import Response as _Response
    from .types import Message, to_messages
    retries = kwargs.pop("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigurationError(f"retries must be an int >= 0, got {retries!r}")
    if kwargs.get("response_format") is None:
        raise ConfigurationError("retries= repairs structured output: pass response_format= "
                                 "too (transport retries are max_retries=)")
    spec = output_spec(kwargs["response_format"])
    kwargs["response_format"] = spec
    history = to_messages(messages)
    for attempt in range(retries + 1):
        outcome = await client._run(client.build_call(model, history, **kwargs))
        assert isinstance(outcome, _Response)
        try:
            return finish(outcome, spec)
        except StructuredOutputError as e:
            if attempt == retries:
                raise
            history = [*history, Message("assistant", e.raw_text),
                       Message("user", _REPAIR.format(errors="; ".join(e.errors[:10])))]
    raise AssertionError("unreachable")


def watch_stream(stream: AsyncStream, spec: OutputSpec) -> None:
    """Give a stream ``partial_object`` and validate its final response."""
    stream.output = spec

    async def check(response: Response) -> None:
        finish(response, spec)

    stream.on_finish.append(check)
