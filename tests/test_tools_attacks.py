"""Regression tests from attacking the tool features as a careless caller / hostile model."""

from __future__ import annotations

import asyncio
import datetime
import functools
from typing import Any

import pytest

import modelwire
from modelwire import AsyncClient, Tool
from modelwire.errors import ConfigurationError, InvalidParameterError
from modelwire.mock import MockReply


def client() -> AsyncClient:
    return AsyncClient(middleware=[])


def add(a: int, b: int) -> int:
    return a + b


class Counter:
    async def bump(self, by: int) -> int:
        """Bump the counter.

        Args:
            by: How much.
        """
        await asyncio.sleep(0)
        return by + 1


async def test_a_partial_of_an_async_method_is_awaited_and_named_after_it() -> None:
    t = Tool.from_function(functools.partial(Counter().bump))
    assert t.name == "bump" and t.is_async and t.description == "Bump the counter."
    c = client()
    c.mock.script(MockReply(tool_calls=[("bump", {"by": 2})]), MockReply("ok"))
    result = await c.run_tools("mock/m", "go", tools=[t])
    assert result.tool_steps[0].content == "3" and result.tool_steps[0].error is None


async def test_a_sync_wrapper_returning_a_coroutine_is_awaited() -> None:
    async def inner(x: int) -> int:
        return x * 2

    def wrapper(x: int) -> Any:  # e.g. a decorator that hides the coroutine function
        return inner(x)

    c = client()
    c.mock.script(MockReply(tool_calls=[("wrapper", {"x": 4})]), MockReply("ok"))
    result = await c.run_tools("mock/m", "go", tools=[wrapper])
    assert result.tool_steps[0].content == "8"


def test_a_lambda_needs_a_name() -> None:
    with pytest.raises(ConfigurationError, match="name="):
        Tool.from_function(lambda a: a)
    assert Tool.from_function(lambda a: a, name="echo").name == "echo"


@pytest.mark.parametrize("name", ["my tool", "x" * 65, "ok.v1", "naïve", ""])
async def test_tool_names_providers_reject_are_refused_before_traffic(name: str) -> None:
    c = client()
    with pytest.raises(InvalidParameterError):
        await c.complete("mock/m", "hi", tools=[Tool(name)])
    assert c.mock.requests == []


async def test_two_tools_with_one_name_are_refused() -> None:
    c = client()
    with pytest.raises(InvalidParameterError, match="two tools are named 'add'"):
        await c.run_tools("mock/m", "hi", tools=[add, Tool.from_function(str.upper,
                                                                       name="add")])
    assert c.mock.requests == []


async def test_results_json_cannot_carry_still_reach_the_model_as_json() -> None:
    class Custom:
        def __str__(self) -> str:
            return "custom!"

    def weird() -> object:
        return {"when": datetime.date(2020, 1, 2), "s": {1}, "c": Custom(), "b": b"\xff"}

    c = client()
    c.mock.script(MockReply(tool_calls=[("weird", {})]), MockReply("ok"))
    result = await c.run_tools("mock/m", "go", tools=[weird])
    import json
    sent = json.loads(result.tool_steps[0].content)
    assert sent["when"] == "2020-01-02" and sent["s"] == [1] and sent["c"] == "custom!"
    assert isinstance(sent["b"], str)


def _kbi() -> None:
    raise KeyboardInterrupt


async def _akbi() -> None:
    raise KeyboardInterrupt


def _exit() -> None:
    raise SystemExit(3)


@pytest.mark.parametrize("fatal", [_kbi, _akbi, _exit])
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("timeout", [None, 30.0])
async def test_keyboard_interrupt_and_system_exit_reach_the_caller(
        fatal: Any, parallel: bool, timeout: float | None) -> None:
    """Not swallowed as an error result, and not escaping the event loop from a child
    task (asyncio re-raises them out of run_forever): the caller's await raises it."""
    started = asyncio.Event()

    async def other() -> str:
        started.set()
        await asyncio.sleep(3600)
        return "never"

    tool = Tool.from_function(fatal, name="fatal")
    c = client()
    calls = [("other", {}), ("fatal", {})] if parallel else [("fatal", {})]
    c.mock.script(MockReply(tool_calls=calls), MockReply("unreachable"))
    expected = SystemExit if fatal is _exit else KeyboardInterrupt
    with pytest.raises(expected):
        await c.run_tools("mock/m", "go", tools=[tool, other], tool_timeout=timeout)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_a_tool_raising_cancelled_error_is_an_error_result() -> None:
    async def gives_up() -> None:
        raise asyncio.CancelledError

    c = client()
    c.mock.script(MockReply(tool_calls=[("gives_up", {}), ("add", {"a": 1, "b": 1})]),
                  MockReply("ok"))
    result = await c.run_tools("mock/m", "go", tools=[gives_up, add])
    assert result.text == "ok"
    assert [s.content for s in result.tool_steps] == ["error: tool gives_up was cancelled", "2"]


