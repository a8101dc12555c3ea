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

import hashlib
import json
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError
from .response import Response, StreamEvent, ToolCall
from .types import _ROLES, ImagePart, Message, MessageLike, TextPart, ToolLike, to_messages

if TYPE_CHECKING:
    from .client import AsyncClient
    from .sync import Client
    from .tools.loop import ToolResultEvent

FORMAT_VERSION = 1
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
        self.tools = list(tools or ())
        self.max_context_tokens, self.summarize_with = max_context_tokens, summarize_with
        self.keep_recent, self.settings = keep_recent, settings
        self.messages: list[Message] = to_messages(list(messages)) if messages else []
        self.summary: str | None = None
        self.summary_cache: dict[str, str] = {}
        self.last_response: Response | None = None

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

    async def send(self, content: str | MessageLike, **kwargs: Any) -> Response:
        """Append the user's turn, get the answer (running tools if any), append it."""
        self._append_user(content)
        await self.compact()
        options = {**self.settings, **kwargs}
        if self.tools:
            result = await self.client.run_tools(self.model, self.context(), tools=self.tools,
                                                 **options)
            added = result.messages[len(self.context()):]
            self.messages += added
            self.last_response = result.response
            return result.response
        response = await self.client.complete(self.model, self.context(), **options)
        self.messages.append(response.to_message())
        self.last_response = response
        return response

    async def stream(self, content: str | MessageLike,
                     **kwargs: Any) -> AsyncIterator[StreamEvent | ToolResultEvent]:
        """Stream the answer (with tools: every turn, and a ToolResultEvent per tool run);
        the messages are appended once it has ended."""
        self._append_user(content)
        await self.compact()
        options = {**self.settings, **kwargs}
        if self.tools:
            ts = self.client.stream_tools(self.model, self.context(), tools=self.tools,
                                          **options)
            async for item in ts:
                yield item
            self.messages += ts.result.messages[len(self.context()):]
            self.last_response = ts.result.response
            return
        async with self.client.stream(self.model, self.context(), **options) as s:
            async for event in s:
                yield event
            response = s.response
        self.messages.append(response.to_message())
        self.last_response = response

    def _append_user(self, content: str | MessageLike) -> None:
        self.messages += to_messages([{"role": "user", "content": content}]
                                     if isinstance(content, str) else [content])

    # --- the budget ------------------------------------------------------------------

    def tokens(self) -> tuple[int, str]:
        """(tokens of the next call's messages, "estimated"): ~4 characters a token."""
        return sum(_estimate(m) for m in self.context()), "estimated"

    async def compact(self) -> bool:
        """Summarize older turns if the history is past its budget; True if it did."""
        if self.max_context_tokens is None or self.tokens()[0] <= self.max_context_tokens:
            return False
        cut = len(self.messages) - self.keep_recent
        while 0 < cut < len(self.messages) and self.messages[cut].role == "tool":
            cut -= 1  # never separate a tool result from its call
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
            summary = self.summary_cache[key] = response.text.strip()
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
             tools: Sequence[ToolLike] | None = None) -> AsyncConversation:
        return _load(path, client, tools)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], client: AsyncClient,
                  tools: Sequence[ToolLike] | None = None) -> AsyncConversation:
        if data.get("format") != "modelwire.conversation" or data.get("version") != 1:
            raise ConfigurationError("not a saved modelwire conversation (format/version)")
        _check_saved(data)
        conv = cls(client, data.get("model"), system=data.get("system"), tools=tools,
                   max_context_tokens=data.get("max_context_tokens"),
                   summarize_with=data.get("summarize_with"),
                   keep_recent=data.get("keep_recent", 6), **dict(data.get("settings") or {}))
        messages = []
        for i, m in enumerate(data.get("messages") or ()):
            try:
                messages.append(message_from_dict(m))
            except (KeyError, TypeError, AttributeError, IndexError) as e:
                raise ConfigurationError(
                    f"saved conversation: messages[{i}] is damaged ({type(e).__name__}: "
                    f"{e})") from None
        conv.messages = messages
        conv.summary = data.get("summary")
        conv.summary_cache = dict(data.get("summary_cache") or {})
        return conv


