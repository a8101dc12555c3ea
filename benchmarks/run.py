"""Side-by-side benchmark: modelwire vs raw-client floors and peer libraries.

    python benchmarks/run.py                 # everything available, writes benchmarks/results.md
    python benchmarks/run.py --quick         # fewer iterations (smoke run)
    python benchmarks/run.py --only modelwire "aiohttp floor"

One fault-server process on 127.0.0.1 (modelwire.testing.fault_server) serves the
OpenAI chat wire; every (contender, scenario) runs in a fresh Python process so
import cost and peak memory are its own. Model names select server behaviour:
``mw-stream-N`` streams N text chunks, ``mw-tools-N`` one tool call in N
argument fragments. Nothing here asserts a time: the table is the result.

Fairness on a shared, noisy machine: scenarios run scenario-major (every
contender runs a scenario before any runs the next), ``--rounds`` times, and
each cell is the median over rounds, so slow drift in the machine's load hits
all contenders alike instead of whichever ran during a busy minute. On top of
that, the seq and stream scenarios alternate the contender call by call with a
raw floor in the same process (aiohttp for seq, httpx for streams) and report
the ratio: the steadiest measure of "within 1.15x of the floor" on a busy box.

Lazy imports are counted, not hidden: modelwire imports its HTTP stack (aiohttp)
on the first call, so ``import ms`` alone would flatter it. ``first call ms``
is construct + the first request (lazy imports, session, connection), measured
the same way for every contender, and ``RSS after first call`` is the memory a
working client really holds. ``cold ms`` is the whole cold path as one figure,
what a CLI, a serverless function or a short script feels: in a fresh process,
from before the library's import to its first answered call (for the aiohttp
floor: from before ``import aiohttp`` to its first POST parsed).

    python benchmarks/run.py --only modelwire "aiohttp floor" --scenarios import --rounds 5

``--baseline DIR`` adds each modelwire row again, run from another checkout
(``git worktree add /tmp/base main``, or ``git archive``): before and after side
by side in one run, on the same server and under the same load.
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
# A worker for a --baseline row imports modelwire from that checkout instead.
sys.path.insert(0, os.environ.get("MODELWIRE_BENCH_ROOT") or str(HERE.parent))
BASELINE = " @ baseline"

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
        t = cold = time.perf_counter()
        cls.import_()
        out["import_ms"] = (time.perf_counter() - t) * 1000
        out["rss_after_import_mb"] = rss_mb()
        c = cls()
        t = time.perf_counter()
        await c.make(base)
        out["construct_us"] = (time.perf_counter() - t) * 1e6
        await c.complete("gpt-4o-mini")  # lazy imports, session, first connection
        done = time.perf_counter()
        out["first_call_ms"] = (done - t) * 1000
        out["cold_ms"] = (done - cold) * 1000
        out["rss_after_first_call_mb"] = rss_mb()
        await c.close()
        return out
    c = cls()
    await c.make(base)
    # Paired references in the same process, alternated call by call with the
    # contender: machine noise then hits both alike, so the ratio columns are
    # steadier than comparing rows measured minutes apart.
    ref: Any = None
    try:
        if scenario == "seq":
            ref = CONTENDERS["aiohttp floor"]()
            await ref.make(base)
            n = 300 if quick else 2000
            for _ in range(100):
                await c.complete("gpt-4o-mini")
                await ref.complete("gpt-4o-mini")
            lat, ref_lat = [], []
            for _ in range(n):
                t = time.perf_counter()
                await c.complete("gpt-4o-mini")
                lat.append(time.perf_counter() - t)
                t = time.perf_counter()
                await ref.complete("gpt-4o-mini")
                ref_lat.append(time.perf_counter() - t)
            q = statistics.quantiles(lat, n=100)
            p50 = statistics.median(lat)
            out.update(p50_us=p50 * 1e6, p99_us=q[98] * 1e6,
                       p50_vs_floor=p50 / statistics.median(ref_lat))
        elif scenario == "stream10k":
            if importlib.util.find_spec("httpx") is not None:
                ref = CONTENDERS["httpx floor"]()
                await ref.make(base)
                await ref.stream("mw-stream-200")
            await c.stream("mw-stream-200")
            rates, ref_rates = [], []
            for _ in range(2 if quick else 5):
                t = time.perf_counter()
                n = await c.stream("mw-stream-10000")
                rates.append(n / (time.perf_counter() - t))
                if ref is not None:
                    t = time.perf_counter()
                    k = await ref.stream("mw-stream-10000")
                    ref_rates.append(k / (time.perf_counter() - t))
            out.update(chunks_per_s=statistics.median(rates), chunks=n)
            if ref_rates:
                out["stream_vs_httpx"] = statistics.median(rates) / statistics.median(ref_rates)
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
        if ref is not None:
            await ref.close()
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
    ("construct_us", "construct µs", "{:.0f}"), ("first_call_ms", "first call ms", "{:.1f}"),
    ("rss_after_first_call_mb", "RSS after first call MB", "{:.1f}"),
    ("cold_ms", "cold ms (import to first answer)", "{:.1f}"),
    ("p50_us", "seq p50 µs", "{:.0f}"),
    ("p99_us", "seq p99 µs", "{:.0f}"),
    ("p50_vs_floor", "seq p50 ÷ aiohttp floor (paired)", "{:.2f}"),
    ("chunks_per_s", "10k-chunk stream chunks/s", "{:,.0f}"),
    ("stream_vs_httpx", "stream ÷ httpx floor (paired)", "{:.2f}"),
    ("tools200_us", "200-delta tool call µs", "{:,.0f}"),
    ("rps100", "100 in flight req/s", "{:,.0f}"),
    ("rps500", "500 in flight req/s", "{:,.0f}"), ("errors", "errors", "{:.0f}"),
    ("peak500", "peak RSS MB (500)", "{:.0f}"),
    ("kb_per_inflight", "KB per in-flight call", "{:.1f}"),
]


def table(results: dict[str, dict[str, Any]]) -> str:
    head = "| contender | " + " | ".join(c[1] for c in COLUMNS) + " |"
    rows = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, r in results.items():
        cells = [fmt.format(r[k]) if r.get(k) is not None else "n/a" for k, _, fmt in COLUMNS]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each metric over rounds; errors are summed, never smoothed away."""
    out: dict[str, Any] = {}
    for key in {k for r in runs for k in r}:
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = sum(values) if key == "errors" else statistics.median(values)
    if out.get("peak500") is not None and out.get("peak100") is not None:
        # memory per extra call in flight: 500 vs 100 in flight, same process shape
        out["kb_per_inflight"] = (out["peak500"] - out["peak100"]) * 1024 / 400
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=3, metavar=("NAME", "SCENARIO", "BASE"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--scenarios", nargs="*", choices=SCENARIOS,
                    help="run only these scenarios (default: all)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="runs of every (contender, scenario); cells are medians "
                         "(default 3, 1 with --quick)")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also run the modelwire rows from this checkout")
    ap.add_argument("--out", default=str(HERE / "results.md"))
    args = ap.parse_args()
    if args.worker:
        name, scenario, base = args.worker
        print(json.dumps(asyncio.run(worker(name, scenario, base, args.quick))))
        return
    from contenders import CONTENDERS
    names = [n for n in (args.only or CONTENDERS) if available(n)]
    if args.baseline:
        names = [m for n in names
                 for m in ((n, n + BASELINE) if n.startswith("modelwire") else (n,))]
    rounds = args.rounds or (1 if args.quick else 3)
    # Bytecode for the checkouts under test, as an installed package has it
    # (with PYTHONDONTWRITEBYTECODE set, a checkout would recompile every import).
    import compileall
    for root in {HERE.parent, *([Path(args.baseline)] if args.baseline else [])}:
        compileall.compile_dir(str(root / "modelwire"), quiet=1)
    server, base = start_server()
    runs: dict[str, list[dict[str, Any]]] = {n: [{} for _ in range(rounds)] for n in names}
    try:
        for i in range(rounds):
            # scenario-major: contenders side by side in time
            for scenario in args.scenarios or SCENARIOS:
                for name in names:
                    real = name.removesuffix(BASELINE)
                    env = dict(os.environ)
                    if real != name:
                        env["MODELWIRE_BENCH_ROOT"] = str(Path(args.baseline).resolve())
                    cmd = [python_for(real), __file__, "--worker", real, scenario, base]
                    if args.quick:
                        cmd.append("--quick")
                    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                                       env=env)
                    if p.returncode != 0:
                        print(f"{name}/{scenario} failed: {p.stderr.strip()[-400:]}",
                              file=sys.stderr)
                        continue
                    data = json.loads(p.stdout.strip().splitlines()[-1])
                    r = runs[name][i]
                    if scenario.startswith("conc"):
                        k = scenario[4:]
                        r[f"rps{k}"] = data["rps"]
                        r["errors"] = r.get("errors", 0) + data["errors"]
                        r[f"peak{k}"] = data["peak_rss_mb"]
                    else:
                        r.update(data)
                    print(f"[{i + 1}/{rounds}] {name:28s} {scenario:10s} {data}",
                          file=sys.stderr)
    finally:
        server.kill()
    results = {name: combine(rs) for name, rs in runs.items()}
    md = table(results)
    print(md)
    stamp = time.strftime("%Y-%m-%d")
    Path(args.out).write_text(
        f"# Benchmark results ({stamp}, {os.cpu_count()} cores, Python "
        f"{sys.version.split()[0]})\n\nProduced by `python benchmarks/run.py"
        f"{''.join(' ' + (a if ' ' not in a else repr(a)) for a in sys.argv[1:])}` "
        f"({rounds} round{'s' if rounds > 1 else ''}, "
        f"medians).\n\n{md}\n\n```json\n"
        f"{json.dumps(results, indent=1)}\n```\n")


if __name__ == "__main__":
    main()
