"""What the per-provider tool-schema cache saves: encoding one request with 8 tools.

    python benchmarks/tool_schema_cache.py          # prints a markdown table
    python benchmarks/tool_schema_cache.py --out benchmarks/tool_schema_cache.md

For each wire, ``codec.encode(call)`` of a chat call carrying 8 tools built by
``Tool.from_function`` (nested dataclasses, Literals, optionals), measured
with the cache as it works (each tool's translation computed on first use,
then reused) and with the cache emptied before every encode (the translation
recomputed per request, as before the cache). Medians of 7 runs; no asserts.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelwire.pipeline import Call, Target
from modelwire.registry import get_codec, get_spec
from modelwire.types import Tool, to_messages


@dataclasses.dataclass
class Address:
    street: str
    city: str
    country: Literal["FR", "DE", "US", "JP"] = "FR"


@dataclasses.dataclass
class Person:
    name: str
    age: int
    home: Address
    emails: list[str]


def make_tool(i: int) -> Tool:
    def fn(person: Person, query: str, limit: int = 10, kind: Literal["a", "b", "c"] = "a",
           near: Address | None = None, tags: list[str] | None = None) -> str:
        """Look something up about a person.

        Args:
            person: Who.
            query: What to look for.
            limit: How many results.
        """
        return ""
    fn.__name__ = f"tool_{i}"
    return Tool.from_function(fn)


def measure(provider: str, tools: list[Tool], cached: bool, n: int) -> float:
    spec = get_spec(provider)
    codec = get_codec(spec)
    call = Call(messages=to_messages("hi"), target=Target(spec, "m", "http://127.0.0.1:1", "k"),
                tools=tools)
    codec.encode(call)  # warm
    runs = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(n):
            if not cached:
                for t in tools:
                    t._wire.clear()
            codec.encode(call)
        runs.append((time.perf_counter() - started) / n * 1e6)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--out")
    args = ap.parse_args()
    tools = [make_tool(i) for i in range(8)]
    rows = ["| wire | encode µs, schema recomputed per call | encode µs, cached | saving |",
            "|---|---|---|---|"]
    for provider in ("openai", "openai-responses", "anthropic", "gemini"):
        fresh = measure(provider, tools, False, args.n)
        cached = measure(provider, tools, True, args.n)
        rows.append(f"| {provider} | {fresh:.1f} | {cached:.1f} | {1 - cached / fresh:.0%} |")
    table = "\n".join(rows)
    print(table)
    if args.out:
        Path(args.out).write_text(
            "# Tool-schema cache (encode of one call with 8 tools)\n\n"
            f"Produced by `python benchmarks/tool_schema_cache.py` (n={args.n}, "
            "median of 7).\n\n" + table + "\n")


if __name__ == "__main__":
    main()
