"""Conversations that last: history, a token budget, summaries, save/load.

``client.conversation(model, system=..., tools=..., max_context_tokens=...,
summarize_with=...)`` keeps the history; ``send()`` / ``stream()`` append both
turns (with tools, ``send`` runs the tool loop and appends every message).

Budget: before a call, when the history is estimated past
``max_context_tokens``, the older turns are summarized by a model
(``summarize_with``, default the conversation's own, any provider or the local
one) into one summary carried in the system message; the last
``keep_recent`` messages stay verbatim, and the cut never falls between a tool
call and its result. The summary is cached by the content it replaced (a hash
of the previous summary and those messages), so replaying the same history
never pays twice. Token counts here are estimates (about 4 characters a token,
plus a few per message) and :meth:`tokens` says so.

``save(path)`` writes JSON: model, system, settings, summary, summary cache
and messages (provider-private data on tool calls included, API keys never:
they are not the conversation's). ``load(path, client, tools=...)`` restores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .conversation_file import _corrupt, _jsonable, _read, message_from_dict, message_to_dict
from .errors import ConfigurationError
from .response import Response, StreamEvent, ToolCall
from .types import Message, MessageLike, ToolLike, to_messages, to_tools

if TYPE_CHECKING:
    from .client import AsyncClient
    from .sync import Client
    from .tools.loop import ToolLoop, ToolResultEvent

FORMAT_VERSION = 1
_SUMMARY_CACHE_SIZE = 32
_OWN_ARGUMENTS = frozenset({"client", "model", "system", "tools", "max_context_tokens",
                           "summarize_with", "keep_recent", "messages"})
_SUMMARY_PROMPT = (
    "Summarize the conversation below for your own later use: keep facts, names, "
    "numbers, decisions, open questions and what the user wants. Be concise; write "
    "prose, not a transcript.")


class AsyncConversation:
    def __init__(self, client: AsyncClient, model: str | None, *, system: str | None = None,
                 tools: Sequence[ToolLike] | None = None, max_context_tokens: int | None = None,
                 summarize_with: str | None = None, keep_recent: int = 6,
                 messages: Iterable[MessageLike] | None = None, **settings: Any) -> None:
        if max_context_tokens is not None and (isinstance(max_context_tokens, bool) or not
                                               isinstance(max_context_tokens, int)
                                               or max_context_tokens < 1):
            raise ConfigurationError(
                f"max_context_tokens must be an int >= 1, got {max_context_tokens!r}")
        if isinstance(keep_recent, bool) or not isinstance(keep_recent, int) or keep_recent < 0:
            raise ConfigurationError(f"keep_recent must be an int >= 0, got {keep_recent!r}")
        self.client, self.model, self.system = client, model, system
        # built once: a bound method as a tool is not rebuilt (pydantic model, schema
        # cache) at every turn, and a bad tool is reported here
        self.tools: list[ToolLike] = list(to_tools(tools)) if tools else []
        self.max_context_tokens, self.summarize_with = max_context_tokens, summarize_with
        self.keep_recent, self.settings = keep_recent, settings
        self.messages: list[Message] = to_messages(list(messages)) if messages else []
        self.summary: str | None = None
        self.summary_cache: dict[str, str] = {}
        self.last_response: Response | None = None
        self._turn = asyncio.Lock()

    def __repr__(self) -> str:
        return (f"<Conversation model={self.model!r} messages={len(self.messages)} "
                f"summarized={self.summary is not None}>")

    # --- talking -----------------------------------------------------------------

    def context(self) -> list[Message]:
        """What the next call sends: the system message (with the summary) + the history."""
        system = "\n\n".join(p for p in (
            self.system,
            f"Summary of the earlier conversation:\n{self.summary}" if self.summary else None,
        ) if p)
        return ([Message("system", system)] if system else []) + list(self.messages)

    @property
    def pending(self) -> list[ToolCall]:
        """Tool calls waiting for approval (the last answer stopped for them)."""
        from .tools.loop import _unanswered
        return _unanswered(self.messages)

    async def send(self, content: str | MessageLike | None, **kwargs: Any) -> Response:
        """Append the user's turn, get the answer (running tools if any), append it.

        Calls waiting for approval (``conv.pending``): ``send(None, approved=[ids])``
        runs the approved ones and goes on; a new message instead declines them.
        Turns of one conversation run one at a time (two concurrent sends would
        interleave their messages)."""
        async with self._turn:
            return await self._send(content, **kwargs)

    async def _send(self, content: str | MessageLike | None, **kwargs: Any) -> Response:
        before = self.messages, self.summary
        if content is None:
            if not self.pending or not self.tools:
                raise ConfigurationError("send(None) resumes tool calls waiting for "
                                         "approval, and none are: pass a message")
        else:
            self._append_user(content)
        loop: ToolLoop | None = None
        try:
            await self.compact()
            options = {**self.settings, **kwargs}
            ctx = self.context()
            if self.tools:
                from .tools.loop import ToolLoop
                loop = ToolLoop(self.client, self.model, ctx, self.tools, **options)
                result = await loop.run()
                self.messages += result.messages[len(ctx):]
                self.last_response = result.response
                return result.response
            response = await self.client.complete(self.model, ctx, **options)
        except BaseException:  # both turns or neither (a retry must not send the question
            self._undo(before, loop)  # twice in a row), but tools that ran stay history
            raise
        self.messages.append(response.to_message())
        self.last_response = response
        return response

    def _undo(self, before: tuple[list[Message], str | None], loop: ToolLoop | None) -> None:
        """After a failed turn: back to ``before``, unless tools already ran. Then their
        calls and results stay (minus an unanswered last call), so the model is not
        asked to run them again; the failed question stays before them."""
        kept = [] if loop is None else loop.messages[loop.start:]
        if kept and kept[-1].role == "assistant" and kept[-1].tool_calls:
            kept.pop()  # the turn whose tools did not all finish
        if any(m.role == "tool" for m in kept):
            self.messages = self.messages + kept
        else:
            self.messages, self.summary = before

    async def stream(self, content: str | MessageLike,
                     **kwargs: Any) -> AsyncGenerator[StreamEvent | ToolResultEvent, None]:
        """Stream the answer (with tools: every turn, and a ToolResultEvent per tool run);
        the messages are appended once it has ended."""
        async with self._turn, contextlib.aclosing(self._stream(content, **kwargs)) as events:
            async for event in events:
                yield event

    async def _stream(self, content: str | MessageLike,
                      **kwargs: Any) -> AsyncGenerator[StreamEvent | ToolResultEvent, None]:
        before = self.messages, self.summary
        self._append_user(content)
        loop: ToolLoop | None = None
        try:
            await self.compact()
            options = {**self.settings, **kwargs}
            ctx = self.context()
            if self.tools:
                from .tools.loop import ToolLoop, ToolStream
                loop = ToolLoop(self.client, self.model, ctx, self.tools, stream=True,
                                **options)
                ts = ToolStream(loop)
                try:
                    async for item in ts:
                        yield item
                finally:
                    await ts.aclose()
                self.messages += ts.result.messages[len(ctx):]
                self.last_response = ts.result.response
                return
            async with self.client.stream(self.model, ctx, **options) as s:
                async for event in s:
                    yield event
                response = s.response
        except BaseException:  # failed or abandoned (the consumer stopped reading):
            self._undo(before, loop)  # neither turn is history, tools that ran are
            raise
        self.messages.append(response.to_message())
        self.last_response = response

    def _append_user(self, content: str | MessageLike) -> None:
        if isinstance(content, str) and not content.strip():
            from .errors import InvalidMessageError  # Anthropic drops an empty turn, and
            raise InvalidMessageError(  # the model would then continue its own last answer
                "the message is empty: send some text (or send(None, approved=[...]) to "
                "resume tool calls waiting for approval)")
        # calls left waiting for approval are declined by moving on: every provider
        # refuses a tool call without its result before the next user turn
        declined = [Message("tool", "error: not approved by the user; do not retry this "
                            "call", tool_call_id=c.id, name=c.name) for c in self.pending]
        self.messages = self.messages + declined + to_messages(  # a new list: send() can
            [{"role": "user", "content": content}] if isinstance(content, str)  # roll back
            else [content])

    # --- the budget ------------------------------------------------------------------

    def tokens(self) -> tuple[int, str]:
        """(tokens of the next call's messages, "estimated"): ~4 characters a token."""
        return sum(_estimate(m) for m in self.context()), "estimated"

    async def compact(self) -> bool:
        """Summarize older turns if the history is past its budget; True if it did."""
        if self.max_context_tokens is None or self.tokens()[0] <= self.max_context_tokens:
            return False
        # The kept part starts at a user turn: a tool result never loses its call, the
        # latest question is never summarized away (even with keep_recent=0), and the
        # history after the system message opens with a user turn as Anthropic and
        # Gemini require.
        cut = min(len(self.messages) - self.keep_recent, len(self.messages) - 1)
        while cut > 0 and self.messages[cut].role != "user":
            cut -= 1
        if cut <= 0:
            return False
        older, recent = self.messages[:cut], self.messages[cut:]
        transcript = "\n".join(_line(m) for m in older)
        key = hashlib.sha256(json.dumps([self.summary, transcript]).encode()).hexdigest()
        summary = self.summary_cache.get(key)
        if summary is None:
            earlier = f"Earlier summary:\n{self.summary}\n\n" if self.summary else ""
            response = await self.client.complete(
                self.summarize_with or self.model,
                [Message("system", _SUMMARY_PROMPT),
                 Message("user", f"{earlier}Conversation:\n{transcript}")])
            summary = response.text.strip()
            if not summary:  # nothing to replace the turns with: keep them verbatim
                return False
            self.summary_cache[key] = summary
            while len(self.summary_cache) > _SUMMARY_CACHE_SIZE:  # saved with the rest:
                del self.summary_cache[next(iter(self.summary_cache))]  # oldest go first
        self.summary, self.messages = summary, recent
        return True

    # --- save / load ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "modelwire.conversation", "version": FORMAT_VERSION,
            "model": self.model, "system": self.system,
            "max_context_tokens": self.max_context_tokens,
            "summarize_with": self.summarize_with, "keep_recent": self.keep_recent,
            "settings": _jsonable(self.settings), "summary": self.summary,
            # what JSON cannot hold, by name, so load() can say what to pass again
            "tools": [t.name for t in to_tools(self.tools)],
            "unsaved_settings": sorted(set(self.settings) - set(_jsonable(self.settings))),
            "summary_cache": self.summary_cache,
            "messages": [message_to_dict(m) for m in self.messages],
        }

    def save(self, path: str | Path) -> None:
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), "utf-8")
        tmp.replace(target)  # never a half-written file

    @classmethod
    def load(cls, path: str | Path, client: AsyncClient,
             tools: Sequence[ToolLike] | None = None, **settings: Any) -> AsyncConversation:
        """The conversation saved at ``path``. Tools and settings JSON cannot hold (a
        ``response_format`` class) are passed again here; a warning names any missing."""
        return cls.from_dict(_read(path), client, tools, **settings)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], client: AsyncClient,
                  tools: Sequence[ToolLike] | None = None,
                  **settings: Any) -> AsyncConversation:
        """A saved conversation; a tampered or corrupt one is a ConfigurationError
        naming what is wrong (never a KeyError from deep inside)."""
        if not isinstance(data, Mapping) or data.get("format") != "modelwire.conversation" \
                or data.get("version") != 1:
            raise ConfigurationError("not a saved modelwire conversation (format/version)")
        for key in ("model", "system", "summary", "summarize_with"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise _corrupt(f"{key} is a {type(data[key]).__name__}, not a string")
        for key in ("settings", "summary_cache"):
            if data.get(key) is not None and not isinstance(data[key], Mapping):
                raise _corrupt(f"{key} is a {type(data[key]).__name__}, not an object")
        clash = set(data.get("settings") or {}) & _OWN_ARGUMENTS
        if clash:
            raise _corrupt(f"settings holds {', '.join(sorted(clash))}, which are not settings")
        cache = dict(data.get("summary_cache") or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in cache.items()):
            raise _corrupt("summary_cache must map strings to strings")
        raw = data.get("messages") or []
        if not isinstance(raw, list):
            raise _corrupt(f"messages is a {type(raw).__name__}, not a list")
        names = {}
        for key in ("tools", "unsaved_settings"):
            names[key] = data.get(key) or []
            if not isinstance(names[key], list) or not all(isinstance(n, str)
                                                           for n in names[key]):
                raise _corrupt(f"{key} must be a list of names")
        conv = cls(client, data.get("model"), system=data.get("system"), tools=tools,
                   max_context_tokens=data.get("max_context_tokens"),
                   summarize_with=data.get("summarize_with"),
                   keep_recent=data.get("keep_recent", 6),
                   **{**dict(data.get("settings") or {}), **settings})
        missing_tools = set(names["tools"]) - {t.name for t in to_tools(conv.tools)}
        missing = sorted(set(names["unsaved_settings"]) - set(settings))
        if missing_tools or missing:
            from .hooks import logger
            logger.warning(
                "the saved conversation was using %s, which a file cannot hold; pass "
                "them to load(path, client, tools=[...], name=value) to keep them",
                ", ".join([*(f"tool {n!r}" for n in sorted(missing_tools)),
                           *(f"setting {n}=" for n in missing)]))
        conv.messages = [message_from_dict(m, i) for i, m in enumerate(raw)]
        conv.summary = data.get("summary")
        conv.summary_cache = cache
        return conv


# --- helpers ----------------------------------------------------------------------------


def _estimate(m: Message) -> int:
    chars = len(m.text) + sum(len(c.raw_arguments) + len(c.name) for c in m.tool_calls)
    return chars // 4 + 4


def _line(m: Message) -> str:
    if m.role == "tool":
        return f"tool result ({m.name or m.tool_call_id}): {m.text}"
    calls = "".join(f" [called {c.name}({c.raw_arguments})]" for c in m.tool_calls)
    return f"{m.role}: {m.text}{calls}"


class Conversation:
    """Sync twin of :class:`AsyncConversation` (``Client.conversation(...)``)."""

    def __init__(self, client: Client, conv: AsyncConversation) -> None:
        self._client, self._conv = client, conv

    def __repr__(self) -> str:
        return repr(self._conv)

    def __getattr__(self, name: str) -> Any:  # model, messages, summary, tokens(), save()...
        return getattr(self._conv, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_client", "_conv"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._conv, name, value)

    def send(self, content: str | MessageLike | None, **kwargs: Any) -> Response:
        return self._client._loop.run(self._conv.send(content, **kwargs))

    def stream(self, content: str | MessageLike,
               **kwargs: Any) -> Iterator[StreamEvent | ToolResultEvent]:
        events = self._conv.stream(content, **kwargs)
        end = object()

        async def step() -> Any:
            return await anext(events, end)

        try:
            while (event := self._client._loop.run(step())) is not end:
                yield event
        finally:  # the caller stopped early: close the stream (and its connection) now
            self._client._loop.run(events.aclose())

    def compact(self) -> bool:
        return self._client._loop.run(self._conv.compact())

    @classmethod
    def load(cls, path: str | Path, client: Client,
             tools: Sequence[ToolLike] | None = None, **settings: Any) -> Conversation:
        return cls(client, AsyncConversation.from_dict(_read(path), client.aio, tools,
                                                       **settings))
