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
    from ..client import AsyncClient
    from ..response import Response
    from ..streaming import StreamRequest

app = typer.Typer(
    name="modelwire", no_args_is_help=True, add_completion=False,
    pretty_exceptions_enable=False,  # rich tracebacks print locals, which may hold keys
    help="One interface to every major LLM provider. Models are '<provider>/<model>'.",
)

ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="'<provider>/<model>' (e.g. openai/gpt-4o-mini, mock/echo) or an "
    "alias (see `modelwire aliases`). "
    "Default: the first provider whose key is set, else the embedded local model.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the response as one JSON object.")]
NoStreamOpt = Annotated[bool, typer.Option("--no-stream", help="Wait for the whole response.")]
MaxTokensOpt = Annotated[int | None, typer.Option("--max-tokens", min=1,
                                                  help="Stop after this many output tokens.")]
TemperatureOpt = Annotated[float | None, typer.Option("--temperature", "-t",
                                                      help="Sampling temperature.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Sampling seed.")]
StopOpt = Annotated[list[str] | None, typer.Option(
    "--stop", help="Stop at this string (repeat for several).", show_default=False)]
TopPOpt = Annotated[float | None, typer.Option("--top-p", help="Nucleus sampling mass.")]
TimeoutOpt = Annotated[float | None, typer.Option(
    "--timeout", min=0.001, help="Seconds for the whole call, retries included.")]
FallbackOpt = Annotated[list[str] | None, typer.Option(
    "--fallback", help="A model to try when the first fails (repeat for several, in order).",
    show_default=False)]

CacheOpt = Annotated[bool, typer.Option(
    "--cache", help="Answer a repeated request from the disk cache "
                    "(~/.cache/modelwire/responses.sqlite3; sampled calls too).")]


def _call_options(temperature: float | None, max_tokens: int | None, seed: int | None,
                  stop: list[str] | None, top_p: float | None, timeout: float | None,
                  fallback: list[str] | None) -> dict[str, Any]:
    """The call's keyword arguments; options not given are left to the defaults."""
    options = {"temperature": temperature, "max_tokens": max_tokens, "seed": seed,
               "stop": stop or None, "top_p": top_p, "timeout": timeout,
               "fallbacks": fallback or None}
    return {k: v for k, v in options.items() if v is not None}


def _version(value: bool) -> None:
    if value:
        from .. import __version__
        print(f"modelwire {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version and exit.")] = False,
    verbose: Annotated[int, typer.Option(
        "--verbose", "-v", count=True, show_default=False,
        help="Log what modelwire does on stderr: -v retries, fallbacks and breakers; "
             "-vv every request too (same as MODELWIRE_LOG=info / debug); -vvv also "
             "llama.cpp's own log (thousands of lines a model load).")] = 0,
) -> None:
    """One interface to every major LLM provider. Models are '<provider>/<model>'."""
    import logging

    from ..hooks import configure_logging
    if verbose:
        configure_logging("DEBUG" if verbose > 1 else "INFO")
        # llama.cpp's DEBUG dump would bury the request lines -vv is asked for
        logging.getLogger("modelwire.llama").setLevel(
            logging.DEBUG if verbose > 2 else logging.INFO)


def new_client() -> "AsyncClient":
    """The client every command uses (tests replace this)."""
    from ..client import AsyncClient
    return AsyncClient()


def _client(cache: bool) -> "AsyncClient":
    """``new_client()``, or with ``--cache`` a client on the disk cache."""
    if not cache:
        return new_client()
    from ..cache import DiskCache
    from ..client import AsyncClient
    return AsyncClient(cache=DiskCache())


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
    where = "PROMPT"
    if prompt is None:
        if sys.stdin is None or sys.stdin.isatty():
            _usage("no prompt: pass PROMPT or pipe text on stdin")
        prompt, where = _read_stdin(), "stdin"
        if prompt.endswith("\n"):
            prompt = prompt[:-1]
    try:  # undecodable bytes arrive as lone surrogates, which no provider can take
        prompt.encode("utf-8")
    except UnicodeEncodeError as e:
        _usage(f"{where} is not valid text in the terminal's encoding (an undecodable "
               f"byte at position {e.start})")
    if not prompt.strip():
        _usage("the prompt is empty")
    return prompt


def _read_stdin() -> str:
    """stdin decoded strictly in its encoding: a binary file is a usage error, not a
    UnicodeDecodeError traceback."""
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:  # replaced by a text-only stream (tests)
        return sys.stdin.read()
    data: bytes = raw.read()
    encoding: str = getattr(sys.stdin, "encoding", None) or "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        _usage(f"stdin is not {encoding} text: byte 0x{data[e.start]:02x} at position "
               f"{e.start} cannot be decoded")