async def test_cancelling_the_loop_still_cancels_it_and_its_tools() -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.set()

    c = client()
    c.mock.script(MockReply(tool_calls=[("forever", {}), ("forever", {})]))
    task = asyncio.ensure_future(c.run_tools("mock/m", "go", tools=[forever]))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stopped.is_set()


async def test_approved_as_a_single_id_string_or_unknown_ids() -> None:
    gated = modelwire.tool(requires_approval=True)(add)
    c = client()
    c.mock.script(MockReply(tool_calls=[("add", {"a": 1, "b": 2}), ("add", {"a": 3, "b": 4})]))
    first = await c.run_tools("mock/m", "go", tools=[gated])
    ids = [p.id for p in first.pending]
    with pytest.raises(ConfigurationError, match="not waiting for approval"):
        await c.run_tools("mock/m", first.messages, tools=[gated], approved=["bogus"])
    c.mock.script(MockReply("done"))
    resumed = await c.run_tools("mock/m", first.messages, tools=[gated], approved=ids[0])
    assert [s.content for s in resumed.tool_steps] == [
        "3", "error: not approved by the user; do not retry this call"]


def test_a_sync_tool_stuck_forever_does_not_hold_the_process_at_exit() -> None:
    import subprocess
    import sys
    script = (
        "import threading, modelwire\n"
        "from modelwire.mock import MockReply\n"
        "never = threading.Event()\n"
        "def stuck() -> str:\n"
        "    never.wait()\n"
        "    return 'never'\n"
        "c = modelwire.Client()\n"
        "c.mock.script(MockReply(tool_calls=[('stuck', {})]), MockReply('gave up'))\n"
        "r = c.run_tools('mock/m', 'q', tools=[stuck], tool_timeout=0.05)\n"
        "print(r.text, r.tool_steps[0].error)\n"
        "c.close()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)  # a pool's worker thread would hang here forever
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "gave up tool stuck timed out after 0.05s"


async def test_sync_tools_stay_within_max_workers() -> None:
    import threading
    lock = threading.Lock()
    running, peak = [0], [0]
    release = threading.Event()
    arrived = threading.Semaphore(0)

    def work(n: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        arrived.release()
        release.wait(30)
        with lock:
            running[0] -= 1
        return n

    async def let_go() -> None:
        await asyncio.to_thread(arrived.acquire)  # two are running...
        await asyncio.to_thread(arrived.acquire)
        release.set()  # ...then all may finish

    c = client()
    c.mock.script(MockReply(tool_calls=[("work", {"n": i}) for i in range(5)]), MockReply("ok"))
    result, _ = await asyncio.gather(
        c.run_tools("mock/m", "go", tools=[work], max_workers=2), let_go())
    assert [s.content for s in result.tool_steps] == ["0", "1", "2", "3", "4"]
    assert peak[0] == 2


def test_breaking_out_of_a_sync_tool_stream_stops_the_running_tools() -> None:
    import threading

    from modelwire import Client
    from modelwire.tools import ToolResultEvent
    stopped = threading.Event()

    async def slow() -> str:
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.set()
        return "never"

    async def quick() -> str:
        return "quick"

    with Client(middleware=[]) as c:
        c.mock.script(MockReply(tool_calls=[("slow", {}), ("quick", {})]), MockReply("x"))
        ts = c.stream_tools("mock/m", "go", tools=[slow, quick])
        for event in ts:
            if isinstance(event, ToolResultEvent):
                assert event.step.content == "quick"
                break
        assert stopped.is_set()  # not left running in the client's loop thread


async def test_breaking_out_of_an_async_tool_stream_and_closing_stops_the_tools() -> None:
    stopped = asyncio.Event()

    async def slow() -> str:
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.set()
        return "never"

    async def quick() -> str:
        return "quick"

    c = client()
    c.mock.script(MockReply(tool_calls=[("slow", {}), ("quick", {})]), MockReply("x"))
    ts = c.stream_tools("mock/m", "go", tools=[slow, quick])
    async for event in ts:
        if type(event).__name__ == "ToolResultEvent":
            break
    await ts.aclose()
    assert stopped.is_set()
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


@pytest.mark.parametrize("pname", ["json", "schema", "model_config", "validate", "copy",
                                   "model_dump", "model_fields", "_private"])
def test_parameters_may_share_names_with_pydantic_internals(pname: str) -> None:
    import warnings
    namespace: dict[str, Any] = {}
    exec(f"def echo({pname}: int, /, other: str = 'x') -> str:\n"
         f"    return f'{{{pname}}}-{{other}}'\n", namespace)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "shadows an attribute" warning either
        t = Tool.from_function(namespace["echo"])
    assert list(t.parameters["properties"]) == [pname, "other"]
    assert t.parameters["required"] == [pname]
    pos, kw = t.validate({pname: "7"})
    assert t(*pos, **kw) == "7-x"
    from modelwire.tools import ArgumentsError
    with pytest.raises(ArgumentsError, match=f"{pname}: Input should be a valid integer"):
        t.validate({pname: "seven"})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1, 0, "5"])
