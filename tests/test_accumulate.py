"""The shared accumulator, on neutral deltas (codec-independent traps)."""

from __future__ import annotations

import pytest

from modelwire.accumulate import DONE, Finish, StreamAccumulator, ToolCallChunk
from modelwire.errors import MalformedResponseError, StreamInterruptedError
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


def test_invalid_tool_arguments_are_an_error_not_an_empty_dict() -> None:
    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        run(ToolCallChunk(0, "a", "f", '{"x": '), DONE)


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
