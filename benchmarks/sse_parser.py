"""SSE parser work is linear in the bytes it receives, whatever the chunking.

    python benchmarks/sse_parser.py            # prints the table row for the README
    python benchmarks/sse_parser.py --mb 20    # size of the payload (default 20 MB)

Two inputs of the same size, both fed to :class:`modelwire.wire.sse.SSEParser`
in 1 KB reads: one single event whose data line is the whole payload (the
worst case for a parser that re-copies its pending line on every read, which
is quadratic: ~20 s for 50 MB), and the same bytes as ordinary ~200-byte
``data:`` events. Best of ``--repeat`` runs each; the ratio is the figure the
issue bounds (within 2x).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from modelwire.wire.sse import SSEParser

READ = 1024


def one_event(size: int) -> bytes:
    return b"data: " + b"x" * size + b"\n\n"


def normal_events(size: int, event: int = 200) -> bytes:
    line = b"data: " + b"y" * (event - 8) + b"\n\n"
    return line * max(1, size // len(line))


def parse_seconds(body: bytes, repeat: int) -> tuple[float, int]:
    pieces = [body[i:i + READ] for i in range(0, len(body), READ)]
    best, count = float("inf"), 0
    for _ in range(repeat):
        parser = SSEParser(max_event_bytes=len(body) + 1)
        started = time.perf_counter()
        count = 0
        for piece in pieces:
            count += len(parser.feed(piece))
        count += len(parser.close())
        best = min(best, time.perf_counter() - started)
    return best, count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=20.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    size = int(args.mb * 1_000_000)
    big, big_n = parse_seconds(one_event(size), args.repeat)
    normal, normal_n = parse_seconds(normal_events(size), args.repeat)
    assert big_n == 1, big_n
    print("| input (1 KB reads) | events | ms | MB/s |")
    print("|---|---|---|---|")
    print(f"| one {args.mb:g} MB event | {big_n:,} | {big * 1000:,.0f} | {size / big / 1e6:,.0f} |")
    print(f"| {args.mb:g} MB as ~200-byte events | {normal_n:,} | {normal * 1000:,.0f} "
          f"| {size / normal / 1e6:,.0f} |")
    print(f"\none big event / normal events: {big / normal:.2f}x (bound: 2x)")
    return 0 if big <= 2 * normal else 1


if __name__ == "__main__":
    sys.exit(main())
