"""The typer app. Commands import modelwire lazily so ``--help`` stays fast.

Error contract: a :class:`~modelwire.ModelwireError` becomes one line on
stderr, ``error: <Type>: <message>``, exit 1 (2 for a ConfigurationError);
Ctrl-C exits 130 without a traceback; SIGTERM and SIGHUP cancel the same way
(exit 143 / 129), so cleanup runs and no subprocess outlives the command.
"""

import asyncio
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from . import render

if TYPE_CHECKING:
    from ..client import AsyncClient, StreamRequest
    from ..response import Response

app = typer.Typer(
    name="modelwire", no_args_is_help=True, add_completion=False,
    pretty_exceptions_enable=False,  # rich tracebacks print locals, which may hold keys
    help="One interface to every major LLM provider. Models are '<provider>/<model>'.",
)

ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="'<provider>/<model>', e.g. openai/gpt-4o-mini or mock/echo. "
    "Default: the first provider whose key is set, else the embedded local model.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the response as one JSON object.")]
NoStreamOpt = Annotated[bool, typer.Option("--no-stream", help="Wait for the whole response.")]
MaxTokensOpt = Annotated[int | None, typer.Option("--max-tokens", min=1,
                                                  help="Stop after this many output tokens.")]


def new_client() -> "AsyncClient":
    """The client every command uses (tests replace this)."""
    from ..client import AsyncClient
    return AsyncClient()


def _fail(err: BaseException) -> NoReturn:
    from ..errors import ConfigurationError
    message = " ".join(str(err).split()) or type(err).__name__
    sys.stdout.flush()
    print(f"error: {type(err).__name__}: {message}", file=sys.stderr)
    raise typer.Exit(2 if isinstance(err, ConfigurationError) else 1)


