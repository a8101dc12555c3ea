"""The tool loop behind ``run_tools`` and ``stream_tools``.

Each turn: call the model (streamed or not) with the history and the tools;
if it asks for tools, run them (async functions gathered on the loop, sync
functions in a bounded thread pool; each under its timeout), append the
assistant message and one tool-result message per call, and go again, until
the model answers without tool calls.

Failures are information for the model, not crashes: arguments that did not
parse or do not validate, an unknown tool, a tool that raises or times out
each become an error tool result (a short message; the exception itself is
kept on the step). ``max_turns`` model calls without a final answer raise
:class:`~modelwire.errors.MaxTurnsExceededError` holding the transcript.

Approval: a tool marked ``requires_approval`` (or a tool given as a schema
only, with no function) is not run: the loop stops and hands the calls back
as ``result.pending``. To go on, call the loop again with ``result.messages``
and ``approved=[call ids]`` (or ``approved=True``); calls not approved are
answered "not approved by the user". A timed-out sync function keeps running
in its thread (Python cannot stop a thread; the thread is a daemon, so it does not
hold the process at exit); its result is discarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import math
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union

from ..errors import ConfigurationError, MaxTurnsExceededError
from ..response import Response, StreamEvent, ToolCall
from ..types import Message, MessageLike, Tool, ToolLike, to_messages, to_tools
from .schema import ArgumentsError, FunctionTool

if TYPE_CHECKING:
    from ..client import AsyncClient

_MAX_ERROR_CHARS = 500


@dataclass(slots=True)
class ModelStep:
    """One model call of the loop."""

    response: Response
    kind: Literal["model"] = "model"


@dataclass(slots=True)
class ToolStep:
    """One tool execution: what was asked, what came back, how long it took.

    ``content`` is what the model was sent. ``error`` is the short message it
    saw when the run failed, ``exception`` the full exception (if one was raised).
    """

    call: ToolCall
    arguments: dict[str, Any] | None
    result: Any = None
    content: str = ""
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)
    duration: float = 0.0
    kind: Literal["tool"] = "tool"
    fatal: bool = field(default=False, repr=False)


Step = Union[ModelStep, ToolStep]


@dataclass(slots=True, frozen=True)
class ToolResultEvent:
    """``stream_tools`` yields one as each tool finishes (in finishing order)."""

    step: ToolStep


@dataclass(slots=True)
class ToolRunResult:
    """``response``: the last model answer; ``messages``: the whole transcript;
    ``steps``: each model call and tool run; ``pending``: calls awaiting approval
    (the loop stopped for them; empty when the model gave its final answer)."""

    response: Response
    messages: list[Message]
    steps: list[Step]
    pending: list[ToolCall] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.response.text

    @property
    def tool_steps(self) -> list[ToolStep]:
        return [s for s in self.steps if isinstance(s, ToolStep)]


class ToolLoop:
    """One run of the loop; ``events()`` drives it, ``result`` holds the outcome."""

    def __init__(self, client: AsyncClient, model: str | None,
                 messages: Iterable[MessageLike] | str, tools: Sequence[ToolLike], *,
                 max_turns: int = 10, tool_timeout: float | None = None,
                 parallel: bool = True, max_workers: int = 8,
                 approved: Iterable[str] | bool | None = None, stream: bool = False,
                 **kwargs: Any) -> None:
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
            raise ConfigurationError(f"max_turns must be an int >= 1, got {max_turns!r}")
        if tool_timeout is not None and (isinstance(tool_timeout, bool)
                                         or not isinstance(tool_timeout, (int, float))
                                         or not 0 < tool_timeout < math.inf):
            raise ConfigurationError(
                f"tool_timeout must be a finite number of seconds > 0 (None: no limit), "
                f"got {tool_timeout!r}")
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigurationError(f"max_workers must be an int >= 1, got {max_workers!r}")
        if "tools" in kwargs or "stream" in kwargs:
            raise ConfigurationError("pass tools as the tools= argument of run_tools")
        self.client, self.model, self.kwargs = client, model, kwargs
        self.messages = to_messages(messages)
        self.start = len(self.messages)  # where this run's own messages begin
        self.tools = to_tools(tools)
        if not self.tools:
            raise ConfigurationError("run_tools needs at least one tool")
        self.by_name: dict[str, Tool] = {t.name: t for t in self.tools}
        self.max_turns, self.tool_timeout = max_turns, tool_timeout
        self.parallel, self.max_workers, self.stream = parallel, max_workers, stream
        if isinstance(approved, str):  # one id, not its characters
            approved = [approved]
        self.approved: set[str] | bool = (approved if isinstance(approved, bool)
                                          else set(approved or ()))
        self.steps: list[Step] = []
        self.result: ToolRunResult | None = None
        self._slots: asyncio.Semaphore | None = None  # sync tools running in threads
        self._last: Response | None = None

    # --- driving -------------------------------------------------------------

    async def events(self) -> AsyncIterator[StreamEvent | ToolResultEvent]:
        last: Response | None = None
        unanswered = _unanswered(self.messages)
        if isinstance(self.approved, set) and self.approved:
            unknown = self.approved - {c.id for c in unanswered}
            if unknown:
                waiting = ", ".join(repr(c.id) for c in unanswered) or "none"
                raise ConfigurationError(
                    f"approved= names calls that are not waiting for approval: "
                    f"{', '.join(map(repr, sorted(unknown)))}; the calls waiting are: "
                    f"{waiting} (pass result.messages and ids from result.pending)")
        if unanswered:  # resuming after an approval stop
            async with contextlib.aclosing(self._run_calls(unanswered, resuming=True)) as run:
                async for ev in run:  # closed here, not by the GC, if the caller stops
                    yield ev
            if self.result is not None:
                return
        for _ in range(self.max_turns):
            if self.steps and self.kwargs.get("tool_choice") not in (None, "auto", "none"):
                # a forced tool_choice ("required", a named tool) holds for the first call
                # only: kept, it would force a tool call every turn until max_turns
                self.kwargs = {k: v for k, v in self.kwargs.items() if k != "tool_choice"}
            if self.stream:
                async with self.client.stream(self.model, self.messages, tools=self.tools,
                                              **self.kwargs) as s:
                    async for event in s:
                        yield event
                    last = s.response
            else:
                last = await self.client.complete(self.model, self.messages,
                                                  tools=self.tools, **self.kwargs)
            self.steps.append(ModelStep(last))
            self.messages.append(last.to_message())
            if not last.tool_calls:
                self.result = ToolRunResult(last, self.messages, self.steps)
                return
            self._last = last
            async with contextlib.aclosing(self._run_calls(last.tool_calls,
                                                           resuming=False)) as run:
                async for ev in run:
                    yield ev
            if self.result is not None:
                return
        raise MaxTurnsExceededError(
            f"the model still asked for tools after max_turns={self.max_turns} calls; "
            "the transcript so far is in .transcript (raise max_turns to allow more)",
            transcript=self.messages, steps=self.steps)

    async def run(self) -> ToolRunResult:
        async for _ in self.events():
            pass
        assert self.result is not None
        return self.result

    # --- one turn's calls ------------------------------------------------------

    async def _run_calls(self, calls: Sequence[ToolCall],
                         resuming: bool) -> AsyncGenerator[ToolResultEvent, None]:
        runnable: list[ToolCall] = []
        pending: list[ToolCall] = []
        declined: list[ToolStep] = []
        for c in calls:
            t = self.by_name.get(c.name)
            gated = t is not None and (not isinstance(t, FunctionTool) or t.fn is None
                                       or t.requires_approval)
            if not gated or self.approved is True or (isinstance(self.approved, set)
                                           and c.id in self.approved):
                runnable.append(c)
            elif resuming:  # the caller went on without approving it
                declined.append(ToolStep(c, c.arguments, content="error: not approved by "
                                         "the user; do not retry this call",
                                         error="not approved by the user"))
            else:
                pending.append(c)
        done: dict[int, ToolStep] = {}
        if self.parallel and len(runnable) > 1:
            tasks = [asyncio.ensure_future(self._execute(c)) for c in runnable]
            try:
                for fut in asyncio.as_completed(tasks):
                    step = await fut
                    _reraise_fatal(step)
                    done[id(step.call)] = step
                    yield ToolResultEvent(step)
            finally:
                for task in tasks:
                    task.cancel()
                # the cancelled runs end here, not as "Task was destroyed" noise later
                await asyncio.gather(*tasks, return_exceptions=True)
        else:
            for c in runnable:
                step = await self._execute(c)
                _reraise_fatal(step)
                done[id(c)] = step
                yield ToolResultEvent(step)
        for step in [*(done[id(c)] for c in runnable), *declined]:
            self.steps.append(step)
            self.messages.append(Message("tool", step.content, tool_call_id=step.call.id,
                                         name=step.call.name))
        if pending:
            last = self._last if self._last is not None else _last_response(self.steps)
            self.result = ToolRunResult(last, self.messages, self.steps, pending)

    async def _execute(self, call: ToolCall) -> ToolStep:
        started = time.perf_counter()
        step = ToolStep(call, call.arguments)
        t = self.by_name.get(call.name)
        try:
            if call.arguments is None:
                raise _Refused(f"arguments did not parse: {call.arguments_error or 'not JSON'}"
                               "; send the arguments again as one valid JSON object")
            if t is None:
                names = ", ".join(sorted(self.by_name))
                raise _Refused(f"unknown tool {call.name!r}; the tools are: {names}")
            if not isinstance(t, FunctionTool) or t.fn is None:  # a schema, approved anyway
                raise _Refused(f"tool {call.name} has no function to run here")
            try:
                pos, kw = t.validate(call.arguments)
            except ArgumentsError as e:
                step.exception = e
                raise _Refused(f"invalid arguments for {call.name}: {e}") from None
            timeout = t.timeout if t.timeout is not None else self.tool_timeout
            try:
                step.result = await asyncio.wait_for(self._invoke(t, pos, kw), timeout)
                if isinstance(step.result, _Fatal):
                    raise step.result.exception
            except asyncio.TimeoutError as e:
                step.exception = e
                raise _Refused(f"tool {call.name} timed out after {timeout:g}s") from None
            except asyncio.CancelledError as e:
                if _cancelling():  # the loop itself is being cancelled: let it go
                    raise
                step.exception = e  # the tool cancelled itself: a failure like another
                raise _Refused(f"tool {call.name} was cancelled") from None
            except Exception as e:  # the tool's own failure: information for the model
                step.exception = e
                text = f"tool {call.name} raised {type(e).__name__}: {e}"
                raise _Refused(text[:_MAX_ERROR_CHARS]) from None
            except BaseException as e:  # KeyboardInterrupt, SystemExit: not the model's
                step.exception, step.fatal, step.result = e, True, None  # re-raised by
                step.error = f"tool {call.name} raised {type(e).__name__}"  # the caller
                return step
            step.content = _render(step.result)
        except _Refused as r:
            step.error = str(r)
            step.content = f"error: {r}"
        step.duration = time.perf_counter() - started
        return step

    async def _invoke(self, t: FunctionTool, pos: list[Any], kw: dict[str, Any]) -> Any:
        """The tool's result. A KeyboardInterrupt/SystemExit comes back as a _Fatal
        value: raised inside wait_for's task, asyncio would let it escape the event
        loop itself instead of reaching run_tools' caller."""
        assert t.fn is not None
        try:
            if t.is_async:
                result = await t.fn(*pos, **kw)
            else:
                ctx = contextvars.copy_context()
                result = await self._in_thread(functools.partial(ctx.run, t.fn, *pos, **kw))
            if inspect.isawaitable(result):  # a partial or wrapper around an async function
                result = await result
            if inspect.isasyncgen(result):  # an async generator tool: all it yields
                result = [item async for item in result]
        except (KeyboardInterrupt, SystemExit) as e:
            return _Fatal(e)
        return result

    async def _in_thread(self, fn: Any) -> Any:
        """``fn()`` in a daemon thread, at most ``max_workers`` at once (1 when not
        parallel). Daemon, not a ThreadPoolExecutor's worker: a timed-out tool keeps
        running (Python cannot stop a thread) but must not hold the process at exit,
        which a pool's worker does until the function returns."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_workers if self.parallel else 1)
        slots = self._slots
        await slots.acquire()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()

        def run() -> None:
            try:
                outcome: tuple[bool, Any] = (True, fn())
            except BaseException as e:  # handed to the awaiting task, which decides
                outcome = (False, e)
            try:
                loop.call_soon_threadsafe(_settle, done, outcome, slots)
            except RuntimeError:  # the loop has closed: nobody is waiting any more
                pass

        try:
            threading.Thread(target=run, name="modelwire-tool", daemon=True).start()
        except BaseException:
            slots.release()
            raise
        return await done


def _settle(done: asyncio.Future[Any], outcome: tuple[bool, Any],
            slots: asyncio.Semaphore) -> None:
    slots.release()  # the thread has ended: its slot is free (even after a timeout)
    if done.done():  # the wait timed out or was cancelled: the result is discarded
        return
    ok, value = outcome
    if ok:
        done.set_result(value)
    else:
        done.set_exception(value)


class _Refused(Exception):
    """Internal: a tool run that ends as an error result for the model."""


@dataclass(slots=True, frozen=True)
class _Fatal:
    exception: BaseException


def _cancelling() -> bool:
    """Whether the current task was asked to cancel (as opposed to a tool raising
    CancelledError on its own). Python 3.10 cannot tell: treat it as a real cancel."""
    task = asyncio.current_task()
    counter = getattr(task, "cancelling", None)
    return counter is None or bool(counter())


def _reraise_fatal(step: ToolStep) -> None:
    if step.fatal and step.exception is not None:
        raise step.exception


def _render(value: Any) -> str:
    """A tool's return value as the text the model reads."""
    if isinstance(value, str):
        return value
    from pydantic_core import to_json  # pydantic is present: FunctionTool needs it
    for bytes_mode in ("utf8", "base64"):  # odd objects inside become their str()
        try:
            return to_json(value, fallback=str, bytes_mode=bytes_mode).decode()
        except Exception:
            continue
    return str(value)  # not JSON-able at all: say what it is


def _unanswered(messages: list[Message]) -> list[ToolCall]:
    """Tool calls of the last assistant message that no later tool message answers."""
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if m.role == "assistant":
            answered = {x.tool_call_id for x in messages[i + 1:] if x.role == "tool"}
            return [c for c in m.tool_calls if c.id not in answered]
        if m.role != "tool":
            return []
    return []


def _last_response(steps: list[Step]) -> Response:
    for s in reversed(steps):
        if isinstance(s, ModelStep):
            return s.response
    return Response(finish_reason="tool_calls")  # resumed with no model call yet


class ToolStream:
    """What ``stream_tools`` returns: ``async for event in ts``; ``.result`` after."""

    def __init__(self, loop: ToolLoop) -> None:
        self._loop = loop
        self._events = loop.events()

    def __aiter__(self) -> AsyncIterator[StreamEvent | ToolResultEvent]:
        return self._events

    async def aclose(self) -> None:
        await self._events.aclose()  # type: ignore[attr-defined]

    @property
    def result(self) -> ToolRunResult:
        if self._loop.result is None:
            raise ConfigurationError("the tool stream is not finished: iterate it to the end")
        return self._loop.result
