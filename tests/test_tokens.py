"""Token counting: exact BPE equals tiktoken; chat overhead matches recorded usage; the cache."""

from __future__ import annotations

import gzip
import importlib.resources
import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from wirekit import WIRE

import modelwire
from modelwire.errors import InvalidMessageError, InvalidModelError
from modelwire.observe import tokens as tk

tiktoken = pytest.importorskip("tiktoken", reason="tiktoken (the reference) is not installed")
pytest.importorskip("bpe_openai", reason="bpe-openai is not installed")

CORPUS = [
    "",
    "hello world",
    "Hello, World! The quick brown fox jumps over the lazy dog. 1234567890",
    "日本語のテキストです。東京は日本の首都です。",
    "中文测试：你好，世界！这是一个较长的句子，用来测试分词。",  # noqa: RUF001
    "한국어 문장입니다. 안녕하세요!",
    "Здравствуй, мир! Это тест токенизатора.",
    "مرحبا بالعالم، هذا اختبار",
    "नमस्ते दुनिया, यह एक परीक्षण है",
    "emoji 😀🎉👩‍👩‍👧‍👦🇫🇷 and ZWJ sequences 🏳️‍🌈 ✨",
    "def f(x):\n    return {'a': [1, 2, 3], \"b\": x ** 2}  # comment\n\n\tprint(f(3))\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; } // C++",
    "   leading and trailing spaces   ",
    " " * 257 + "x" + "\n" * 40 + "\t" * 17 + "end",
    "A" * 5000,
    "I'm we've they'll SHE'D It's DON'T",
    "ÀÉÎÕÜ naïve café résumé Straße ﬁ ligature e\u0301 combining",
    "<|endoftext|> is plain text here",
    "mixed 123456789012 numbers 3.14159 1e-10 0xDEADBEEF",
    "\r\n\r\nwindows\r\nlines\r\n",
]


