"""The shared accumulator, on neutral deltas (codec-independent traps)."""

from __future__ import annotations

import pytest

from modelwire.accumulate import (
    CUSTOM_TOOL_INPUT,
    DONE,
    Finish,
    Refusal,
    StreamAccumulator,
    ToolCallChunk,
)
from modelwire.errors import StreamInterruptedError
from modelwire.response import TextDelta, ToolCallEnd, ToolCallStart, Usage, UsageUpdate


def run(*deltas: object) -> tuple[list[object], StreamAccumulator]:
    acc = StreamAccumulator("p", "m")
    events: list[object] = []
    for d in deltas:
        events += acc.feed([d])  # type: ignore[list-item]
    return events, acc


def test_a_server_reusing_one_index_for_parallel_calls_keeps_them_apart() -> None:
    _, acc = run(ToolCallChunk(0, "a", "f", '{"x": 1}'), ToolCallChunk(0, "b", "g", '{"y": 2}'),
                 Finish("tool_calls"), DONE)
    calls = acc.response().tool_calls
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("a", "f", {"x": 1}), ("b", "g", {"y": 2})]


def test_whole_calls_end_at_once_and_repeat_names_get_new_slots() -> None:
    events, acc = run(ToolCallChunk(0, None, "f", '{"n": 1}', complete=True),
                      ToolCallChunk(0, None, "f", '{"n": 2}', complete=True), DONE)
    ends = [e for e in events if isinstance(e, ToolCallEnd)]
    assert [e.tool_call.arguments for e in ends] == [{"n": 1}, {"n": 2}]
    assert [e.index for e in events if isinstance(e, ToolCallStart)] == [0, 1]
    assert acc.response().finish_reason == "tool_calls"


def test_invalid_tool_arguments_are_kept_raw_with_the_reason_not_an_empty_dict() -> None:
    events, acc = run(TextDelta("ok"), ToolCallChunk(0, "a", "f", '{"x": '),
                      ToolCallChunk(1, "b", "g", '{"y": 2}'), ToolCallChunk(2, "c", "h", "[1]"),
                      Finish("length"), DONE)
    ends = [e.tool_call for e in events if isinstance(e, ToolCallEnd)]
    r = acc.response()
    for calls in (ends, r.tool_calls):
        bad, good, listed = calls
        assert (bad.arguments, bad.raw_arguments) == (None, '{"x": ')
        assert bad.arguments_error is not None and "not valid JSON" in bad.arguments_error
        assert (good.arguments, good.arguments_error) == ({"y": 2}, None)
        assert listed.arguments is None and listed.arguments_error == (
            "JSON list, expected an object")
    assert (r.text, r.finish_reason) == ("ok", "length")


def test_custom_tool_input_is_raw_with_the_custom_marker() -> None:
    _, acc = run(ToolCallChunk(0, "a", "grep", "*.py", custom=True), DONE)
    (c,) = acc.response().tool_calls
    assert (c.name, c.arguments, c.raw_arguments, c.arguments_error) == (
        "grep", None, "*.py", CUSTOM_TOOL_INPUT)


def test_refusal_is_text_for_the_caller_and_the_response_refusal() -> None:
    events, acc = run(Refusal("I can"), Refusal("not."), Finish("stop"), DONE)
    assert events == [TextDelta("I can"), TextDelta("not.")]
    r = acc.response()
    assert (r.text, r.refusal) == ("I cannot.", "I cannot.")
    assert run(TextDelta("hi"), DONE)[1].response().refusal is None


def test_missing_terminal_event_raises_with_the_partial_response() -> None:
    _, acc = run(TextDelta("Hel"), TextDelta("lo"), Finish("stop"))
    with pytest.raises(StreamInterruptedError) as info:
        acc.response()
    assert info.value.partial is not None
    assert (info.value.partial.text, info.value.partial.finish_reason) == ("Hello", "error")


def test_usage_updates_merge_and_keep_reported_zeros() -> None:
    _, acc = run(UsageUpdate(Usage(10, 0, 0, cached_input_tokens=0, source="reported")),
                 UsageUpdate(Usage(0, 5, 0, source="reported")), DONE)
    u = acc.response().usage
    assert (u.input_tokens, u.output_tokens, u.total_tokens, u.cached_input_tokens) == (
        10, 5, 15, 0)
    assert u.source == "reported"


def test_terminal_event_without_a_finish_reason_is_a_cut_answer_where_the_wire_requires_one(
) -> None:
    from modelwire.accumulate import DONE_AFTER_FINISH
    _, acc = run(TextDelta("Hal"), DONE_AFTER_FINISH)
    with pytest.raises(StreamInterruptedError, match="finish reason"):
        acc.response()
    _, acc = run(TextDelta("Hello"), Finish("stop"), DONE_AFTER_FINISH)
    assert acc.response().text == "Hello"
