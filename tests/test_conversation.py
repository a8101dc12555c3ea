"""Conversations: history, streaming, tools, summaries under a budget, save/load, providers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import modelwire
from modelwire import AsyncClient, Client, Message
from modelwire.conversation import AsyncConversation, Conversation
from modelwire.errors import ConfigurationError
from modelwire.mock import MockReply
from modelwire.response import TextDelta
from modelwire.testing import Fault, FaultServer


@modelwire.tool
def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"


async def test_send_keeps_both_turns_and_sends_the_history() -> None:
    c = AsyncClient(middleware=[])
    conv = c.conversation("mock/m", system="Be brief.")
    c.mock.script(MockReply("Hi Ann."), MockReply("Your name is Ann."))
    await conv.send("I am Ann.")
    r = await conv.send("What is my name?")
    assert r.text == "Your name is Ann."
    assert [m.role for m in conv.messages] == ["user", "assistant", "user", "assistant"]
    sent = c.mock.requests[1]["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert [m["content"] for m in sent[1:]] == ["I am Ann.", "Hi Ann.", "What is my name?"]


async def test_stream_appends_after_the_end() -> None:
    c = AsyncClient(middleware=[])
    conv = c.conversation("mock/m")
    c.mock.script(MockReply("one two three"))
    text = "".join([e.text async for e in conv.stream("count") if isinstance(e, TextDelta)])
    assert text == "one two three" and conv.messages[-1].text == "one two three"
    assert conv.last_response is not None and conv.last_response.text == text


async def test_tools_in_a_conversation_append_every_message() -> None:
    c = AsyncClient(middleware=[])
    conv = c.conversation("mock/m", tools=[lookup])
    c.mock.script(MockReply(tool_calls=[("lookup", {"key": "k"})]), MockReply("It is v."))
    await conv.send("look k up")
    assert [m.role for m in conv.messages] == ["user", "assistant", "tool", "assistant"]
    assert conv.messages[2].content == "value of k"


def test_response_to_message_for_hand_kept_history() -> None:
    with Client(middleware=[]) as c:
        c.mock.script(MockReply(tool_calls=[("lookup", {"key": "a"})]))
        r = c.complete("mock/m", "x", tools=[lookup])
        m = r.message
        assert m.role == "assistant" and m.tool_calls == r.tool_calls


def _filled(c: AsyncClient, n: int) -> AsyncConversation:
    conv = c.conversation("mock/m", max_context_tokens=60, summarize_with="mock/summarizer",
                          keep_recent=2)
    for i in range(n):
        conv.messages += [Message("user", f"question {i} " + "words " * 10),
                          Message("assistant", f"answer {i} " + "words " * 10)]
    return conv


async def test_older_turns_are_summarized_and_the_summary_cached() -> None:
    c = AsyncClient(middleware=[])
    conv = _filled(c, 3)
    c.mock.script(MockReply("SUMMARY: three questions were asked."), MockReply("ok"))
    await conv.send("next")
    summarize_request, answer_request = c.mock.requests
    assert summarize_request["model"] == "summarizer"
    assert "question 0" in summarize_request["messages"][1]["content"]
    assert conv.summary == "SUMMARY: three questions were asked."
    assert answer_request["messages"][0]["role"] == "system"
    assert "SUMMARY: three questions" in answer_request["messages"][0]["content"]
    assert "question 0" not in json.dumps(answer_request["messages"])
    assert answer_request["messages"][-1]["content"] == "next"  # recent turns verbatim
    assert conv.tokens()[1] == "estimated"

    # the same history again: the cached summary, no summarizer call
    again = _filled(c, 3)
    again.summary_cache = dict(conv.summary_cache)
    c.mock.clear()
    c.mock.script(MockReply("ok"))
    await again.send("next")
    assert len(c.mock.requests) == 1 and again.summary == conv.summary


async def test_a_tool_call_is_never_separated_from_its_result() -> None:
    c = AsyncClient(middleware=[])
    conv = c.conversation("mock/m", max_context_tokens=20, keep_recent=1)
    call = modelwire.ToolCall("call_1", "lookup", {"key": "k"}, '{"key": "k"}')
    conv.messages = [Message("user", "old " * 40), Message("assistant", "old answer"),
                     Message("user", "look it up"), Message("assistant", "", [call]),
                     Message("tool", "value " * 20, tool_call_id="call_1", name="lookup")]
    c.mock.script(MockReply("sum"))
    assert await conv.compact()
    # keep_recent=1 would cut between the call and its result: the cut moves back to the
    # user turn that led to them (Anthropic and Gemini need the history to open with one)
    assert [m.role for m in conv.messages] == ["user", "assistant", "tool"]


async def test_save_and_load_round_trip_without_keys(tmp_path: Path) -> None:
    c = AsyncClient(middleware=[], api_keys={"openai": "sk-secret-key-123"})
    conv = c.conversation("mock/m", system="sys", temperature=0.2)
    signed = modelwire.ToolCall("call_9", "lookup", {"key": "k"}, '{"key": "k"}',
                                provider_data={"gemini": {"thoughtSignature": "c2ln"}})
    conv.messages = [Message("user", [modelwire.TextPart("hi"),
                                      modelwire.ImagePart("https://x/y.png")]),
                     Message("assistant", "", [signed]),
                     Message("tool", "v", tool_call_id="call_9", name="lookup")]
    conv.summary = "earlier"
    path = tmp_path / "conv.json"
    conv.save(path)
    text = path.read_text()
    assert "sk-secret" not in text
    loaded = AsyncConversation.load(path, c, tools=[lookup])
    assert loaded.messages == conv.messages and loaded.summary == "earlier"
    assert loaded.settings == {"temperature": 0.2} and loaded.system == "sys"
    c.mock.script(MockReply("again"))
    await loaded.send("more")
    assert c.mock.requests[0]["temperature"] == 0.2
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(ConfigurationError):
        AsyncConversation.load(tmp_path / "bad.json", c)


def test_sync_conversation(tmp_path: Path) -> None:
    with Client(middleware=[]) as c:
        conv = c.conversation("mock/m")
        c.mock.script(MockReply("hello"), MockReply("streamed answer"))
        assert conv.send("hi").text == "hello"
        assert "".join(e.text for e in conv.stream("more") if isinstance(e, TextDelta)) == \
            "streamed answer"
        conv.save(tmp_path / "c.json")
        again = Conversation.load(tmp_path / "c.json", c)
        assert len(again.messages) == 4


async def test_a_conversation_moves_from_one_provider_to_another() -> None:
    """Started on the mock (OpenAI wire) with a tool call, continued on Anthropic and Gemini."""
    c0 = AsyncClient(middleware=[])
    conv = c0.conversation("mock/m", tools=[lookup])
    c0.mock.script(MockReply(tool_calls=[("lookup", {"key": "k"})]), MockReply("It is v."))
    await conv.send("look k up")
    async with FaultServer() as server:
        c = AsyncClient(middleware=[], base_urls={"anthropic": server.url_for("anthropic"),
                                                  "gemini": server.url_for("gemini")},
                        api_keys={"anthropic": "k", "gemini": "k"})
        conv.client, conv.model = c, "anthropic/claude-x"
        server.script(Fault.ok("Still v."), Fault.ok("Yes, v."))
        assert (await conv.send("and now?")).text == "Still v."
        msgs = server.requests[0].json["messages"]
        assert msgs[1]["content"][0]["id"] == "call_mock_0"
        assert msgs[2]["content"][0] == {"type": "tool_result", "tool_use_id": "call_mock_0",
                                         "content": "value of k"}
        conv.model = "gemini/gemini-x"
        assert (await conv.send("sure?")).text == "Yes, v."
        contents = server.requests[1].json["contents"]
        assert contents[2]["parts"][0]["functionResponse"]["name"] == "lookup"
        await c.aclose()


_DAMAGED = [
    {"messages": 5},
    {"messages": [5]},
    {"messages": [{"role": "wizard", "content": "x"}]},
    {"messages": [{"content": "x"}]},
    {"messages": [{"role": "user", "content": {"a": 1}}]},
    {"messages": [{"role": "user", "content": [5]}]},
    {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
    {"messages": [{"role": "assistant", "content": "", "tool_calls": [{"name": "f"}]}]},
    {"settings": 5},
    {"settings": [1, 2]},
    {"system": 5},
    {"model": 7},
    {"summary": 5},
    {"summary_cache": []},
]


@pytest.mark.parametrize("damage", _DAMAGED, ids=[json.dumps(d)[:40] for d in _DAMAGED])
def test_a_damaged_saved_conversation_is_a_configuration_error(
        damage: dict[str, Any], tmp_path: Path) -> None:
    """These used to raise TypeError / AttributeError from deep inside (or, for an
    unknown role, load and then be sent)."""
    path = tmp_path / "conv.json"
    path.write_text(json.dumps({"format": "modelwire.conversation", "version": 1,
                                "model": "mock/m", **damage}))
    with modelwire.Client() as client, pytest.raises(modelwire.ConfigurationError) as info:
        Conversation.load(path, client)
    assert "corrupt" in str(info.value) or "not a saved modelwire conversation" in str(
        info.value)