def _stdout_is_utf8() -> bool:
    import codecs
    try:
        return codecs.lookup(getattr(sys.stdout, "encoding", None) or "ascii").name == "utf-8"
    except LookupError:
        return False


def _usage(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def _print_json(data: Any) -> None:
    # exact on any terminal: non-ASCII as \u escapes where stdout is not UTF-8
    sys.stdout.write(json.dumps(data, ensure_ascii=not _stdout_is_utf8()) + "\n")
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
        if call.arguments is None:  # shown as the model wrote them, with the reason
            print(f"tool call: {call.name}({call.raw_arguments}) [{call.arguments_error}]",
                  file=sys.stderr)
        else:
            print(f"tool call: {call.name}({json.dumps(call.arguments, ensure_ascii=False)})",
                  file=sys.stderr)
    if response.refusal:
        print("modelwire: the model refused (see the text above)", file=sys.stderr)
    if not response.text and not response.tool_calls and not response.refusal:
        # an empty line alone reads like a glitch (a base model asked to chat, say)
        print(f"modelwire: the model's answer is empty (finish_reason="
              f"{response.finish_reason}); a base model answers `modelwire complete`, "
              "not chat", file=sys.stderr)
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
    temperature: TemperatureOpt = None,
    max_tokens: MaxTokensOpt = None,
    seed: SeedOpt = None,
    stop: StopOpt = None,
    top_p: TopPOpt = None,
    timeout: TimeoutOpt = None,
    fallback: FallbackOpt = None,
    reasoning: Annotated[bool, typer.Option(
        "--reasoning", help="Show the model's reasoning (dim, on stderr).")] = False,
    resume: Annotated[bool, typer.Option(
        "--continue", "-c", help="Continue the last conversation (kept in the data dir).")
    ] = False,
    cache: CacheOpt = False,
) -> None:
    """Send one message and print the reply as it streams.

    With no PROMPT on a terminal: an interactive multi-turn session (/exit, /save).
    """
    from . import session
    if (prompt is None and session.stdin_is_terminal()) or resume:
        if as_json or no_stream or cache:
            _usage("--json, --no-stream and --cache are for one-shot chats")
        _run(lambda: _session(prompt, model, system, resume,
                              {"temperature": temperature, "max_tokens": max_tokens}))
        return
    text = _prompt(prompt)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": text}]
    options = _call_options(temperature, max_tokens, seed, stop, top_p, timeout, fallback)
    if cache:
        options["cache"] = True

    async def main() -> int:
        async with _client(cache) as client:
            if no_stream:
                response = await client.complete(model, messages, **options)
            else:
                response = await _stream_out(client.stream(model, messages, **options),
                                             as_json, reasoning)
            return _finish(response, as_json, streamed=not no_stream)

    _run(main)


async def _session(prompt: str | None, model: str | None, system: str | None, resume: bool,
                   settings: dict[str, Any]) -> int:
    from . import session
    async with new_client() as client:
        conv = session.open_conversation(client, model, system, resume, **settings)
        if prompt is None and session.stdin_is_terminal():
            return await session.interactive(conv, input, sys.stdout, sys.stderr)
        await session.turn(conv, _prompt(prompt), sys.stdout)
        session.save_last(conv, sys.stderr)
    return 0


@app.command()
def complete(
    prompt: Annotated[str | None, typer.Argument(
        help="The text to continue. Read from stdin when omitted.", show_default=False)] = None,
    model: ModelOpt = None,
    no_stream: NoStreamOpt = False,
    as_json: JsonOpt = False,
    temperature: TemperatureOpt = None,
    max_tokens: MaxTokensOpt = None,
    seed: SeedOpt = None,
    stop: StopOpt = None,
    top_p: TopPOpt = None,
    timeout: TimeoutOpt = None,
    fallback: FallbackOpt = None,
    cache: CacheOpt = False,
) -> None:
    """Plain text completion (no chat template): print the continuation."""
    text = _prompt(prompt)
    options = _call_options(temperature, max_tokens, seed, stop, top_p, timeout, fallback)
    if cache:
        options["cache"] = True

    async def main() -> int:
        async with _client(cache) as client:
            if no_stream:
                response = await client.complete_text(model, text, **options)
            else:
                response = await _stream_out(
                    client.stream_text(model, text, **options), as_json, False)
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
    render.print_table("modelwire providers", render.PROVIDER_COLUMNS,
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


def _add_subcommands() -> None:
    from . import (
        batch,  # noqa: F401 - registers `modelwire batch`
        observe,  # noqa: F401 - registers bench, tokens, cost
    )
    from .aliases import aliases_app
    app.add_typer(aliases_app, name="aliases")


_add_subcommands()
