"""Regression tests from attacking conversations: corrupt files, budgets, failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelwire
from modelwire import AsyncClient, Client, Message, ToolCall
from modelwire.conversation import AsyncConversation
from modelwire.errors import ConfigurationError, ModelwireError
from modelwire.mock import MockReply

_BASE = {"format": "modelwire.conversation", "version": 1, "model": "mock/m"}


@pytest.mark.parametrize("data", [
    {**_BASE, "messages": [{"content": "no role"}]},
    {**_BASE, "messages": [{"role": "wizard", "content": "x"}]},
    {**_BASE, "messages": ["hello"]},
    {**_BASE, "messages": {"a": 1}},
    {**_BASE, "messages": [{"role": "user", "content": 5}]},
    {**_BASE, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
    {**_BASE, "messages": [{"role": "user", "content": ["bare string part"]}]},
    {**_BASE, "messages": [{"role": "assistant", "tool_calls": [{"name": "x"}]}]},
    {**_BASE, "messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "name": "x", "arguments": [1]}]}]},
    {**_BASE, "messages": [{"role": "user", "tool_calls": [{"id": "c", "name": "x"}]}]},
    {**_BASE, "messages": [{"role": "tool", "content": "result without its call id"}]},
    {**_BASE, "settings": [1, 2]},
    {**_BASE, "settings": {"system": "clashes with an argument"}},
    {**_BASE, "summary": 5},
    {**_BASE, "model": 5},
    {**_BASE, "summary_cache": [1]},
    {**_BASE, "summary_cache": {"k": 1}},
    {**_BASE, "version": 2},
])
def test_a_tampered_file_is_a_typed_error(tmp_path: Path, data: dict[str, Any]) -> None:
    path = tmp_path / "conv.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigurationError):
        AsyncConversation.load(path, AsyncClient(middleware=[]))


async def test_keep_recent_zero_never_summarizes_the_question_away() -> None:
    c = AsyncClient(middleware=[])
    conv = c.conversation("mock/m", max_context_tokens=5, keep_recent=0)
    conv.messages = [Message("user", "first " * 30), Message("assistant", "answer " * 30)]
    c.mock.script(MockReply("SUMMARY"), MockReply("two"))
    await conv.send("second question")
    sent = c.mock.requests[-1]["messages"]
    assert sent[-1] == {"role": "user", "content": "second question"}
    assert "SUMMARY" in sent[0]["content"]


async def test_a_failed_send_leaves_no_unanswered_question_behind() -> None:
    c = AsyncClient(middleware=[], max_retries=0)
    conv = c.conversation("mock/m")
    c.mock.script(MockReply("hello"))
    await conv.send("hi")
    c.mock.script(MockReply(status=400, error="bad"))
    with pytest.raises(ModelwireError):
        await conv.send("again")
    assert [m.role for m in conv.messages] == ["user", "assistant"]
    c.mock.script(MockReply("ok"))
    await conv.send("again")  # the retry does not send the question twice in a row
    assert [m["role"] for m in c.mock.requests[-1]["messages"]] == ["user", "assistant", "user"]


def test_a_sync_stream_abandoned_early_is_closed_and_not_history() -> None:
    with Client(middleware=[]) as c:
        conv = c.conversation("mock/m")
        c.mock.script(MockReply("one two three four five"))
        for _event in conv.stream("hi"):
            break
        assert conv.messages == []
        c.mock.script(MockReply("fine"))
        assert conv.send("hi").text == "fine"
        assert [m.role for m in conv.messages] == ["user", "assistant"]


# --- the property: compaction never splits a tool call from its result --------------


@st.composite
def histories(draw: Any) -> list[Message]:
    """Random, well-formed histories: user turns, each with 0-3 tool rounds."""
    out: list[Message] = []
    n = 0
    for _ in range(draw(st.integers(1, 6))):
        out.append(Message("user", "u" * draw(st.integers(0, 80))))
        for _ in range(draw(st.integers(0, 3))):
            calls = []
            for _ in range(draw(st.integers(1, 3))):
                n += 1
                calls.append(ToolCall(f"call_{n}", "f", {}, "{}"))
            out.append(Message("assistant", "", calls))
            out += [Message("tool", "r" * draw(st.integers(0, 80)), tool_call_id=c.id,
                            name="f") for c in calls]
        if draw(st.booleans()):
            out.append(Message("assistant", "a" * draw(st.integers(0, 80))))
    return out


@settings(max_examples=150, deadline=None)
@given(histories(), st.integers(0, 8), st.integers(1, 200))
def test_compaction_keeps_calls_with_results_and_opens_with_a_user_turn(
        history: list[Message], keep_recent: int, budget: int) -> None:
    import asyncio

    async def run() -> None:
        c = AsyncClient(middleware=[])
        c.mock.script(*[MockReply("summary")] * 3)
        conv = c.conversation("mock/m", max_context_tokens=budget, keep_recent=keep_recent)
        conv.messages = list(history)
        did = await conv.compact()
        kept = conv.messages
        assert kept == history[len(history) - len(kept):]  # a suffix, verbatim
        if did:
            assert kept and kept[0].role == "user"
            last_user = max(i for i, m in enumerate(history) if m.role == "user")
            assert len(history) - len(kept) <= last_user  # the latest question is kept
        ids = {tc.id for m in kept for tc in m.tool_calls}
        answered = {m.tool_call_id for m in kept if m.role == "tool"}
        assert ids == answered

    asyncio.run(run())


def test_tool_calls_round_trip_through_save_and_load(tmp_path: Path) -> None:
    bad = ToolCall("c1", "f", None, "{oops", arguments_error="not JSON",
                   provider_data={"gemini": {"thoughtSignature": "c2ln"}})
    conv = AsyncClient(middleware=[]).conversation("mock/m")
    conv.messages = [Message("user", [modelwire.TextPart("see"),
                                      modelwire.ImagePart("data:image/png;base64,AAAA", "low")]),
                     Message("assistant", "", [bad]),
                     Message("tool", "error", tool_call_id="c1", name="f")]
    conv.save(tmp_path / "c.json")
    loaded = AsyncConversation.load(tmp_path / "c.json", AsyncClient(middleware=[]))
    assert loaded.messages == conv.messages


def test_calls_waiting_for_approval_are_resumed_or_declined() -> None:
    calls: list[str] = []

    @modelwire.tool(requires_approval=True)
    def delete(path: str) -> str:
        """Delete a file."""
        calls.append(path)
        return "deleted " + path

    with Client(middleware=[]) as c:
        conv = c.conversation("mock/m", tools=[delete])
        c.mock.script(MockReply(tool_calls=[("delete", {"path": "/a"})]))
        conv.send("delete /a")
        assert [p.name for p in conv.pending] == ["delete"]
        c.mock.script(MockReply("deleted it"))
        assert conv.send(None, approved=[conv.pending[0].id]).text == "deleted it"
        assert calls == ["/a"] and conv.pending == []
        assert [m.role for m in conv.messages] == ["user", "assistant", "tool", "assistant"]

        c.mock.script(MockReply(tool_calls=[("delete", {"path": "/b"})]), MockReply("fine"))
        conv.send("delete /b")
        conv.send("never mind")  # moving on declines the waiting call
        sent = c.mock.requests[-1]["messages"]
        assert [m["role"] for m in sent[-3:]] == ["assistant", "tool", "user"]
        assert "not approved" in sent[-2]["content"] and calls == ["/a"]
        with pytest.raises(ConfigurationError, match="none are"):
            conv.send(None)


async def test_concurrent_sends_take_turns() -> None:
    import asyncio
    c = AsyncClient(middleware=[])
    conv = c.conversation("mock/m")
    c.mock.script(MockReply("one"), MockReply("two"))
    await asyncio.gather(conv.send("first"), conv.send("second"))
    roles = [m.role for m in conv.messages]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert [m.text for m in conv.messages] == ["first", "one", "second", "two"]


async def test_an_empty_summary_does_not_drop_the_turns_it_would_replace() -> None:
    c = AsyncClient(middleware=[])
    conv = c.conversation("mock/m", max_context_tokens=5, keep_recent=0)
    conv.messages = [Message("user", "first " * 30), Message("assistant", "answer " * 30),
                     Message("user", "again")]
    c.mock.script(MockReply(""))
    assert not await conv.compact()
    assert len(conv.messages) == 3 and conv.summary is None and conv.summary_cache == {}


async def test_the_summary_cache_saved_with_the_conversation_stays_bounded() -> None:
    c = AsyncClient(middleware=[])
    conv = c.conversation("mock/m", max_context_tokens=5, keep_recent=0)
    for n in range(40):
        conv.messages = [Message("user", f"q{n} " * 30), Message("assistant", "a " * 30),
                         Message("user", "next")]
        c.mock.script(MockReply(f"summary {n}"))
        assert await conv.compact()
    assert len(conv.summary_cache) == 32
    assert "summary 39" in conv.summary_cache.values()
    assert "summary 0" not in conv.summary_cache.values()


def test_what_a_file_cannot_hold_is_named_on_load(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import pydantic

    class City(pydantic.BaseModel):
        name: str

    def lookup(key: str) -> str:
        return key

    c = AsyncClient(middleware=[])
    conv = c.conversation("mock/m", tools=[lookup], response_format=City, temperature=0.5)
    conv.save(tmp_path / "c.json")
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["tools"] == ["lookup"] and saved["unsaved_settings"] == ["response_format"]
    with caplog.at_level(logging.WARNING, logger="modelwire"):
        bare = AsyncConversation.load(tmp_path / "c.json", c)
    assert "tool 'lookup'" in caplog.text and "setting response_format=" in caplog.text
    assert bare.settings == {"temperature": 0.5}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="modelwire"):
        full = AsyncConversation.load(tmp_path / "c.json", c, tools=[lookup],
                                      response_format=City)
    assert caplog.text == ""
    assert full.settings == {"temperature": 0.5, "response_format": City}


@pytest.mark.parametrize("streamed", [False, True])
async def test_tools_that_ran_before_a_turn_failed_stay_history(streamed: bool) -> None:
    ran: list[str] = []

    def delete(path: str) -> str:
        ran.append(path)
        return "deleted " + path

    c = AsyncClient(middleware=[], max_retries=0)
    conv = c.conversation("mock/m", tools=[delete])
    c.mock.script(MockReply(tool_calls=[("delete", {"path": "/a"})]),
                  MockReply(status=500, error="down"))
    with pytest.raises(ModelwireError):
        if streamed:
            async for _ in conv.stream("delete /a"):
                pass
        else:
            await conv.send("delete /a")
    assert ran == ["/a"]
    assert [m.role for m in conv.messages] == ["user", "assistant", "tool"]
    c.mock.script(MockReply("done before"))
    await conv.send("did it work?")
    sent = [m["role"] for m in c.mock.requests[-1]["messages"]]
    assert sent == ["user", "assistant", "tool", "user"] and ran == ["/a"]


async def test_max_turns_keeps_the_tool_work_in_the_conversation() -> None:
    def tick() -> str:
        return "tick"

    c = AsyncClient(middleware=[])
    conv = c.conversation("mock/m", tools=[tick], max_turns=2)
    c.mock.script(*[MockReply(tool_calls=[("tick", {})])] * 2)
    with pytest.raises(modelwire.MaxTurnsExceededError):
        await conv.send("go")
    assert [m.role for m in conv.messages] == ["user", "assistant", "tool", "assistant",
                                               "tool"]


async def test_a_bound_method_tool_is_built_once_per_conversation() -> None:
    built: list[int] = []

    class Shop:
        def price(self, item: str) -> int:
            return len(item)

    from modelwire.tools import schema
    real = schema.function_tool

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(1)
        return real(*args, **kwargs)

    schema.function_tool = counting  # type: ignore[assignment]
    try:
        c = AsyncClient(middleware=[])
        conv = c.conversation("mock/m", tools=[Shop().price])
        for _ in range(3):
            c.mock.script(MockReply(tool_calls=[("price", {"item": "tea"})]), MockReply("3"))
            await conv.send("price of tea?")
    finally:
        schema.function_tool = real  # type: ignore[assignment]
    assert len(built) == 1


@pytest.mark.parametrize("empty", ["", "   \n"])
async def test_an_empty_message_is_refused_before_traffic(empty: str) -> None:
    from modelwire.errors import InvalidMessageError
    c = AsyncClient(middleware=[])
    conv = c.conversation("mock/m")
    with pytest.raises(InvalidMessageError, match="empty"):
        await conv.send(empty)
    assert conv.messages == [] and c.mock.requests == []