def _reference(name: str, tmp_path_factory: pytest.TempPathFactory) -> tiktoken.Encoding:
    """Real tiktoken, with OpenAI's own constructor, fed the vocabulary file bpe-openai
    ships (tiktoken checks the file against OpenAI's published SHA-256 first)."""
    from tiktoken import load as tload
    from tiktoken_ext import openai_public

    data = gzip.decompress(importlib.resources.files("bpe_openai.data")
                           .joinpath(f"{name}.tiktoken.gz").read_bytes())
    path = tmp_path_factory.mktemp("vocab") / f"{name}.tiktoken"
    path.write_bytes(data)

    def load_local(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        assert url.endswith(f"{name}.tiktoken")
        return tload.load_tiktoken_bpe(str(path), expected_hash=expected_hash)

    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = load_local
    try:
        spec = getattr(openai_public, name)()
    finally:
        openai_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**spec)


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_shipped_bpe_equals_tiktoken_on_a_multilingual_corpus(
        name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    ref = _reference(name, tmp_path_factory)
    ours = tk.openai_tokenizer(name)
    for text in CORPUS:
        expected = ref.encode_ordinary(text)
        assert ours.encode(text) == expected, text[:40]
        assert ours.count(text) == len(expected), text[:40]


@pytest.fixture(scope="module")
def o200k_reference(tmp_path_factory: pytest.TempPathFactory) -> tiktoken.Encoding:
    return _reference("o200k_base", tmp_path_factory)


@settings(max_examples=300, deadline=None)
@given(text=st.text(min_size=0, max_size=300))
def test_shipped_bpe_equals_tiktoken_on_arbitrary_unicode(
        o200k_reference: tiktoken.Encoding, text: str) -> None:
    assert tk.openai_tokenizer("o200k_base").encode(text) == o200k_reference.encode_ordinary(text)


def test_text_counts_are_exact_and_name_their_method() -> None:
    c = modelwire.count_tokens("openai/gpt-4o-mini", text="hello world", use_cache=False)
    assert (c.tokens, c.provenance) == (2, "exact")
    assert "o200k_base" in c.method
    legacy = modelwire.count_tokens("openai/gpt-4", text="日本語のテキスト", use_cache=False)
    assert legacy.provenance == "exact" and "cl100k_base" in legacy.method


def _recorded_chat_prompts() -> list[tuple[str, str, list[dict[str, str]], int]]:
    """Every recorded OpenAI chat request without tools: (file, model, messages, prompt_tokens)."""
    out = []
    for f in sorted(WIRE.glob("*/*.yaml")):
        for it in yaml.safe_load(f.read_text()).get("interactions", []):
            req, resp = it["request"], it["response"].get("parsed_body")
            body = req.get("parsed_body")
            if "chat/completions" not in req.get("uri", "") or not isinstance(body, dict):
                continue
            if body.get("tools") or body.get("response_format") or not isinstance(resp, dict):
                continue
            model = body["model"]
            if tk.openai_encoding_name(model) is None or "usage" not in resp:
                continue
            if not all(isinstance(m.get("content"), str) for m in body["messages"]):
                continue
            out.append((f.name, model, body["messages"], resp["usage"]["prompt_tokens"]))
    return out


def test_chat_overhead_matches_every_recorded_openai_usage() -> None:
    cases = _recorded_chat_prompts()
    assert len(cases) >= 5, cases  # gpt-4o, gpt-4o-mini, o3-mini, gpt-5-mini via openrouter
    for name, model, messages, reported in cases:
        c = modelwire.count_tokens(f"openai/{model}", messages, use_cache=False)
        assert c.provenance == "exact"
        assert c.tokens == reported, (name, model, c.tokens, reported)


def test_tool_overhead_is_an_estimate_close_to_recorded_usage() -> None:
    f = WIRE / "openai" / "test_openai_tool_output.yaml"
    it = yaml.safe_load(f.read_text())["interactions"][0]
    body = it["request"]["parsed_body"]
    reported = it["response"]["parsed_body"]["usage"]["prompt_tokens"]
    tools = [t["function"] for t in body["tools"]]
    c = modelwire.count_tokens("openai/gpt-4o", body["messages"], tools=tools, use_cache=False)
    assert c.provenance == "estimate" and "tool" in c.method
    assert abs(c.tokens - reported) <= 0.1 * reported, (c.tokens, reported)


def test_models_without_a_local_tokenizer_are_flagged_estimates() -> None:
    c = modelwire.count_tokens("anthropic/claude-sonnet-4-5", text="x" * 400, use_cache=False)
    assert c.provenance == "estimate" and c.tokens == 100
    assert "client.count_tokens" in c.method


def test_lru_cache_hits_and_bounds() -> None:
    tk.cache.clear()
    msgs = [{"role": "user", "content": "cache me"}]
    first = modelwire.count_tokens("openai/gpt-4o", msgs)
    second = modelwire.count_tokens("openai/gpt-4o-mini", msgs)  # same family: a hit
    assert not first.cached and second.cached and first.tokens == second.tokens
    assert modelwire.count_tokens("openai/o3-mini", msgs).cached is False  # other format
    assert modelwire.count_tokens("openai/gpt-4", msgs).cached is False  # other vocabulary
    small = tk.TokenCache(maxsize=3)
    for i in range(10):
        small.put(("f", str(i)), (i, "exact", "m"))
    assert len(small) == 3 and small.get(("f", "0")) is None and small.get(("f", "9"))


def test_bad_input_is_a_typed_error() -> None:
    with pytest.raises(InvalidModelError):
        modelwire.count_tokens("gpt-4o", text="x")
    with pytest.raises(InvalidMessageError):
        modelwire.count_tokens("openai/gpt-4o")
    with pytest.raises(InvalidMessageError):
        modelwire.count_tokens("openai/gpt-4o", text=b"bytes")  # type: ignore[arg-type]


def test_token_count_serializes() -> None:
    c = modelwire.count_tokens("openai/gpt-4o", text="hi", use_cache=False)
    assert json.loads(json.dumps(c.to_dict()))["provenance"] == "exact"


def test_import_modelwire_stays_lean() -> None:
    import subprocess
    import sys
    code = ("import sys, modelwire; heavy = [m for m in ('bpe_openai', 'tiktoken', "
            "'genai_prices', 'opentelemetry', 'prometheus_client', 'modelwire.observe.tokens') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_images_and_tool_calls_make_an_estimate() -> None:
    img = [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]
    c = modelwire.count_tokens("openai/gpt-4o", img, use_cache=False)
    plain = modelwire.count_tokens("openai/gpt-4o", [{"role": "user", "content": "what is this?"}],
                                   use_cache=False)
    assert c.provenance == "estimate" and "per image" in c.method
    assert c.tokens == plain.tokens + tk.IMAGE_TOKENS
    calls = [{"role": "user", "content": "weather?"},
             {"role": "assistant", "content": "", "tool_calls": [
                 {"id": "c1", "type": "function",
                  "function": {"name": "w", "arguments": "{\"city\": \"Paris\"}"}}]},
             {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]
    assert modelwire.count_tokens("openai/gpt-4o", calls).provenance == "estimate"
