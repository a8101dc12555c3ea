"""Incremental Server-Sent Events parser over raw byte chunks.

Why our own: aiohttp's ``async for line in resp.content`` costs an await per
line; splitting whole network chunks here is about twice as fast and lets every
transport (HTTP, local model, mock) feed the same parser. Follows the WHATWG
rules: ``\\n``, ``\\r\\n`` and ``\\r`` end lines (also across chunk
boundaries), a blank line dispatches, ``:`` lines are comments, multi-line
``data`` is joined with ``\\n``. Bytes that are not UTF-8 raise
:class:`~modelwire.errors.MalformedResponseError`.

Speed: per event, JSON decoding is about half the cost and the plumbing around
it the rest, so runs of plain events (``data:`` only, or ``event:`` and
``data:``) skip the line loop (:meth:`SSEParser._fast`); anything else, or a
chunk that is not UTF-8, takes the general loop, which is the reference
behaviour the fast path must match.
"""

from __future__ import annotations

from ..errors import MalformedResponseError, ResponseTooLargeError


class SSEEvent:
    __slots__ = ("data", "event", "id")

    def __init__(self, event: str, data: str, id: str | None = None) -> None:
        self.event = event  # "message" when the stream names none
        self.data = data
        self.id = id

    def __repr__(self) -> str:
        return f"SSEEvent(event={self.event!r}, data={self.data!r}, id={self.id!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SSEEvent) and self.event == other.event
                and self.data == other.data and self.id == other.id)

    __hash__ = None  # type: ignore[assignment]


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MalformedResponseError(
            f"stream carried bytes that are not valid UTF-8 at offset {e.start}"
        ) from None


_SLICE = 65536
_BOM = b"\xef\xbb\xbf"
MAX_EVENT_BYTES = 16 * 1024 * 1024  # the default limit of one event (or one line)