class _Terminated(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


_STOP_GRACE = 3.0  # seconds a terminated command has to clean up before it just exits


async def _until_terminated(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """``main()``, cancelled like Ctrl-C on SIGTERM or SIGHUP (``kill``, ``timeout``, a
    closed terminal): cleanup runs, so no program it started (claude-cli) outlives it.

    A Python-level handler, not the loop's: it runs even while the loop is stuck in
    blocking code, and arms a watchdog so that the command ends regardless."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    got: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        if got:  # a second one: no more patience
            os._exit(128 + signum)
        got.append(signum)
        if task is not None and not task.done():
            task.cancel()
            loop.call_soon_threadsafe(lambda: None)  # wake the loop
        watchdog = threading.Timer(_STOP_GRACE, os._exit, (128 + signum,))
        watchdog.daemon = True
        watchdog.start()

    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            previous[sig] = signal.signal(sig, on_signal)
        except (ValueError, OSError):  # not the main thread, or no such signal here
            pass
    try:
        return await main()
    except asyncio.CancelledError:
        if got:
            raise _Terminated(got[0]) from None
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(main: Callable[[], Coroutine[Any, Any, int]]) -> None:
    """Run one command's coroutine under the CLI error contract."""
    from ..errors import ModelwireError
    try:
        code = asyncio.run(_until_terminated(main))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except _Terminated as e:
        raise typer.Exit(128 + e.signum) from None
    except ModelwireError as e:
        _fail(e)
    except BrokenPipeError:  # `modelwire chat ... | head`: the reader left; stay quiet
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - flushing at exit must not fail
        raise typer.Exit(141) from None
    if code:
        raise typer.Exit(code)


def _prompt(prompt: str | None) -> str:
    """The argument, else stdin when it is piped."""
    if prompt is None:
        if sys.stdin is None or sys.stdin.isatty():
            _usage("no prompt: pass PROMPT or pipe text on stdin")
        prompt = sys.stdin.read()
        if prompt.endswith("\n"):
            prompt = prompt[:-1]
    if not prompt.strip():
        _usage("the prompt is empty")
    return prompt


def _usage(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


async def _stream_out(request: "StreamRequest", as_json: bool, reasoning: bool) -> "Response":
    """Write text deltas as they arrive (flushed), or only the final JSON."""
    from ..response import ReasoningDelta, TextDelta
    out, err = sys.stdout, sys.stderr
    dim = err.isatty() and not os.environ.get("NO_COLOR")
    tail, done = "", False  # last character written; reached the end cleanly
    thinking = False  # reasoning is on stderr and its line is still open
    try:
        async with request as stream:
            async for event in stream:
                if as_json:
                    continue
                if type(event) is TextDelta:
                    if thinking:
                        err.write("\n")
                        thinking = False
                    out.write(event.text)
                    out.flush()
                    tail = event.text[-1:] or tail
                elif type(event) is ReasoningDelta and reasoning:
                    err.write(f"\x1b[2m{event.text}\x1b[0m" if dim else event.text)
                    err.flush()
                    thinking = True
            response = stream.response
        done = True
        return response
    finally:  # end open lines even when the stream broke, so the error line stands alone
        if thinking:
            err.write("\n")
        if not as_json and ((tail and tail != "\n") or (done and not tail)):
            out.write("\n")
            out.flush()


def _finish(response: "Response", as_json: bool, streamed: bool) -> int:
    if as_json:
        _print_json(response.to_dict())
        return 0
    if not streamed:
        text = response.text
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    for call in response.tool_calls:  # nothing silently dropped
        print(f"tool call: {call.name}({json.dumps(call.arguments, ensure_ascii=False)})",
              file=sys.stderr)
    if response.finish_reason in ("length", "content_filter"):
        why = "the token limit" if response.finish_reason == "length" else "a content filter"
        print(f"modelwire: the response was cut short by {why} "
              f"(finish_reason={response.finish_reason})", file=sys.stderr)
    return 0


@app.command()
def chat(
    prompt: Annotated[str | None, typer.Argument(
        help="The user message. Read from stdin when omitted.", show_default=False)] = None,
    model: ModelOpt = None,
    system: Annotated[str | None, typer.Option("--system", "-s",
                                               help="A system message.")] = None,
    no_stream: NoStreamOpt = False,
    as_json: JsonOpt = False,
    temperature: Annotated[float | None, typer.Option("--temperature", "-t",
                                                      help="Sampling temperature.")] = None,
    max_tokens: MaxTokensOpt = None,
    reasoning: Annotated[bool, typer.Option(
        "--reasoning", help="Show the model's reasoning (dim, on stderr).")] = False,
) -> None:
    """Send one message and print the reply as it streams."""
    text = _prompt(prompt)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": text}]
    options: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}

    async def main() -> int:
        async with new_client() as client:
            if no_stream:
                response = await client.complete(model, messages, **options)
            else:
                response = await _stream_out(client.stream(model, messages, **options),
                                             as_json, reasoning)
            return _finish(response, as_json, streamed=not no_stream)

    _run(main)


@app.command()
def complete(
    prompt: Annotated[str | None, typer.Argument(
        help="The text to continue. Read from stdin when omitted.", show_default=False)] = None,
    model: ModelOpt = None,
    no_stream: NoStreamOpt = False,
    as_json: JsonOpt = False,
    max_tokens: MaxTokensOpt = None,
) -> None:
    """Plain text completion (no chat template): print the continuation."""
    text = _prompt(prompt)

    async def main() -> int:
        async with new_client() as client:
            if no_stream:
                response = await client.complete_text(model, text, max_tokens=max_tokens)
            else:
                response = await _stream_out(
                    client.stream_text(model, text, max_tokens=max_tokens), as_json, False)
            return _finish(response, as_json, streamed=not no_stream)

    _run(main)


@app.command()
def providers(as_json: JsonOpt = False) -> None:
    """List every provider: key set?, base URL, default model, wire format."""
    from ..errors import ModelwireError
    try:
        rows = render.provider_rows()
    except ModelwireError as e:  # a plugin entry point that registers a bad row, say
        _fail(e)
    if as_json:
        _print_json(rows)
        return
    render.print_table("modelwire providers",
                       ["provider", "key", "base URL", "default model", "wire"],
                       render.provider_table_rows(rows))


@app.command()
def health(
    names: Annotated[list[str] | None, typer.Argument(
        metavar="[PROVIDER]...", help="Only these providers (default: every configured one).",
        show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Probe providers (no tokens spent). Exit 1 if one with a key set is not usable."""

    async def main() -> int:
        async with new_client() as client:
            check = getattr(client, "health_check", None)
            if check is None:
                from ..errors import UnsupportedFeatureError
                raise UnsupportedFeatureError("this modelwire build has no health_check()")
            reports = [render.report_dict(r) for r in await check(names or None)]
        if as_json:
            _print_json(reports)
        else:
            render.print_table("modelwire health",
                               ["provider", "key", "reachable", "latency", "breaker", "error"],
                               render.health_table_rows(reports))
        # keyless rows (local servers, the embedded model) inform; they do not fail the check
        bad = [r for r in reports
               if r.get("key_present") and (r.get("reachable") is False or r.get("error"))]
        return 1 if bad else 0

    _run(main)


from . import batch as _batch  # noqa: E402,F401 - registers `modelwire batch`
