"""Incremental Server-Sent Events parser over raw byte chunks.

Why our own: aiohttp's ``async for line in resp.content`` costs an await per
line; splitting whole network chunks here is about twice as fast and lets every
transport (HTTP, local model, mock) feed the same parser. Follows the WHATWG
rules: ``\\n``, ``\\r\\n`` and ``\\r`` end lines (also across chunk
boundaries), a blank line dispatches, ``:`` lines are comments, multi-line
``data`` is joined with ``\\n``. Bytes that are not UTF-8 raise
:class:`~modelwire.errors.MalformedResponseError`.
"""

from __future__ import annotations

from ..errors import MalformedResponseError


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


class SSEParser:
    __slots__ = ("_buf", "_cr", "_data", "_event", "_id")

    def __init__(self) -> None:
        self._buf = b""
        self._cr = False  # the last chunk ended in \r: a leading \n is its other half
        self._data: list[bytes] = []
        self._event: bytes | None = None
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._cr = False
        if self._buf:
            chunk = self._buf + chunk
        if b"\r" in chunk:
            self._cr = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        self._buf = lines.pop()
        return self._lines(lines) if lines else []

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
                self._event = None
                continue
            if line[0] == 58:  # b":" comment / keep-alive
                continue
            name, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                self._event = value
            elif name == b"id":
                self._id = _text(value)
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: dispatch a final event whose blank line never came."""
        rest, self._buf = self._buf, b""
        return self._lines([rest, b""] if rest else [b""])
