"""Token counting speed: modelwire (bpe-openai's shipped vocabulary) vs tiktoken, and the cache.

    python benchmarks/tokens.py            # prints a markdown table
    python benchmarks/tokens.py --json

tiktoken is fed the same vocabulary file (it cannot download one here); both
count the same texts, and the ids are checked equal before timing. Rows:

* raw tokenizer: tokens/s for short chat-sized texts and one long document;
* ``count_tokens`` end to end (message formatting + hashing), cache off vs a hit.

Nothing asserts a time; the table is the result.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.resources
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHORT = [
    "Hello, how are you today?",
    "日本語のテキストです。東京は日本の首都です。",
    "emoji 😀🎉👩‍👩‍👧‍👦 and code: def f(x): return x ** 2",
    "Summarize the following paragraph in two sentences, keeping the names.",
] * 25
LONG = ("The quick brown fox jumps over the lazy dog. " * 40 + "数据 " * 200
        + "def main():\n    print('hi')\n" * 50) * 10


def tiktoken_encoding(name: str) -> Any:
    import tiktoken
    from tiktoken import load as tload
    from tiktoken_ext import openai_public
    data = gzip.decompress(importlib.resources.files("bpe_openai.data")
                           .joinpath(f"{name}.tiktoken.gz").read_bytes())
    path = Path(tempfile.mkdtemp()) / f"{name}.tiktoken"
    path.write_bytes(data)
    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = (
        lambda url, expected_hash=None: tload.load_tiktoken_bpe(str(path), expected_hash))
    try:
        return tiktoken.Encoding(**getattr(openai_public, name)())
    finally:
        openai_public.load_tiktoken_bpe = original


def best_of(fn: Any, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from modelwire.observe import tokens as tk

    ours = tk.openai_tokenizer("o200k_base")
    ref = tiktoken_encoding("o200k_base")
    for text in [*SHORT[:4], LONG]:
        assert ours.encode(text) == ref.encode_ordinary(text)
    n_short = sum(len(ref.encode_ordinary(t)) for t in SHORT)
    n_long = len(ref.encode_ordinary(LONG))
    rows: dict[str, dict[str, float]] = {}
    for label, count in (("modelwire (bpe-openai)", ours.count),
                         ("tiktoken", lambda t: len(ref.encode_ordinary(t)))):
        short = best_of(lambda count=count: [count(t) for t in SHORT])
        long = best_of(lambda count=count: count(LONG))
        rows[label] = {"short_tokens_per_s": n_short / short, "long_tokens_per_s": n_long / long,
                       "short_text_us": short / len(SHORT) * 1e6}

    msgs = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": LONG[:2000]}]
    cold = best_of(lambda: tk.count_tokens("openai/gpt-4o", msgs, use_cache=False), 21)
    tk.count_tokens("openai/gpt-4o", msgs)
    hit = best_of(lambda: tk.count_tokens("openai/gpt-4o", msgs), 21)
    result = {"tokenizer": rows, "count_tokens_us": {"no cache": cold * 1e6,
                                                     "cache hit": hit * 1e6},
              "tokens": {"short_corpus": n_short, "long_doc": n_long}}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print("| tokenizer (o200k_base) | short texts tokens/s | long doc tokens/s "
          "| µs per short text |")
    print("|---|---|---|---|")
    for label, r in rows.items():
        print(f"| {label} | {r['short_tokens_per_s']:,.0f} | {r['long_tokens_per_s']:,.0f} "
              f"| {r['short_text_us']:.1f} |")
    print()
    print("| count_tokens (2 messages, ~500 tokens) | µs per call |")
    print("|---|---|")
    for label, us in result["count_tokens_us"].items():
        print(f"| {label} | {us:.1f} |")


if __name__ == "__main__":
    main()
