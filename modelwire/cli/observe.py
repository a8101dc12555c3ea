"""``modelwire bench``, ``modelwire tokens`` and ``modelwire cost``."""

import asyncio
import statistics
import sys
import time
from typing import Annotated, Any

import typer

from . import app as _app
from . import render
from .app import JsonOpt, MaxTokensOpt, _fail, _print_json, _prompt, _run, _usage, app


def _q(values: list[float], q: float) -> float | None:
    """The q-quantile by the nearest-rank method (exact for the few samples a bench takes)."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(-(-q * len(s) // 1)) - 1))]


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1000:.2f} ms" if v < 0.01 else f"{v * 1000:,.0f} ms"


def _ms_pair(a: float | None, b: float | None) -> str:
    """``p50/p95`` in one cell, the unit once: "0.15/0.21 ms"."""
    if a is None or b is None:
        return "-"
    return " ".join(_ms(a).split()[:1]) + "/" + _ms(b)


async def _one(client: Any, model: str, prompt: str, max_tokens: int | None,
               row: dict[str, Any]) -> None:
    started = time.perf_counter()
    try:
        async with client.stream(model, prompt, max_tokens=max_tokens) as s:
            r = await s.collect()
    except Exception as e:  # counted by type: a bench reports failures, it does not stop
        row["errors"][type(e).__name__] = row["errors"].get(type(e).__name__, 0) + 1
        return
    latency = time.perf_counter() - started
    row["latency"].append(latency)
    if r.time_to_first_token is not None:
        row["ttft"].append(r.time_to_first_token)
    gen = latency - (r.time_to_first_token or 0.0)
    if r.usage.output_tokens and gen > 0:
        row["tps"].append(r.usage.output_tokens / gen)
    try:
        cost = r.cost
    except Exception as e:  # the cost extra missing: say so instead of a number
        row["cost_note"] = str(e)
        return
    if cost.total is None:
        row["cost_note"] = cost.reason
    else:
        row["costs"].append(cost.total)
        row["cost_note"] = cost.reason


def _summary(model: str, n: int, row: dict[str, Any]) -> dict[str, Any]:
    costs = row["costs"]
    return {
        "model": model, "calls": n, "ok": len(row["latency"]), "errors": row["errors"],
        "ttft_p50_s": _q(row["ttft"], 0.5), "ttft_p95_s": _q(row["ttft"], 0.95),
        "latency_p50_s": _q(row["latency"], 0.5), "latency_p95_s": _q(row["latency"], 0.95),
        "output_tokens_per_s": statistics.median(row["tps"]) if row["tps"] else None,
        "cost_per_call_usd": sum(costs) / len(costs) if costs else None,
        "cost_note": row.get("cost_note"),
    }


@app.command()
def bench(
    prompt: Annotated[str | None, typer.Argument(
        help="The prompt sent to every model. Read from stdin when omitted.",
        show_default=False)] = None,
    models: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help="A model to compare; repeat for more.")] = None,
    n: Annotated[int, typer.Option("-n", min=1, help="Calls per model.")] = 20,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1,
                                             help="Calls in flight per model.")] = 4,
    max_tokens: MaxTokensOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the same prompt against each model: TTFT, latency, tokens/s, errors, cost."""
    if not models:
        _usage("bench needs at least one --model/-m")
    text = _prompt(prompt)

    async def main() -> int:
        from rich.console import Console
        from rich.progress import Progress

        results = []
        interrupted = False
        console = Console(file=sys.stderr)
        async with _app.new_client() as client:
            with Progress(console=console, transient=True,
                          disable=as_json or not console.is_terminal) as progress:
                for model in models:
                    task = progress.add_task(model, total=n)
                    row: dict[str, Any] = {"latency": [], "ttft": [], "tps": [], "costs": [],
                                           "errors": {}}
                    sem = asyncio.Semaphore(concurrency)

                    async def one(model: str = model, row: dict[str, Any] = row,
                                  task: Any = task, sem: asyncio.Semaphore = sem) -> None:
                        async with sem:
                            await _one(client, model, text, max_tokens, row)
                        progress.advance(task)
                    try:
                        await asyncio.gather(*(one() for _ in range(n)))
                    except asyncio.CancelledError:  # Ctrl-C: report what was measured
                        done = len(row["latency"]) + sum(row["errors"].values())
                        results.append(_summary(model, done, row))
                        interrupted = True
                        break
                    results.append(_summary(model, n, row))
        if as_json:
            _print_json(results)
        else:
            # Compact enough for 80 columns; why a cost is absent or 0 goes below.
            render.print_table(
                f"modelwire bench (n={n}, concurrency={concurrency})",
                ["model", "ok", "TTFT p50/p95", "total p50/p95", "out tok/s", "cost/call",
                 "errors"],
                [[r["model"], f"{r['ok']}/{r['calls']}",
                  _ms_pair(r["ttft_p50_s"], r["ttft_p95_s"]),
                  _ms_pair(r["latency_p50_s"], r["latency_p95_s"]),
                  "-" if r["output_tokens_per_s"] is None else f"{r['output_tokens_per_s']:,.0f}",
                  _cost_cell(r),
                  ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "-"]
                 for r in results])
            for r in results:
                if r["cost_note"] and not r["cost_per_call_usd"]:
                    print(f"cost of {r['model']}: {r['cost_note']}")
        if interrupted:  # the runner turns this into exit status 130
            print("bench interrupted: the figures above cover the calls that finished",
                  file=sys.stderr)
            return 130
        return 1 if any(r["ok"] == 0 for r in results) else 0

    _run(main)


