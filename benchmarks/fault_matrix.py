"""The fault matrix: every injected fault x {complete, stream} x {OpenAI, Anthropic, Gemini}.

    python benchmarks/fault_matrix.py                 # writes docs/fault-matrix.md
    python benchmarks/fault_matrix.py --out -         # print the table instead

Each cell scripts one fault on a fresh FaultServer (modelwire.testing) and
makes one call through the default resilience chain (fallback > retry >
breaker; 2 retries) with the sleep recorded rather than slept, so waits are
exact. ``EXPECTED`` is the specification; tests/test_fault_matrix.py asserts
every cell against it, and this script writes the observed outcomes (marking
any cell that differs) for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modelwire import AsyncClient, Timeouts  # noqa: E402
from modelwire.errors import ProviderError, StreamInterruptedError  # noqa: E402
from modelwire.middleware import Breaker, Fallback, Retry, RetryPolicy  # noqa: E402
from modelwire.response import TextDelta  # noqa: E402
from modelwire.testing import Fault, FaultServer  # noqa: E402
from modelwire.testing.fault_server import DEFAULT_TEXT  # noqa: E402

WIRES = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-sonnet-4-5",
         "gemini": "gemini/gemini-2.5-flash"}
MODES = ("complete", "stream")
# first_event: only the "queued" faults reach it (every other stall is a silence,
# which the read timeout ends first).
TIMEOUTS = Timeouts(connect=2.0, read=0.25, total=10.0, first_event=0.5)
SLOW = 0.75  # seconds of server silence: three read timeouts' worth
BACKOFF = RetryPolicy(initial=0.5, max_wait=8.0, jitter=0.0)
LARGE = Fault.large(1 << 20)
LIMITS = {"max_response_bytes": 4 << 20, "max_event_bytes": 2 << 20}
OVERSIZED = 5 << 20  # one event and one body over both limits
FALLBACKS = {"openai": "openai/gpt-4o", "anthropic": "anthropic/claude-haiku-4-5",
             "gemini": "gemini/gemini-2.5-pro"}


@dataclass(frozen=True)
class Expect:
    """``outcome`` "recovered" or an error class (alternatives separated by "|");
    ``cause`` the class inside a StreamInterruptedError."""

    outcome: str
    requests: int
    cause: str | None = None
    waits: tuple[float, ...] | None = None


RECOVERED_AFTER_ONE = Expect("recovered", 2, waits=(0.5,))


@dataclass(frozen=True)
class Case:
    name: str
    fault: Callable[[], Fault]
    complete: Expect
    stream: Expect
    text: str = DEFAULT_TEXT
    fallback: bool = False  # the call names a second target (same server, another model)


CASES: list[Case] = [
    Case("429, no retry-after", lambda: Fault.status(429),
         RECOVERED_AFTER_ONE, RECOVERED_AFTER_ONE),
    Case("429, retry-after: 2", lambda: Fault.status(429, headers={"retry-after": "2"}),
         Expect("recovered", 2, waits=(2.0,)), Expect("recovered", 2, waits=(2.0,))),
    Case("429, retry-after-ms: 1500",
         lambda: Fault.status(429, headers={"retry-after-ms": "1500"}),
         Expect("recovered", 2, waits=(1.5,)), Expect("recovered", 2, waits=(1.5,))),
    Case("500", lambda: Fault.status(500), RECOVERED_AFTER_ONE, RECOVERED_AFTER_ONE),
    Case("502", lambda: Fault.status(502), RECOVERED_AFTER_ONE, RECOVERED_AFTER_ONE),
    Case("503", lambda: Fault.status(503), RECOVERED_AFTER_ONE, RECOVERED_AFTER_ONE),
    Case("529 overloaded", lambda: Fault.status(529), RECOVERED_AFTER_ONE, RECOVERED_AFTER_ONE),
    Case("slow first byte", lambda: Fault.slow_first_byte(SLOW),
         RECOVERED_AFTER_ONE, RECOVERED_AFTER_ONE),
    Case("stall between events", lambda: Fault.stall(4, SLOW),
         RECOVERED_AFTER_ONE,  # complete: the body stalls mid-way, before the caller has it
         Expect("StreamInterruptedError", 1, cause="RequestTimeoutError")),
    Case("reset before headers", lambda: Fault.reset_before_headers(),
         RECOVERED_AFTER_ONE, RECOVERED_AFTER_ONE),
    Case("reset mid-stream", lambda: Fault.reset_mid_stream(4),
         RECOVERED_AFTER_ONE,
         Expect("StreamInterruptedError", 1, cause="ProviderConnectionError")),
    # Before any output (Anthropic's message_start carries only usage): retried.
    Case("stream cut before any output", lambda: Fault.cut_stream(0),
         Expect("MalformedResponseError", 1),  # complete: an empty body
         RECOVERED_AFTER_ONE),
    Case("reset before any output", lambda: Fault.reset_mid_stream(0),
         RECOVERED_AFTER_ONE, RECOVERED_AFTER_ONE),
    Case("stream cut before its terminal event", lambda: Fault.cut_stream(4),
         Expect("MalformedResponseError", 1),  # complete: a truncated JSON body
         Expect("StreamInterruptedError", 1)),
    # A bad chunk that arrives in the same network read as the first events fails
    # before any event reached the caller (so it is the error itself); later, it is
    # the cause of a StreamInterruptedError. Either way: typed, one request.
    Case("malformed JSON chunk", lambda: Fault.malformed_chunk(4),
         Expect("MalformedResponseError", 1),
         Expect("MalformedResponseError|StreamInterruptedError", 1,
                cause="MalformedResponseError")),
    Case("invalid UTF-8", lambda: Fault.invalid_utf8(4),
         Expect("MalformedResponseError", 1),
         Expect("MalformedResponseError|StreamInterruptedError", 1,
                cause="MalformedResponseError")),
    # Valid JSON, wrong shape (the text is a number): never a "successful" answer.
    Case("malformed 200 answer (text: 42)", lambda: Fault.wrong_shape(4),
         Expect("MalformedResponseError", 1),
         Expect("MalformedResponseError|StreamInterruptedError", 1,
                cause="MalformedResponseError")),
    Case("very large response (1 MiB)", lambda: LARGE,
         Expect("recovered", 1, waits=()), Expect("recovered", 1, waits=()), text=LARGE.text),
    # A stream ends at its terminal event: what the server does after it is not the answer.
    Case("keeps connection open after terminal event", lambda: Fault.hold_open(SLOW),
         Expect("recovered", 1, waits=()), Expect("recovered", 1, waits=())),
    Case("trailing bytes after terminal event", lambda: Fault.trailing_bytes(),
         Expect("recovered", 1, waits=()), Expect("recovered", 1, waits=())),
    Case("oversized response (5 MiB in one event)",
         lambda: Fault.large(OVERSIZED, one_event=True),
         Expect("ResponseTooLargeError", 1), Expect("ResponseTooLargeError", 1)),
    Case("redirect (302 to another host)", lambda: Fault.redirect(),
         Expect("RedirectError", 1), Expect("RedirectError", 1)),
    Case("HTML page with status 200", lambda: Fault.html(200),
         Expect("MalformedResponseError", 1), Expect("MalformedResponseError", 1)),
    Case("error JSON with status 200", lambda: Fault.error_200(),
         RECOVERED_AFTER_ONE, RECOVERED_AFTER_ONE),
    # JSON nested deeper than the decoder's stack: typed, never a RecursionError.
    Case("deeply nested JSON (100k '[') with status 200",
         lambda: Fault.status(200, body=b"[" * 100_000),
         Expect("MalformedResponseError", 1), Expect("MalformedResponseError", 1)),
    # complete() has no first event: the queued request is a slow first byte (read timeout).
    Case("stalls before first event (keep-alives), no fallback", lambda: Fault.queued(SLOW),
         RECOVERED_AFTER_ONE, RECOVERED_AFTER_ONE),
    Case("primary stalls before first event -> fallback answers", lambda: Fault.queued(SLOW),
         RECOVERED_AFTER_ONE, Expect("recovered", 2, waits=()), fallback=True),
]


@dataclass
class Cell:
    case: str
    wire: str
    mode: str
    outcome: str  # "recovered" or the error class name
    requests: int
    waits: list[float] = field(default_factory=list)
    cause: str | None = None
    text_ok: bool = False  # recovered: the full expected text arrived, both as events and Response
    detail: str = ""

    def matches(self, expect: Expect) -> bool:
        if self.outcome not in expect.outcome.split("|") or self.requests != expect.requests:
            return False
        if self.outcome == "recovered" and not self.text_ok:
            return False
        if (self.outcome == "StreamInterruptedError" and expect.cause is not None
                and self.cause != expect.cause):
            return False
        return expect.waits is None or tuple(self.waits) == expect.waits


async def run_cell(server: FaultServer, case: Case, wire: str, mode: str) -> Cell:
    server.reset()
    server.script(case.fault())
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    client = AsyncClient(
        api_keys={wire: "key-fault-matrix"}, base_urls={wire: server.url_for(wire)},
        timeout=TIMEOUTS, env={}, fallbacks=[FALLBACKS[wire]] if case.fallback else None,
        middleware=[Fallback(), Retry(2, BACKOFF, sleep=sleep), Breaker()], **LIMITS)
    cell = Cell(case.name, wire, mode, "recovered", 0, waits)
    try:
        if mode == "complete":
            resp = await client.complete(WIRES[wire], "hi")
            cell.text_ok = resp.text == case.text
        else:
            async with client.stream(WIRES[wire], "hi") as stream:
                text = "".join([e.text async for e in stream if isinstance(e, TextDelta)])
            cell.text_ok = text == case.text == stream.response.text
    except ProviderError as e:
        cell.outcome = type(e).__name__
        if isinstance(e, StreamInterruptedError) and e.cause is not None:
            cell.cause = type(e.cause).__name__
        cell.detail = e.message
    finally:
        await client.aclose()
    cell.requests = len(server.requests)
    return cell


def expected(case: Case, mode: str) -> Expect:
    return case.complete if mode == "complete" else case.stream


def _describe(cell: Cell, expect: Expect) -> str:
    if cell.outcome == "recovered":
        text = "recovered" + ("" if cell.text_ok else " (WRONG TEXT)")
    else:
        text = f"`{cell.outcome}`" + (f" ← `{cell.cause}`" if cell.cause else "")
    extra = f"{cell.requests} req"
    if cell.waits:
        extra += ", waited " + " + ".join(f"{w:g}s" for w in cell.waits)
    mark = "" if cell.matches(expect) else " ❌"
    return f"{text} ({extra}){mark}"


def table(cells: list[Cell]) -> str:
    by_key = {(c.case, c.wire, c.mode): c for c in cells}
    head = ["fault"] + [f"{w} {m}" for w in WIRES for m in MODES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in CASES:
        row = [case.name] + [_describe(by_key[(case.name, w, m)], expected(case, m))
                             for w in WIRES for m in MODES]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


async def run_all() -> list[Cell]:
    cells = []
    async with FaultServer() as server:
        for case in CASES:
            for wire in WIRES:
                for mode in MODES:
                    cells.append(await run_cell(server, case, wire, mode))
    return cells


HEADER = """# Fault matrix

