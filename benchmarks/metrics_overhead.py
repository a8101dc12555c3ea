"""What ``client.metrics`` costs the hot path: metrics on vs off, paired in one process.

    python benchmarks/metrics_overhead.py [--quick] [--json]

Two clients (the default chain, one with ``metrics=False``) call the same local
fault server (a separate process). They alternate call by call (sequential),
round by round (500 in flight, 10k-chunk stream), so machine noise hits both
alike; each figure is the median over rounds. Nothing asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

MSGS = [{"role": "user", "content": "Say hello."}]


async def run(base: str, quick: bool) -> dict[str, dict[str, float]]:
    import modelwire
    clients = {label: modelwire.AsyncClient(base_urls={"openai": base},
                                            api_keys={"openai": "x"}, metrics=on)
               for label, on in (("metrics on", True), ("metrics off", False))}
    out: dict[str, dict[str, Any]] = {k: {} for k in clients}
    lat: dict[str, list[float]] = {k: [] for k in clients}
    for c in clients.values():
        for _ in range(100):
            await c.complete("openai/gpt-4o-mini", MSGS)
    for _ in range(300 if quick else 2000):
        for label, c in clients.items():
            t = time.perf_counter()
            await c.complete("openai/gpt-4o-mini", MSGS)
            lat[label].append(time.perf_counter() - t)
    rps: dict[str, list[float]] = {k: [] for k in clients}
    chunks: dict[str, list[float]] = {k: [] for k in clients}
    for _ in range(2 if quick else 5):
        for label, c in clients.items():
            sem = asyncio.Semaphore(500)

            async def one(c: Any = c, sem: asyncio.Semaphore = sem) -> None:
                async with sem:
                    await c.complete("openai/gpt-4o-mini", MSGS)
            t = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(1000)))
            rps[label].append(1000 / (time.perf_counter() - t))
            t = time.perf_counter()
            n = 0
            async with c.stream("openai/mw-stream-10000", MSGS) as s:
                async for _ in s:
                    n += 1
            chunks[label].append(n / (time.perf_counter() - t))
    for label, c in clients.items():
        out[label] = {"seq_p50_us": statistics.median(lat[label]) * 1e6,
                      "rps500": statistics.median(rps[label]),
                      "stream_chunks_per_s": statistics.median(chunks[label])}
        await c.aclose()
    return out


def main() -> None:
    from run import start_server
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    proc, base = start_server()
    try:
        result = asyncio.run(run(base, args.quick))
    finally:
        proc.kill()
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print("| client | seq p50 µs | 500 in flight req/s | 10k-chunk stream chunks/s |")
    print("|---|---|---|---|")
    for label, r in result.items():
        print(f"| {label} | {r['seq_p50_us']:.0f} | {r['rps500']:,.0f} "
              f"| {r['stream_chunks_per_s']:,.0f} |")


if __name__ == "__main__":
    main()
