"""Side-by-side benchmark: modelwire vs raw-client floors and peer libraries.

    python benchmarks/run.py                 # everything available, writes benchmarks/results.md
    python benchmarks/run.py --quick         # fewer iterations (smoke run)
    python benchmarks/run.py --only modelwire "aiohttp floor"

One fault-server process on 127.0.0.1 (modelwire.testing.fault_server) serves the
OpenAI chat wire; every (contender, scenario) runs in a fresh Python process so
import cost and peak memory are its own. Model names select server behaviour:
``mw-stream-N`` streams N text chunks, ``mw-tools-N`` one tool call in N
argument fragments. Nothing here asserts a time: the table is the result.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

SCENARIOS = ("import", "seq", "stream10k", "tools200", "conc100", "conc500")
PEER_MODULES = {"openai SDK": "openai", "litellm": "litellm", "httpx floor": "httpx"}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def worker(name: str, scenario: str, base: str, quick: bool) -> dict[str, Any]:
    from contenders import CONTENDERS
    cls = CONTENDERS[name]
    out: dict[str, Any] = {}
    if scenario == "import":
        t = time.perf_counter()
        cls.import_()
        out["import_ms"] = (time.perf_counter() - t) * 1000
        out["rss_after_import_mb"] = rss_mb()
        c = cls()
        t = time.perf_counter()
        await c.make(base)
        out["construct_us"] = (time.perf_counter() - t) * 1e6
        await c.close()
        return out
    c = cls()
    await c.make(base)
    try:
        if scenario == "seq":
            n = 300 if quick else 2000
            for _ in range(100):
                await c.complete("gpt-4o-mini")
            lat = []
            for _ in range(n):
                t = time.perf_counter()
                await c.complete("gpt-4o-mini")
                lat.append(time.perf_counter() - t)
            q = statistics.quantiles(lat, n=100)
            out.update(p50_us=statistics.median(lat) * 1e6, p99_us=q[98] * 1e6)
        elif scenario == "stream10k":
            await c.stream("mw-stream-200")
            rates = []
            for _ in range(2 if quick else 5):
                t = time.perf_counter()
                n = await c.stream("mw-stream-10000")
                rates.append(n / (time.perf_counter() - t))
            out.update(chunks_per_s=statistics.median(rates), chunks=n)
        elif scenario == "tools200":
            await c.stream("mw-tools-200")
            times = []
            for _ in range(20 if quick else 100):
                t = time.perf_counter()
                await c.stream("mw-tools-200")
                times.append(time.perf_counter() - t)
            out["tools200_us"] = statistics.median(times) * 1e6
        elif scenario in ("conc100", "conc500"):
            limit = int(scenario[4:])
            sem = asyncio.Semaphore(limit)
            errors = 0

            async def one() -> None:
                nonlocal errors
                async with sem:
                    try:
                        await c.complete("gpt-4o-mini")
                    except Exception:
                        errors += 1
            await asyncio.gather(*(one() for _ in range(100)))
            t = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(1000)))
            out.update(rps=1000 / (time.perf_counter() - t), errors=errors,
                       peak_rss_mb=peak_mb())
    finally:
        await c.close()
    return out


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelwire.testing.fault_server", "--port", "0"],
        stdout=subprocess.PIPE, text=True, cwd=HERE.parent)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("LISTENING "):
        proc.kill()
        raise SystemExit(f"fault server did not start: {line!r}")
    return proc, line.split()[1] + "/v1"


LITELLM_PY = HERE / ".venv-litellm" / "bin" / "python"  # made by setup_peers.sh


def python_for(name: str) -> str:
    return str(LITELLM_PY) if name == "litellm" and LITELLM_PY.exists() else sys.executable


def available(name: str) -> bool:
    if name == "litellm" and LITELLM_PY.exists():
        return True
    mod = PEER_MODULES.get(name)
    return mod is None or importlib.util.find_spec(mod) is not None


COLUMNS = [
    ("import_ms", "import ms", "{:.0f}"), ("rss_after_import_mb", "RSS after import MB", "{:.1f}"),
    ("construct_us", "construct µs", "{:.0f}"), ("p50_us", "seq p50 µs", "{:.0f}"),
    ("p99_us", "seq p99 µs", "{:.0f}"), ("chunks_per_s", "10k-chunk stream chunks/s", "{:,.0f}"),
    ("tools200_us", "200-delta tool call µs", "{:,.0f}"),
    ("rps100", "100 in flight req/s", "{:,.0f}"),
    ("rps500", "500 in flight req/s", "{:,.0f}"), ("errors", "errors", "{:.0f}"),
    ("peak500", "peak RSS MB (500)", "{:.0f}"),
]


def table(results: dict[str, dict[str, Any]]) -> str:
    head = "| contender | " + " | ".join(c[1] for c in COLUMNS) + " |"
    rows = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, r in results.items():
        cells = [fmt.format(r[k]) if r.get(k) is not None else "n/a" for k, _, fmt in COLUMNS]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=3, metavar=("NAME", "SCENARIO", "BASE"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--out", default=str(HERE / "results.md"))
    args = ap.parse_args()
    if args.worker:
        name, scenario, base = args.worker
        print(json.dumps(asyncio.run(worker(name, scenario, base, args.quick))))
        return
    from contenders import CONTENDERS
    names = [n for n in (args.only or CONTENDERS) if available(n)]
    server, base = start_server()
    results: dict[str, dict[str, Any]] = {}
    try:
        for name in names:
            r: dict[str, Any] = {}
            for scenario in SCENARIOS:
                cmd = [python_for(name), __file__, "--worker", name, scenario, base]
                if args.quick:
                    cmd.append("--quick")
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
                if p.returncode != 0:
                    print(f"{name}/{scenario} failed: {p.stderr.strip()[-400:]}", file=sys.stderr)
                    continue
                data = json.loads(p.stdout.strip().splitlines()[-1])
                if scenario.startswith("conc"):
                    k = scenario[4:]
                    r[f"rps{k}"] = data["rps"]
                    r["errors"] = r.get("errors", 0) + data["errors"]
                    r[f"peak{k}"] = data["peak_rss_mb"]
                else:
                    r.update(data)
                print(f"{name:28s} {scenario:10s} {data}", file=sys.stderr)
            results[name] = r
    finally:
        server.kill()
    md = table(results)
    print(md)
    stamp = time.strftime("%Y-%m-%d")
    Path(args.out).write_text(
        f"# Benchmark results ({stamp}, {os.cpu_count()} cores, Python "
        f"{sys.version.split()[0]})\n\nProduced by `python benchmarks/run.py`"
        f"{' --quick' if args.quick else ''}.\n\n{md}\n\n```json\n"
        f"{json.dumps(results, indent=1)}\n```\n")


if __name__ == "__main__":
    main()
