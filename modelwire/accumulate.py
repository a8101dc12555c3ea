"""One stream accumulator for every codec.

Codecs turn wire events into neutral *deltas* (below). The accumulator joins
them into caller-facing events and, at the end, the same :class:`Response` that
``complete()`` returns. Tool-call fragments are joined here and only here, by
the provider's own key (an index or an id):

* interleaved parallel calls: each fragment goes to the slot of its key;
* id-only continuation chunks: a fragment whose key is unknown but whose id is
  known joins that id's slot;
* key-less continuation fragments (no id, no name) join the most recent slot;
* repeated calls of the same tool get separate slots (names are never keys);
* whole calls (Gemini) arrive as one fragment with ``complete=True``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Union

from .errors import StreamInterruptedError
from .response import (
    FinishReason,
    ReasoningDelta,
    Response,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallArgumentsDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    UsageUpdate,
)

# --- neutral deltas a codec emits --------------------------------------------


@dataclass(slots=True, frozen=True)
class ToolCallChunk:
    key: int | str  # the provider's index or id that joins fragments of one call
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    complete: bool = False  # arguments arrived whole; the call ends here
    custom: bool = False  # an OpenAI custom tool: free-form input, not JSON arguments
    provider_data: dict[str, Any] | None = None  # see ToolCall.provider_data


@dataclass(slots=True, frozen=True)
class Finish:
    reason: FinishReason
    raw: str | None = None


@dataclass(slots=True, frozen=True)
class Refusal:
    """Refusal text (OpenAI ``refusal``): a TextDelta to the caller, and ``Response.refusal``."""

    text: str


@dataclass(slots=True, frozen=True)
class Meta:
    response_id: str | None = None
    model: str | None = None
    raw: Any = None  # provider data for Response.raw (the Claude CLI's cost and session)


@dataclass(slots=True, frozen=True)
class Done:
    """The wire's terminal event ([DONE], message_stop, ...) was seen.

    ``needs_finish``: on this wire a complete answer always carried a finish
    reason before the terminal event, so a terminal event without one means
    the server cut the answer short (llama.cpp's server does exactly that when
    it interrupts a request).
    """

    needs_finish: bool = False


DONE = Done()
DONE_AFTER_FINISH = Done(needs_finish=True)

Delta = Union[TextDelta, ReasoningDelta, ToolCallChunk, UsageUpdate, Finish, Meta, Done, Refusal]


CUSTOM_TOOL_INPUT = ("a custom (free-form) tool call: its input is the text in raw_arguments, "
                     "not JSON arguments")
"""``ToolCall.arguments_error`` of an OpenAI custom tool call (``type: "custom"``)."""


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """``text`` as valid Unicode. JSON may escape UTF-16 halves (``"\\ud83d"``): a
    server that splits a pair across two stream events leaves two half characters
    that no UTF-8 encoder (print, a file, the next request) accepts. A pair is
    joined into its character; a half without its other half becomes U+FFFD."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def parse_arguments(raw: str) -> tuple[dict[str, Any] | None, str | None]:
    """``(arguments, None)``, or ``(None, why)`` when ``raw`` is not a JSON object.

    Invalid JSON is legal on the wire (models produce it; max_tokens truncates
    it): it is reported, never an error for the whole response nor a made-up dict.
    """
    if not raw.strip():
        return {}, None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as e:
        return None, f"not valid JSON ({e})"
    if not isinstance(value, dict):
        return None, f"JSON {type(value).__name__}, expected an object"
    return value, None


def tool_call(id: str, name: str, raw: str, custom: bool = False) -> ToolCall:
    """A ToolCall from its raw argument string (see :func:`parse_arguments`)."""
    if custom:
        return ToolCall(id, name, None, raw, CUSTOM_TOOL_INPUT)
    args, error = parse_arguments(raw)
    return ToolCall(id, name, args, raw or "{}", error)


class _Slot:
    __slots__ = ("custom", "data", "ended", "given_id", "id", "index", "name", "parts")

    def __init__(self, index: int, id: str | None, name: str) -> None:
        self.index, self.name = index, name
        self.id = id or f"call_{index}"
        self.given_id = id is not None
        self.parts: list[str] = []
        self.ended = False
        self.custom = False
        self.data: dict[str, Any] | None = None