What a call does when the provider misbehaves, generated by
`python benchmarks/fault_matrix.py` against the fault-injecting server
(`modelwire.testing.FaultServer`) through the default chain (fallback > retry >
breaker, 2 retries), with backoff jitter switched off and sleeps recorded rather
than slept, so the waits shown are exact. "req" counts the requests the server
saw; a cell marked ❌ differs from the specification asserted by
`tests/test_fault_matrix.py`.

Retry and fallback act only before the first event of a stream reaches the
caller. After that a failure raises `StreamInterruptedError` (its cause after
the arrow) holding the partial response, and it is never retried: every such
cell shows exactly one request. A non-streamed body that stalls or is reset
mid-way has not reached the caller yet, so it is retried. Timeouts here:
read {read}s, first_event {first}s, server silence {slow}s; size limits
{body} MiB for a body, {event} MiB for one stream event.

A stream ends at its wire's terminal event: a server that then keeps the
connection open, or sends more bytes, changes nothing. A stream answered with
a non-SSE body is read by content type (an error JSON is that error, an HTML
page is malformed). A stream that has not produced its first event within
`first_event` hands over to the fallback at once (no retries on the stalled
target) when there is one, and is retried when there is not.

"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "fault-matrix.md"),
                        help="where to write the markdown ('-' for stdout)")
    args = parser.parse_args(argv)
    cells = asyncio.run(run_all())
    text = HEADER.format(read=TIMEOUTS.read, first=TIMEOUTS.first_event, slow=SLOW,
                         body=LIMITS["max_response_bytes"] >> 20,
                         event=LIMITS["max_event_bytes"] >> 20) + table(cells) + "\n"
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    bad = [c for c in cells
           if not c.matches(expected(next(k for k in CASES if k.name == c.case), c.mode))]
    for c in bad:
        print(f"MISMATCH {c.case} / {c.wire} / {c.mode}: {c.outcome} {c.cause} "
              f"{c.requests} req {c.waits} {c.detail}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