async def test_a_timeout_that_is_not_a_finite_positive_number_is_refused(bad: Any) -> None:
    async def f() -> int:
        return 1

    with pytest.raises(ConfigurationError, match="timeout"):
        await client().run_tools("mock/m", "q", tools=[f], tool_timeout=bad)
    with pytest.raises(ConfigurationError, match="timeout"):
        Tool.from_function(f, timeout=bad)


async def test_an_async_generator_tool_sends_what_it_yields() -> None:
    async def numbers(n: int) -> Any:
        for i in range(n):
            yield i

    c = client()
    c.mock.script(MockReply(tool_calls=[("numbers", {"n": 3})]), MockReply("ok"))
    result = await c.run_tools("mock/m", "q", tools=[numbers])
    assert result.tool_steps[0].content == "[0,1,2]"


def test_a_bad_tool_name_is_reported_where_the_tool_is_defined() -> None:
    with pytest.raises(ConfigurationError, match="pass name="):
        @modelwire.tool(name="get weather")
        def get_weather(city: str) -> str:
            return city


@pytest.mark.parametrize("fatal", [_kbi, _exit])
def test_the_sync_client_hands_keyboard_interrupt_back_and_keeps_working(fatal: Any) -> None:
    """Raised in the client's loop thread, it killed that thread and the caller waited
    forever; now it is raised in the caller's thread and the client still works."""
    import threading

    from modelwire import Client
    outcome: list[BaseException | None] = []
    c = Client(middleware=[])

    def call() -> None:
        c.mock.script(MockReply(tool_calls=[("fatal", {})]))
        try:
            c.run_tools("mock/m", "go", tools=[Tool.from_function(fatal, name="fatal")])
            outcome.append(None)
        except BaseException as e:  # what the caller's thread sees
            outcome.append(e)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(60)  # generous: it used to never return
    assert not worker.is_alive()
    assert isinstance(outcome[0], SystemExit if fatal is _exit else KeyboardInterrupt)
    c.mock.script(MockReply("still here"))
    assert c.complete("mock/m", "hi").text == "still here"
    c.close()


def test_tool_on_a_method_inside_its_class_says_to_use_the_bound_method() -> None:
    with pytest.raises(ConfigurationError, match="bound method"):
        class Weather:
            @modelwire.tool
            def get(self, city: str) -> str:
                return city

    class Weather2:
        def get(self, city: str) -> str:
            return city

    t = Tool.from_function(Weather2().get)
    assert list(t.parameters["properties"]) == ["city"]


def test_a_tool_decorated_twice_takes_the_new_options() -> None:
    once = modelwire.tool(add)
    twice = modelwire.tool(requires_approval=True, name="plus")(once)
    assert twice.name == "plus" and twice.requires_approval and twice.fn is add
    assert list(twice.parameters["properties"]) == ["a", "b"]


async def test_a_forced_tool_choice_holds_for_the_first_call_only() -> None:
    c = client()
    c.mock.script(MockReply(tool_calls=[("add", {"a": 1, "b": 2})]), MockReply("3"))
    result = await c.run_tools("mock/m", "go", tools=[add], tool_choice="required",
                               max_turns=2)
    assert result.text == "3"
    assert c.mock.requests[0]["tool_choice"] == "required"
    assert "tool_choice" not in c.mock.requests[1]  # else: a tool call every turn


def test_a_docstring_the_parser_trips_on_becomes_the_description() -> None:
    def odd(x: int) -> int:
        return x

    odd.__doc__ = "::    ::"  # docstring-parser raises IndexError on it
    t = Tool.from_function(odd)
    assert t.description == "::    ::" and list(t.parameters["properties"]) == ["x"]


def test_an_annotation_that_is_not_python_is_a_typed_error() -> None:
    namespace: dict[str, Any] = {}
    exec('def broken(x: "int[") -> int:\n    return 1\n', namespace)
    with pytest.raises(ConfigurationError, match="cannot read the signature"):
        Tool.from_function(namespace["broken"])
