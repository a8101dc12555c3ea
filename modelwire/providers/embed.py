"""The embedding verbs of the codecs: ``encode_embed(call)`` / ``decode_embed(body, ...)``.

Pure like the rest of a codec. The OpenAI family (OpenAI, Azure, Mistral and
every OpenAI-compatible server) posts ``{"model", "input": [...]}`` to
``/embeddings``; OpenAI and Azure are asked for base64 vectors (little-endian
float32, a quarter smaller than JSON numbers and decoded without a JSON float
parse), everyone else for floats, and both forms are read. Gemini posts
``batchEmbedContents`` (one request per input) and reports no token usage.

Batch limits (inputs per request) are what each provider documents:
OpenAI / Azure 2048, Gemini 100; other OpenAI-compatible servers 256 unless
the row's ``options={"embed_batch": N}`` says otherwise.
"""

from __future__ import annotations

import base64
import math
import sys
from array import array
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..errors import MalformedResponseError
from ..pipeline import Call
from ..response import Embeddings, Usage
from ..transports.base import WireRequest
from . import openai_quirks as quirks
from .base import dumps, load_json, request_id

_BASE64 = frozenset({"openai", "azure", "openai-responses"})
_BATCH = {"openai": 2048, "openai-responses": 2048, "azure": 2048, "mistral": 128}
GEMINI_BATCH = 100


def batch_size(call: Call) -> int:
    spec = call.target.spec
    configured = spec.options.get("embed_batch") or call.target.options.get("embed_batch")
    if isinstance(configured, int) and configured > 0:
        return configured
    if spec.codec.endswith("GeminiCodec"):
        return GEMINI_BATCH
    return _BATCH.get(spec.name, 256)


# --- the OpenAI family ----------------------------------------------------------------


def openai_encode(call: Call, headers: dict[str, str]) -> WireRequest:
    target = call.target
    body: dict[str, Any] = {"model": target.model, "input": list(call.inputs or ())}
    if target.spec.name in _BASE64:
        body["encoding_format"] = "base64"
    if call.extra:  # dimensions, user, input_type, ...
        body.update(call.extra)
    if target.spec.name == "azure":
        url = quirks.azure_url(target, "embeddings")
    else:
        base = target.base_url
        url = f"{base}embeddings" if base.endswith("/") else f"{base}/embeddings"
    return WireRequest("POST", url, headers, dumps(body))


def openai_decode(body: bytes, headers: Mapping[str, str], call: Call) -> Embeddings:
    provider = call.target.provider
    data = load_json(body)
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise MalformedResponseError(
            f"embeddings response has no 'data' list: {body[:200]!r}", provider=provider)
    vectors: list[list[float] | None] = [None] * len(items)
    for pos, item in enumerate(items):
        if not isinstance(item, dict):
            raise MalformedResponseError(f"data[{pos}] is not an object", provider=provider)
        index = item.get("index", pos)
        if isinstance(index, bool) or not isinstance(index, int) \
                or not 0 <= index < len(items) or vectors[index] is not None:
            raise MalformedResponseError(f"data[{pos}] has a bad index {index!r}",
                                         provider=provider)
        vectors[index] = _vector(item.get("embedding"), provider, pos)
    u = data.get("usage") if isinstance(data.get("usage"), dict) else None
    usage = Usage()
    if u is not None:
        inp, total = _count(u.get("prompt_tokens")), _count(u.get("total_tokens"))
        if inp is not None:
            usage = Usage(inp, 0, inp if total is None else total, source="reported")
    return Embeddings(vectors=[v or [] for v in vectors], usage=usage, provider=provider,
                      model=str(data.get("model") or call.target.model),
                      request_id=request_id(headers, *quirks.REQUEST_ID_HEADERS), raw=None)


def _vector(value: Any, provider: str, pos: int) -> list[float]:
    if isinstance(value, str):  # base64 little-endian float32
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            raise MalformedResponseError(f"data[{pos}].embedding is not base64",
                                         provider=provider) from None
        if len(raw) % 4:
            raise MalformedResponseError(f"data[{pos}].embedding is not float32 data",
                                         provider=provider)
        floats = array("f")
        floats.frombytes(raw)
        if sys.byteorder != "little":
            floats.byteswap()
        return checked(floats.tolist(), provider, f"data[{pos}].embedding")
    if isinstance(value, list) and all(type(x) is float or (type(x) is int) for x in value):
        return checked([float(x) for x in value], provider, f"data[{pos}].embedding")
    raise MalformedResponseError(f"data[{pos}].embedding is neither a list of numbers nor "
                                 "base64", provider=provider)


def checked(vector: list[float], provider: str, where: str) -> list[float]:
    """A vector with at least one number, all finite (a NaN would poison every
    similarity computed with it, silently)."""
    if not vector:
        raise MalformedResponseError(f"{where} is empty", provider=provider)
    if not math.isfinite(sum(vector)):  # one C pass; NaN/inf anywhere makes the sum so
        raise MalformedResponseError(f"{where} holds NaN or infinite values",
                                     provider=provider)
    return vector


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


# --- Gemini -----------------------------------------------------------------------------


def gemini_encode(call: Call, headers: dict[str, str]) -> WireRequest:
    target = call.target
    name = target.model.removeprefix("models/")
    extra = dict(call.extra or {})  # taskType, outputDimensionality, title
    requests = [{"model": f"models/{name}", "content": {"parts": [{"text": text}]}, **extra}
                for text in call.inputs or ()]
    base = target.base_url.rstrip("/")
    if not base.endswith(("/v1beta", "/v1", "/v1alpha")):
        base += "/v1beta"
    url = f"{base}/models/{quote(name, safe='-._~')}:batchEmbedContents"
    return WireRequest("POST", url, headers, dumps({"requests": requests}))


def gemini_decode(body: bytes, headers: Mapping[str, str], call: Call) -> Embeddings:
    provider = call.target.provider
    data = load_json(body)
    items = data.get("embeddings") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != len(call.inputs or ()):
        raise MalformedResponseError(
            f"gemini embeddings response does not hold one embedding per input: "
            f"{body[:200]!r}", provider=provider)
    vectors = []
    for pos, item in enumerate(items):
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list) or not all(type(x) is float or type(x) is int
                                                   for x in values):
            raise MalformedResponseError(f"embeddings[{pos}] has no list of values",
                                         provider=provider)
        vectors.append(checked([float(x) for x in values], provider, f"embeddings[{pos}]"))
    return Embeddings(vectors=vectors, provider=provider, model=call.target.model)
