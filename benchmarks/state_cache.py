"""Response cache and shared state, side by side in one run.

    python benchmarks/state_cache.py            # writes benchmarks/state_cache.md
    python benchmarks/state_cache.py --quick

Rows (median µs per sequential call; the scenarios are interleaved round by
round so machine noise hits them alike):

* a provider call over loopback HTTP (the local fault server), against a cache
  hit from the memory cache and from the Redis cache (same request);
* the breaker + rate limiter on the in-process mock provider with no state
  middleware, with the memory store and with the Redis store; the difference
  to the first is what the state costs per call, and the Redis row also counts
  its round trips per call.

Needs redis-server on PATH (it is started on a free 127.0.0.1 port, no
persistence) and ``pip install 'modelwire[redis]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from run import start_server  # noqa: E402  (the fault server the main benchmark uses)

import modelwire  # noqa: E402
from modelwire.cache import MemoryCache  # noqa: E402
from modelwire.cache.redis import RedisCache  # noqa: E402
from modelwire.middleware import (  # noqa: E402
    Breaker,
    RateLimit,
    RateLimiter,
    ResponseCache,
    StoreBackend,
    link_gate,
)
from modelwire.state import MemoryStore  # noqa: E402
from modelwire.state.redis import RedisStore  # noqa: E402


def start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def guarded(store: Any, limits: dict[str, RateLimit]) -> list[Any]:
    chain: list[Any] = [Breaker(store=store),
                        RateLimiter(limits, backend=StoreBackend(store))]
    link_gate(chain)
    return chain


async def main(quick: bool) -> str:
    server, base = start_server()
    workdir = tempfile.mkdtemp(prefix="mw-bench-redis-")
    redis_proc, url = start_redis(workdir)
    try:
        http = {"base_urls": {"openai": base}, "api_keys": {"openai": "sk-bench"}}
        limits = {"mock/bench": RateLimit(rpm=10**9, tpm=10**12)}
        redis_store = RedisStore(url)
        clients: dict[str, tuple[modelwire.AsyncClient, str]] = {
            "provider call (loopback HTTP, no cache)":
                (modelwire.AsyncClient(middleware=[], **http), "openai/gpt-4o-mini"),
            "cache hit: memory":
                (modelwire.AsyncClient(middleware=[ResponseCache(MemoryCache())], **http),
                 "openai/gpt-4o-mini"),
            "cache hit: Redis":
                (modelwire.AsyncClient(middleware=[ResponseCache(RedisCache(url))], **http),
                 "openai/gpt-4o-mini"),
            "mock call, no middleware": (modelwire.AsyncClient(middleware=[]), "mock/bench"),
            "mock call + breaker + limiter, memory store":
                (modelwire.AsyncClient(middleware=guarded(MemoryStore(), limits)), "mock/bench"),
            "mock call + breaker + limiter, Redis store":
                (modelwire.AsyncClient(middleware=guarded(redis_store, limits)), "mock/bench"),
        }
        trips = 0
        real_run = redis_store.conn.run

        async def counting(remote: Any, local: Any) -> Any:
            nonlocal trips
            trips += 1
            return await real_run(remote, local)

        redis_store.conn.run = counting  # type: ignore[method-assign]
        for c, model in clients.values():  # warm: imports, connections, the cached entry
            for _ in range(20):
                await c.complete(model, "benchmark prompt", max_tokens=8)
        trips = 0
        rounds, per = (5, 100) if quick else (20, 200)
        samples: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(rounds):
            for name, (c, model) in clients.items():
                for _ in range(per):
                    t = time.perf_counter()
                    r = await c.complete(model, "benchmark prompt", max_tokens=8)
                    samples[name].append(time.perf_counter() - t)
                    assert r.cached == name.startswith("cache hit")
        calls = rounds * per
        med = {name: statistics.median(v) * 1e6 for name, v in samples.items()}
        base_mock = med["mock call, no middleware"]
        provider = med["provider call (loopback HTTP, no cache)"]
        lines = ["| scenario | median µs per call | note |", "|---|---|---|"]
        for name, us in med.items():
            if name.startswith("cache hit"):
                note = f"{provider / us:.1f}x faster than the provider call"
            elif "store" in name:
                note = f"+{us - base_mock:.0f} µs for breaker + limiter state"
                if "Redis" in name:
                    note += f"; {trips / calls:.2f} Redis round trips per call"
            else:
                note = ""
            lines.append(f"| {name} | {us:,.0f} | {note} |")
        for c, _ in clients.values():
            await c.aclose()
        await redis_store.aclose()
        return "\n".join(lines)
    finally:
        server.kill()
        redis_proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(HERE / "state_cache.md"))
    args = ap.parse_args()
    table = asyncio.run(main(args.quick))
    print(table)
    Path(args.out).write_text(
        "# Response cache and shared state (python benchmarks/state_cache.py)\n\n"
        + table + "\n")