class StreamAccumulator:
    """Feed deltas in, get caller events out; ``response()`` at the end."""

    def __init__(self, provider: str, model: str, started: float | None = None) -> None:
        self.provider = provider
        self.model = model
        self.started = time.perf_counter() if started is None else started
        self.first_token_at: float | None = None
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._refusal: list[str] = []
        self._slots: list[_Slot] = []
        self._by_key: dict[int | str, _Slot] = {}
        self._by_id: dict[str, _Slot] = {}
        self.usage = Usage()
        self.finish: Finish | None = None
        self.done = False
        self._cut = False
        self.response_id: str | None = None
        self.raw: Any = None

    def feed(self, deltas: list[Delta]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        emit, add_text = out.append, self._text.append  # per delta: text is the bulk
        for d in deltas:
            if type(d) is TextDelta:
                text = d.text
                if text:
                    add_text(text)
                    emit(d)
            elif type(d) is ToolCallChunk:
                self._tool_chunk(d, out)
            elif type(d) is ReasoningDelta:
                if d.text:
                    self._reasoning.append(d.text)
                    out.append(d)
            elif type(d) is UsageUpdate:
                self.usage = self.usage.merged(d.usage)
                out.append(UsageUpdate(self.usage))
            elif type(d) is Finish:
                self.finish = d
                self._end_all(out)
            elif type(d) is Meta:
                self.response_id = d.response_id or self.response_id
                self.model = d.model or self.model
                if d.raw is not None:
                    self.raw = d.raw
            elif type(d) is Done:
                self.done = True
                self._cut = d.needs_finish and self.finish is None
                self._end_all(out)
                break  # the terminal event: anything after it is not the answer
            elif type(d) is Refusal and d.text:
                self._refusal.append(d.text)
                add_text(d.text)
                emit(TextDelta(d.text))
        if out and self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        return out

    def _tool_chunk(self, d: ToolCallChunk, out: list[StreamEvent]) -> None:
        slot = self._by_key.get(d.key)
        if slot is None and d.id:
            slot = self._by_id.get(d.id)
        if slot is None and not d.id and not d.name and self._slots:
            slot = self._slots[-1]  # key-less continuation of the latest call
        if slot is not None and d.id and slot.given_id and d.id != slot.id:
            slot = self._by_id.get(d.id)  # a server reusing one index for parallel calls
        if slot is None or (slot.ended and (d.id or d.name)):
            slot = _Slot(len(self._slots), d.id, d.name or "")
            self._slots.append(slot)
            out.append(ToolCallStart(slot.index, slot.id, slot.name))
        elif d.name and not slot.name:
            slot.name = d.name
        self._by_key[d.key] = slot
        slot.custom = slot.custom or d.custom
        if d.provider_data:
            slot.data = d.provider_data
        if d.id:
            self._by_id[d.id] = slot
        if d.arguments:
            slot.parts.append(d.arguments)
            out.append(ToolCallArgumentsDelta(slot.index, slot.id, d.arguments))
        if d.complete:
            self._end(slot, out)

    def _end(self, slot: _Slot, out: list[StreamEvent]) -> None:
        if not slot.ended:
            slot.ended = True
            call = self._tool_call(slot)
            call.provider_data = slot.data
            out.append(ToolCallEnd(slot.index, call))

    def _end_all(self, out: list[StreamEvent]) -> None:
        for slot in self._slots:
            self._end(slot, out)

    def _tool_call(self, slot: _Slot) -> ToolCall:
        call = tool_call(slot.id, slot.name, "".join(slot.parts), slot.custom)
        call.provider_data = slot.data
        return call

    def response(self) -> Response:
        """The final Response. Raises if the wire's terminal event never came."""
        if not self.done or self._cut:
            what = "its terminal event" if not self.done else "a finish reason"
            raise StreamInterruptedError(
                f"stream ended before {what}; the response is incomplete",
                provider=self.provider, model=self.model, partial=self.partial(),
                retryable=True,
            )
        return self._build(None)

    def partial(self) -> Response:
        """What arrived so far, marked ``finish_reason='error'``."""
        return self._build("error")

    def _build(self, forced: FinishReason | None) -> Response:
        calls = [self._tool_call(s) for s in self._slots]
        if forced is not None:
            reason: FinishReason = forced
        elif self.finish is not None:
            reason = self.finish.reason
        else:
            reason = "tool_calls" if calls else "stop"
        now = time.perf_counter()
        return Response(
            text=valid_text("".join(self._text)), tool_calls=calls, finish_reason=reason,
            usage=self.usage, provider=self.provider, model=self.model,
            request_id=self.response_id, latency=now - self.started,
            time_to_first_token=(self.first_token_at - self.started
                                 if self.first_token_at is not None else None),
            reasoning=valid_text("".join(self._reasoning)),
            refusal="".join(self._refusal) if self._refusal else None,
            raw_finish_reason=self.finish.raw if self.finish else None, raw=self.raw,
        )