# --- helpers ----------------------------------------------------------------------------


def message_to_dict(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role}
    if isinstance(m.content, str):
        out["content"] = m.content
    else:
        out["content"] = [{"type": "text", "text": p.text} if isinstance(p, TextPart)
                          else {"type": "image_url", "image_url": {"url": p.url,
                                                                   "detail": p.detail}}
                          for p in m.content]
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments,
                              "raw_arguments": c.raw_arguments,
                              "arguments_error": c.arguments_error,
                              "provider_data": c.provider_data} for c in m.tool_calls]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        out["name"] = m.name
    return out


def message_from_dict(d: Mapping[str, Any]) -> Message:
    content = d.get("content", "")
    if isinstance(content, list):
        content = [TextPart(p.get("text", "")) if p.get("type") == "text"
                   else ImagePart(p["image_url"]["url"], p["image_url"].get("detail"))
                   for p in content]
    calls = [ToolCall(c["id"], c["name"], c.get("arguments"), c.get("raw_arguments", "{}"),
                      c.get("arguments_error"), c.get("provider_data"))
             for c in d.get("tool_calls") or ()]
    return Message(d["role"], content, calls, d.get("tool_call_id"), d.get("name"))


def _load(path: str | Path, client: AsyncClient,
          tools: Sequence[ToolLike] | None) -> AsyncConversation:
    data = _read(path)
    try:
        return AsyncConversation.from_dict(data, client, tools)
    except ConfigurationError as e:  # say which file
        raise ConfigurationError(f"{str(path)!r}: {e}") from None


def _read(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigurationError(f"cannot read conversation {str(path)!r}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{str(path)!r} is not a saved modelwire conversation")
    return data


_SAVED_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str, type(None)), "system": (str, type(None)), "summary": (str, type(None)),
    "summarize_with": (str, type(None)), "settings": (dict, type(None)),
    "summary_cache": (dict, type(None)), "messages": (list, type(None)),
}


def _check_saved(data: Mapping[str, Any]) -> None:
    """A saved conversation's fields have their saved types, and every message is a
    message: a damaged file is a ConfigurationError, never a TypeError from deep inside."""
    for key, kinds in _SAVED_TYPES.items():
        if not isinstance(data.get(key), kinds):
            raise ConfigurationError(
                f"saved conversation: {key!r} has the wrong type "
                f"({type(data.get(key)).__name__}; the file is damaged)")
    for i, m in enumerate(data.get("messages") or ()):
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            role = m.get("role") if isinstance(m, dict) else None
            raise ConfigurationError(
                f"saved conversation: messages[{i}] is not a message (role {role!r}; "
                f"expected one of {', '.join(_ROLES)}) (the file is damaged)")
        content = m.get("content", "")
        if not isinstance(content, (str, list)) or (isinstance(content, list) and not all(
                isinstance(p, dict) for p in content)):
            raise ConfigurationError(
                f"saved conversation: messages[{i}].content is damaged")


def _jsonable(settings: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in settings.items():
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue  # a response_format class, a callable...: not saved
        out[k] = v
    return out


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

    def send(self, content: str | MessageLike, **kwargs: Any) -> Response:
        return self._client._loop.run(self._conv.send(content, **kwargs))

    def stream(self, content: str | MessageLike,
               **kwargs: Any) -> Iterator[StreamEvent | ToolResultEvent]:
        events = self._conv.stream(content, **kwargs)
        end = object()

        async def step() -> Any:
            return await anext(events, end)

        while (event := self._client._loop.run(step())) is not end:
            yield event

    def compact(self) -> bool:
        return self._client._loop.run(self._conv.compact())

    @classmethod
    def load(cls, path: str | Path, client: Client,
             tools: Sequence[ToolLike] | None = None) -> Conversation:
        return cls(client, _load(path, client.aio, tools))