def _cost_cell(r: dict[str, Any]) -> str:
    if r["cost_per_call_usd"] is None:
        return "n/a"
    return "$0" if r["cost_per_call_usd"] == 0 else f"${r['cost_per_call_usd']:.6f}"


@app.command()
def tokens(
    text: Annotated[str | None, typer.Argument(
        help="The text to count. Read from stdin when omitted.", show_default=False)] = None,
    model: Annotated[str, typer.Option("--model", "-m",
                                       help="'<provider>/<model>'.")] = "openai/gpt-4o",
    chat: Annotated[bool, typer.Option(
        "--chat", help="Count TEXT as one user message, with the chat formatting; "
        "Anthropic and Gemini then ask the provider.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Count tokens: exact, provider-counted or a flagged estimate (it says which)."""
    body = _prompt(text)

    async def main() -> int:
        from ..observe.tokens import count_tokens
        if chat:
            async with _app.new_client() as client:
                count = await client.count_tokens(model, body)
        elif "/" not in model:  # an alias: resolved as a call would resolve it
            async with _app.new_client() as client:
                count = count_tokens(client.resolve(model).name, text=body)
        else:
            count = count_tokens(model, text=body)
        if as_json:
            _print_json(count.to_dict())
        else:
            print(f"{count.tokens} tokens ({count.provenance}: {count.method})")
        return 0

    _run(main)


@app.command()
def cost(
    model: Annotated[str, typer.Option("--model", "-m", help="'<provider>/<model>'.")],
    input_tokens: Annotated[int, typer.Option("--input", min=0, help="Input tokens.")] = 0,
    output_tokens: Annotated[int, typer.Option("--output", min=0, help="Output tokens.")] = 0,
    cached: Annotated[int, typer.Option("--cached", min=0,
                                        help="Of the input, tokens read from cache.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """The USD price of a number of tokens (genai-prices). Exit 1 if the model has none."""
    from ..errors import ModelwireError
    from ..observe.cost import cost_of
    from ..observe.tokens import split_model
    from ..response import Usage

    if cached > input_tokens:
        _usage("--cached cannot exceed --input (cached tokens are part of the input)")
    try:
        if "/" not in model:  # an alias: resolved as a call would resolve it (no traffic)
            model = _app.new_client().resolve(model).name
        provider, name = split_model(model)
        c = cost_of(provider, name, Usage(input_tokens, output_tokens,
                                          input_tokens + output_tokens,
                                          cached_input_tokens=cached or None,
                                          source="estimated"))
    except ModelwireError as e:
        _fail(e)
    if as_json:
        _print_json(c.to_dict())
    elif c.total is None:
        print(f"no price for {model}: {c.reason}", file=sys.stderr)
    else:
        parts = [("input", c.input), ("cached input", c.cached_input), ("output", c.output)]
        shown = ", ".join(f"{k} ${v:.6f}" for k, v in parts if v)
        print(f"${c.total:.6f} ({shown or 'nothing'}; "
              f"{c.reason or c.price_table}, model {c.priced_model or name})")
    if c.total is None:
        raise typer.Exit(1)
