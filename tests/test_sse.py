"""SSE parser: WHATWG line rules, chunk-boundary independence, typed errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelwire.errors import MalformedResponseError, ResponseTooLargeError
from modelwire.wire.sse import SSEEvent, SSEParser


def parse(chunks: list[bytes]) -> list[SSEEvent]:
    p = SSEParser()
    out: list[SSEEvent] = []
    for c in chunks:
        out += p.feed(c)
    return out + p.close()


def test_fields_comments_multiline_and_event_names() -> None:
    body = (b": keep-alive\n"
            b"event: message_start\ndata: {\"a\":1}\n\n"
            b"data: line1\ndata: line2\nid: 7\n\n"
            b"data:no-space\n\n"
            b"data: [DONE]\n\n")
    assert parse([body]) == [
        SSEEvent("message_start", '{"a":1}'),
        SSEEvent("message", "line1\nline2", "7"),
        SSEEvent("message", "no-space", "7"),
        SSEEvent("message", "[DONE]", "7"),
    ]


def test_crlf_and_lone_cr_line_endings() -> None:
    assert parse([b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"]) == [
        SSEEvent("message", "a"), SSEEvent("message", "b"), SSEEvent("message", "c")]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    # "\r" at the end of one chunk and "\n" at the start of the next must not make
    # an extra blank line (which would dispatch early and split "a" from "b").
    assert parse([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [
        SSEEvent("message", "a\nb")]


def test_event_without_final_blank_line_is_dispatched_at_close() -> None:
    assert parse([b"data: [DONE]"]) == [SSEEvent("message", "[DONE]")]


def test_event_name_resets_after_dispatch() -> None:
    assert [e.event for e in parse([b"event: error\ndata: x\n\ndata: y\n\n"])] == [
        "error", "message"]


def test_invalid_utf8_is_a_typed_error() -> None:
    try:
        parse([b"data: \xff\xfe\n\n"])
    except MalformedResponseError as e:
        assert "UTF-8" in str(e)
    else:
        raise AssertionError("invalid UTF-8 was accepted")


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                       blacklist_characters="\r\n"), max_size=40)
_events = st.lists(st.tuples(st.sampled_from([None, "delta", "ping"]),
                             st.lists(_text, min_size=1, max_size=3)), max_size=12)


def _encode(events: list[tuple[str | None, list[str]]], newline: bytes) -> bytes:
    out = b""
    for name, lines in events:
        if name:
            out += b"event: " + name.encode() + newline
        for line in lines:
            out += b"data: " + line.encode() + newline
        out += newline
    return out


@settings(max_examples=200, deadline=None)
@given(_events, st.sampled_from([b"\n", b"\r\n", b"\r"]), st.data())
def test_any_chunking_gives_identical_events(events: list[tuple[str | None, list[str]]],
                                             newline: bytes, data: st.DataObject) -> None:
    body = _encode(events, newline)
    whole = parse([body])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=20)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=False)]
    assert parse(pieces) == whole
    expected = [SSEEvent(name or "message", "\n".join(lines)) for name, lines in events]
    # a data line that is itself empty still counts as a (blank) data field only when
    # written as "data: " — our encoder always writes it, so events round-trip.
    assert whole == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=10))
def test_arbitrary_bytes_give_events_or_a_typed_error(chunks: list[bytes]) -> None:
    try:
        events = parse(chunks)
    except MalformedResponseError:
        return
    assert all(isinstance(e.data, str) and isinstance(e.event, str) for e in events)


def test_reads_larger_than_the_parser_slice_give_the_same_events() -> None:
    # aiohttp hands over ~256 KB per read; the parser works in 64 KB slices.
    body = b"".join(
        (b"event: delta\n" if i % 3 == 0 else b"")
        + b'data: {"i": %d, "t": "%s"}\n\n' % (i, b"x" * (i % 50))
        + (b": keep-alive\r\n" if i % 7 == 0 else b"")
        for i in range(20_000))
    assert len(body) > 4 * 65536
    whole = parse([body])
    assert len(whole) == 20_000
    assert parse([body[i:i + 997] for i in range(0, len(body), 997)]) == whole
    assert whole[3].event == "delta" and whole[4].event == "message"


# --- size limit -------------------------------------------------------------------


def _feed_all(p: SSEParser, body: bytes, size: int) -> list[SSEEvent]:
    out: list[SSEEvent] = []
    for i in range(0, len(body), size):
        out += p.feed(body[i:i + size])
    return out + p.close()


@pytest.mark.parametrize("read", [1, 7, 1024, 70_000])
def test_an_event_at_the_limit_passes_and_one_byte_more_raises(read: int) -> None:
    limit = 4096
    line = b"data: " + b"a" * (limit - 7)  # the line, without its line end, is limit - 1
    ok = _feed_all(SSEParser(limit), line + b"\n\n" + b"data: next\n\n", read)
    assert [e.data for e in ok] == ["a" * (limit - 7), "next"]
    with pytest.raises(ResponseTooLargeError) as info:
        _feed_all(SSEParser(limit), b"data: " + b"a" * (limit + 10) + b"\n\n", read)
    assert info.value.limit == limit and "max_event_bytes=4096" in info.value.message


def test_the_limit_raises_before_the_line_ends() -> None:
    """Memory is bounded: the error comes while the line is still arriving."""
    p = SSEParser(10_000)
    p.feed(b"data: ")
    with pytest.raises(ResponseTooLargeError):
        for _ in range(100):  # would be 100 KB; it stops at about 10 KB
            p.feed(b"x" * 1000)
    assert p._pending == 0 and p._tail == []  # the buffer was dropped


def test_an_event_of_many_data_lines_counts_whole() -> None:
    body = b"".join(b"data: " + b"b" * 100 + b"\n" for _ in range(50)) + b"\n"
    assert len(_feed_all(SSEParser(8192), body, 64)[0].data) == 50 * 101 - 1
    with pytest.raises(ResponseTooLargeError):
        _feed_all(SSEParser(2048), body, 64)


def test_a_long_line_across_many_reads_matches_one_read() -> None:
    body = b"event: big\ndata: " + b"z" * 300_000 + b"\r\n\r\ndata: after\n\n"
    whole = _feed_all(SSEParser(), body, len(body))
    assert _feed_all(SSEParser(), body, 1000) == whole
    assert _feed_all(SSEParser(), body, 333) == whole
    assert [e.event for e in whole] == ["big", "message"] and len(whole[0].data) == 300_000
