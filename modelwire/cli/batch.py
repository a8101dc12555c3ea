"""``modelwire batch in.jsonl -o out.jsonl -m MODEL``: many requests, resumable.

Each finished request is one line of the output, flushed at once; rerunning
the same command skips the ids already there (``--retry-errors`` runs failed
ones again). ``--provider-batch`` sends the whole file to the provider's own
batch API instead (OpenAI Batch, Anthropic Message Batches) and polls it;
its batch id is kept in ``OUTPUT.batch-state.json`` so a rerun resumes polling.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app import ModelOpt, _run, app, new_client

if TYPE_CHECKING:
    from ..batch import BatchResult


def cost_of(result: BatchResult) -> float | None:
    """The cost a response reports (Response.cost when present, else the provider's own)."""
    r = result.response
    if r is None:
        return None
    cost = getattr(r, "cost", None)
    total = getattr(cost, "total", None) if cost is not None else None
    if isinstance(total, (int, float)):
        return float(total)
    if isinstance(r.raw, dict) and isinstance(r.raw.get("total_cost_usd"), (int, float)):
        return float(r.raw["total_cost_usd"])
    return None


class Progress:
    """A rich progress bar: done/total, rate, ETA, tokens and cost so far."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tokens = 0
        self.cost = 0.0
        self.costed = 0  # responses whose cost was known
        self.errors = 0
        self._bar: Any = None
        self._task: Any = None

    def start(self, total: int, skipped: int) -> None:
        if skipped:
            print(f"modelwire: {skipped} of {total} ids already in the output; "
                  "running the rest", file=sys.stderr)
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress
        self._bar = RichProgress(
            TextColumn("batch"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), TextColumn("{task.fields[extra]}"),
            console=Console(stderr=True), transient=False)
        self._bar.start()
        self._task = self._bar.add_task("batch", total=total, completed=skipped,
                                        rate="", extra="")
        self._started, self._skipped = time.monotonic(), skipped

    def update(self, result: BatchResult) -> None:
        if result.response is not None:
            self.tokens += result.response.usage.total_tokens or 0
            cost = cost_of(result)
            if cost is not None:
                self.cost += cost
                self.costed += 1
        else:
            self.errors += 1
        if self._bar is None:
            return
        self._bar.advance(self._task)
        done = self._bar.tasks[0].completed - self._skipped
        elapsed = max(time.monotonic() - self._started, 1e-9)
        spent = f"${self.cost:.4f}" if self.costed else "cost n/a"
        self._bar.update(self._task, rate=f"{done / elapsed:.1f}/s",
                         extra=f"{self.tokens} tok {spent} {self.errors} err")

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@app.command()
def batch(
    input_path: Annotated[str, typer.Argument(metavar="IN.jsonl", help=(
        "One request a line: {\"id\", \"messages\" or \"prompt\", \"model\"?, "
        "\"options\"?}."), show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", metavar="OUT.jsonl", help=(
        "Results, one line per id (appended; ids already there are skipped)."))],
    model: ModelOpt = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1,
                                             help="Requests in flight at once.")] = 16,
    retry_errors: Annotated[bool, typer.Option(
        "--retry-errors", help="Run again the ids whose earlier result is an error.")] = False,
    provider_batch: Annotated[bool, typer.Option("--provider-batch", help=(
        "Use the provider's batch API (openai, anthropic): slower, cheaper."))] = False,
    poll: Annotated[float, typer.Option("--poll-interval", min=0.0, help=(
        "Seconds between status polls with --provider-batch."))] = 30.0,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Progress bar (default: when stderr is a terminal).",
        show_default=False)] = None,
) -> None:
    """Run a JSONL file of requests; write one JSONL result per request. Resumable."""
    show = sys.stderr.isatty() if progress is None else progress

    async def main() -> int:
        async with new_client() as client:
            if provider_batch:
                from ..batch_remote import run_provider_batch
                counts = await run_provider_batch(client, input_path, output, model=model,
                                                  poll_interval=poll, log=_log,
                                                  retry_errors=retry_errors)
            else:
                from ..batch import run_file
                bar = Progress(show)
                try:
                    counts = await run_file(client, input_path, output, model=model,
                                            concurrency=concurrency,
                                            retry_errors=retry_errors,
                                            on_result=bar.update, on_start=bar.start)
                finally:
                    bar.stop()
        if counts.get("truncated_bytes"):
            _log(f"cut a half-written last line ({counts['truncated_bytes']} bytes) "
                 "from the output and ran its request again")
        _log(f"{counts['ok']} ok, {counts['errors']} errors, {counts['skipped']} already done "
             f"(of {counts['total']})")
        return 1 if counts["errors"] else 0

    _run(main)


def _log(message: str) -> None:
    print(f"modelwire: {message}", file=sys.stderr, flush=True)