class SSEParser:
    """Feed raw chunks, get whole events. Work is linear in the bytes fed whatever
    the chunking: an unfinished line is kept as a list of pieces and joined once,
    when its line end arrives. One line or event longer than ``max_event_bytes``
    raises :class:`~modelwire.errors.ResponseTooLargeError` (and drops the buffer)."""

    __slots__ = ("_buf", "_cr", "_data", "_event", "_head", "_id", "_max", "_pending",
                 "_size", "_slice", "_tail")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buf = b""  # the start of an unfinished line
        self._tail: list[bytes] = []  # the rest of it, when reads bring no line end
        self._pending = 0  # bytes in _buf and _tail
        self._cr = False  # the last chunk ended in \r: a leading \n is its other half
        self._data: list[bytes] = []
        self._size = 0  # bytes in _data (an event of several data lines)
        self._event: bytes | None = None
        self._id: str | None = None
        self._max = max_event_bytes
        # A line longer than the limit always spans slices, so the pending check sees it.
        self._slice = min(_SLICE, max_event_bytes)
        # The stream's first bytes until we know whether they start with a UTF-8 BOM,
        # which the WHATWG decoder strips (else "\ufeffdata:" is an unknown field and
        # the first event is silently lost); None once the stream has started.
        self._head: bytes | None = b""

    def _too_large(self) -> ResponseTooLargeError:
        self._buf, self._tail, self._pending, self._size = b"", [], 0, 0
        self._data.clear()
        return ResponseTooLargeError(
            f"one stream event is larger than max_event_bytes={self._max} bytes; the "
            "connection was closed. Raise AsyncClient(max_event_bytes=...) if such "
            "events are expected", limit=self._max)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._head is not None:
            chunk = self._head + chunk
            if len(chunk) < 3 and _BOM.startswith(chunk):
                self._head = chunk  # maybe half a BOM: wait for more
                return []
            self._head = None
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
        step = self._slice
        if len(chunk) > step:
            # aiohttp hands over all it has buffered (~256 KB in a fast stream).
            # Parsed whole, every copy of it is above malloc's mmap threshold
            # (128 KB) and pays page faults: ~50% more per event than in slices.
            events: list[SSEEvent] = []
            for i in range(0, len(chunk), step):
                events += self._feed(chunk[i:i + step])
            return events
        return self._feed(chunk)

    def _feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._cr:
            self._cr = False
            if chunk[0] == 10:  # b"\n"
                chunk = chunk[1:]
                if not chunk:
                    return []
        if b"\r" in chunk:  # only the new bytes: the pending ones are normalized already
            self._cr = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = chunk.rfind(b"\n")
        pending = self._pending
        if end < 0:  # no line end: keep the piece, join nothing yet
            pending += len(chunk)
            if pending > self._max:
                raise self._too_large()
            if pending > len(chunk):
                self._tail.append(chunk)
            else:
                self._buf = chunk
            self._pending = pending
            return []
        if pending:
            if pending + end > self._max and pending + chunk.find(b"\n") > self._max:
                raise self._too_large()
            if self._tail:
                self._tail.append(chunk)
                chunk = b"".join([self._buf, *self._tail])
                self._tail = []
            else:
                chunk = self._buf + chunk
            end += pending
        self._buf = chunk[end + 1:]
        self._pending = len(chunk) - end - 1
        events: list[SSEEvent] = []
        start = 0
        if self._data or self._event is not None:
            # an event is half-read: its lines up to the blank line go line by line
            if chunk[0] == 10:  # b"\n": the blank line itself
                start = 1
            else:
                start = chunk.find(b"\n\n", 0, end + 1) + 2
                if start == 1:  # its blank line has not arrived
                    start = end + 1
            events = self._lines(chunk[:start - 1].split(b"\n"))
        if start > end:
            return events
        named = chunk.startswith(b"event: ", start)
        if named or chunk.startswith(b"data: ", start):
            try:  # every whole line decoded at once, not field by field
                text = str(memoryview(chunk)[start:end + 1], "utf-8")
            except UnicodeDecodeError:
                pass  # the line loop below raises for a field it uses, not a comment
            else:
                return events + self._fast(text, "event: " if named else "data: ")
        return events + self._lines(chunk[start:end].split(b"\n"))

    def _fast(self, text: str, field: str) -> list[SSEEvent]:
        """Events from ``text`` (whole lines, starting with ``field``), no line loop.

        Nearly every event of an OpenAI or Gemini stream is one ``data: ...`` line
        and a blank line, and of an Anthropic stream ``event: ...``, ``data: ...``
        and a blank line: one split at the blank lines cuts them apart, and a
        search for a stray line end checks that no event has other lines. Any
        other shape goes through the general line loop.
        """
        blocks = text.split("\n\n" + field)
        last = blocks.pop()
        if last.endswith("\n\n"):  # the text ends with a whole event
            blocks.append(last[:-2])
            rest = ""
        else:  # lines of an event whose blank line is still to come
            rest = last if not blocks else field + last
        events: list[SSEEvent] = []
        if blocks:
            blocks[0] = blocks[0][len(field):]
            id = self._id
            if field == "data: ":
                if "\n" in "".join(blocks):  # some event has more lines
                    return self._text_lines(text)
                events = [SSEEvent("message", d, id) for d in blocks]
            else:
                for block in blocks:
                    name, sep, data = block.partition("\ndata: ")
                    if not sep or "\n" in data or "\n" in name:
                        return self._text_lines(text)
                    events.append(SSEEvent(name or "message", data, id))
        if rest:
            events += self._text_lines(rest)
        return events

    def _text_lines(self, text: str) -> list[SSEEvent]:
        return self._lines(text[:-1].encode().split(b"\n"))

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(SSEEvent(
                        _text(self._event) if self._event else "message",
                        _text(b"\n".join(data)), self._id))
                    data.clear()
                    self._size = 0
                self._event = None
                continue
            if line[0] == 58:  # b":" comment / keep-alive
                continue
            name, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._size += len(value) + 1
                if self._size > self._max:
                    raise self._too_large()
                data.append(value)
            elif name == b"event":
                self._event = value
            elif name == b"id":
                self._id = _text(value)
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: dispatch a final event whose blank line never came."""
        if self._head:  # a stream of one or two bytes
            head, self._head = self._head, None
            self._feed(head)
        rest = b"".join([self._buf, *self._tail]) if self._tail else self._buf
        self._buf, self._tail, self._pending = b"", [], 0
        return self._lines([rest, b""] if rest else [b""])
