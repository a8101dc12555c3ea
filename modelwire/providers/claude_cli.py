"""Claude Code CLI codec: ``claude -p --output-format stream-json`` as a wire.

The ``claude-cli`` row runs the ``claude`` program (npm ``@anthropic-ai/claude-code``)
through the subprocess transport. This codec is pure: ``encode`` builds the
program's arguments and its stdin, and the events it prints (one JSON object a
line, which the transport frames as SSE ``data:`` events) decode like any
other stream:

* ``stream_event`` lines (``--include-partial-messages``, sent for streamed
  calls) carry the Anthropic stream events: their text and thinking deltas
  become modelwire deltas;
* ``assistant`` lines carry whole messages: their text is used only when no
  partial events came for that message (non-streamed calls); synthetic
  messages (model ``<synthetic>``: the program's own error notes) never count;
* the ``result`` line is the terminal event: usage (reported, Anthropic's
  counts normalized as in the anthropic codec), the program's cost
  (``total_cost_usd``) and ``session_id`` land in ``Response.raw``; an
  ``is_error`` result becomes a typed error (``api_error_status`` /
  ``api_error_type`` first, then the message text);
* the transport's own ``exit`` event (the program's exit status and the tail
  of its stderr) turns a non-zero exit without a result into a typed error.

Conversation mapping: system messages become ``--system-prompt`` (replacing
Claude Code's own), a single user message is the prompt, and earlier turns
are rendered as a transcript before the last user message. Tools are turned
off (``--tools ""``) so the program only answers; modelwire tool calls,
images, and sampling parameters the program has no flag for are refused with
:class:`~modelwire.errors.UnsupportedFeatureError` rather than dropped.
The program's own retries are off (``CLAUDE_CODE_MAX_RETRIES=0``, no
non-streaming fallback) so that modelwire's retry middleware is the one place
that retries, and a streamed answer is never replayed twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .. import errors as e
from ..accumulate import DONE, Delta, Finish, Meta, StreamAccumulator
from ..errors import MalformedResponseError, ProviderError, UnsupportedFeatureError, error_for
from ..pipeline import Call
from ..registry import ProviderSpec
from ..response import FinishReason, ReasoningDelta, Response, TextDelta, UsageUpdate
from ..transports.base import WireRequest
from ..wire.sse import SSEEvent
from .anthropic import _ERROR_KINDS, usage_from
from .base import dumps, load_json

INSTALL_HINT = "npm install -g @anthropic-ai/claude-code"

# Environment the program runs with unless the caller's env says otherwise.
DEFAULT_ENV: dict[str, str] = {
    "CLAUDE_CODE_MAX_RETRIES": "0",
    "CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK": "1",
    # else a 400 is quietly re-sent (up to 3 times) with fewer beta headers
    "CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
}

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}

# Message text -> error kind, for error results without an HTTP status.
_TEXT_KINDS: tuple[tuple[str, type[ProviderError]], ...] = (
    ("connection to the api was lost", e.ProviderConnectionError),
    ("streamtruncated", e.ProviderConnectionError),
    ("connection error", e.ProviderConnectionError),
    ("timed out", e.RequestTimeoutError),
    ("timeout", e.RequestTimeoutError),
    ("malformed response", e.MalformedResponseError),
    ("invalid api key", e.AuthenticationError),
    ("prompt is too long", e.ContextWindowExceededError),
)


_API_ERROR = re.compile(r"^\s*API Error:\s*([1-5]\d\d)\b")


class ClaudeCLICodec:
    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec
        self.provider = spec.name

    # --- encode -----------------------------------------------------------

    def encode(self, call: Call) -> WireRequest:
        _refuse_unsupported(call)
        opts = call.target.options
        args = ["-p", "--output-format", "stream-json", "--verbose",
                "--model", call.target.model, "--tools", "", "--no-session-persistence",
                "--strict-mcp-config"]
        if call.stream:
            args.append("--include-partial-messages")
        system, prompt = _prompt(call)
        if system:
            args += ["--system-prompt", system]
        extra = opts.get("args") or []
        if not isinstance(extra, (list, tuple)):
            raise e.ConfigurationError(
                f"the claude-cli 'args' option must be a list of strings, got {extra!r}")
        args += [str(a) for a in extra]
        # The caller's ``env`` option (it may hold keys) never enters the request: the
        # transport adds it from its own options, so no repr or log can show it.
        env = {"CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(call.max_tokens)} \
            if call.max_tokens is not None else {}
        body = {"program": opts.get("program"), "args": args, "stdin": prompt,
                "defaults": DEFAULT_ENV, "env": env, "cwd": opts.get("cwd"),
                "final_type": "result"}
        return WireRequest("EXEC", f"claude-cli://{call.target.model}", {}, dumps(body),
                           stream=call.stream)

    # --- decode -----------------------------------------------------------

    def decode(self, body: bytes, headers: Mapping[str, str], call: Call) -> Response:
        """The whole stdout (JSON lines; the transport's exit event last)."""
        decoder = _Decoder(self.provider)
        acc = StreamAccumulator(call.target.provider, call.target.model)
        # split on "\n" only: str.splitlines() also splits on U+2028, U+0085, ...,
        # which JSON strings may hold raw
        for line in body.decode("utf-8", "replace").split("\n"):
            if not line.strip():
                continue
            event = SSEEvent("exit", line[5:]) if line.startswith("exit:") else \
                SSEEvent("message", line)
            acc.feed(decoder(event))
        if not acc.done:
            noise = f"; it printed: {decoder.noise[0][:200]!r}" if decoder.noise else ""
            raise MalformedResponseError(
                "the claude program's output ended without its result event" + noise,
                provider=self.provider, model=call.target.model)
        return acc.response()

    def stream_decoder(self) -> Callable[[SSEEvent], list[Delta]]:
        return _Decoder(self.provider)

    def decode_event(self, event: SSEEvent) -> list[Delta]:
        return _Decoder(self.provider)(event)

    def classify_error(self, status: int, headers: Mapping[str, str],
                       body: bytes) -> ProviderError:
        """The transport answers >= 400 only when it could not run the program."""
        text = body.decode("utf-8", "replace")[:500]
        return error_for(status, f"the claude program failed: {text}", body=text)


class _Decoder:
    """One run's lines -> deltas. Remembers which messages streamed partial events."""

    __slots__ = ("ended", "noise", "partial_ids", "provider", "stop_reason")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.partial_ids: set[str] = set()
        self.stop_reason: str | None = None
        self.ended = False
        self.noise: list[str] = []  # non-JSON lines (warnings a wrapper printed), kept for errors

    def __call__(self, event: SSEEvent) -> list[Delta]:
        if event.event == "exit":
            return self._exit(event.data)
        if self.ended:
            return []  # nothing after the result is part of the answer
        if not event.data.lstrip().startswith(("{", "[")):
            if len(self.noise) < 5:  # a line that is no JSON at all: not an event
                self.noise.append(event.data)
            return []
        data = load_json(event.data, "claude stream-json line")
        if not isinstance(data, dict):
            raise MalformedResponseError(
                f"claude printed a JSON {type(data).__name__}, expected an object",
                provider=self.provider)
        kind = data.get("type")
        if kind == "stream_event":
            return self._partial(data)
        if kind == "assistant":
            return self._assistant(data)
        if kind == "result":
            return self._result(data)
        return []  # system/init, status, user echoes, hooks: not part of the answer

    def _partial(self, data: Mapping[str, Any]) -> list[Delta]:
        ev = data.get("event")
        if not isinstance(ev, dict):
            raise MalformedResponseError("claude stream_event without an event object",
                                         provider=self.provider, body=data)
        if (mid := data.get("api_message_id")) is not None:
            self.partial_ids.add(str(mid))
        t = ev.get("type")
        if t == "message_start":
            msg = _obj(ev.get("message"))
            if msg.get("id"):
                self.partial_ids.add(str(msg["id"]))
            return [Meta(model=_str(msg.get("model")))]
        if t == "content_block_delta":
            delta = _obj(ev.get("delta"))
            if delta.get("type") == "text_delta":
                return [TextDelta(str(delta.get("text", "")))]
            if delta.get("type") == "thinking_delta":
                return [ReasoningDelta(str(delta.get("thinking", "")))]
        if t == "message_delta":
            reason = _obj(ev.get("delta")).get("stop_reason")
            if reason:
                self.stop_reason = str(reason)
        return []

    def _assistant(self, data: Mapping[str, Any]) -> list[Delta]:
        msg = data.get("message")
        if not isinstance(msg, dict):
            raise MalformedResponseError("claude assistant line without a message object",
                                         provider=self.provider, body=data)
        if msg.get("model") == "<synthetic>" or str(msg.get("id")) in self.partial_ids:
            return []  # the program's own notes, or text already streamed
        content = msg.get("content") or []
        if not isinstance(content, list):
            raise MalformedResponseError("claude assistant message content is not a list",
                                         provider=self.provider, body=data)
        out: list[Delta] = [Meta(model=_str(msg.get("model")))]
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                out.append(TextDelta(str(block.get("text", ""))))
            elif isinstance(block, dict) and block.get("type") == "thinking":
                out.append(ReasoningDelta(str(block.get("thinking", ""))))
        if msg.get("stop_reason"):
            self.stop_reason = str(msg["stop_reason"])
        return out

    def _result(self, data: Mapping[str, Any]) -> list[Delta]:
        self.ended = True
        if data.get("is_error") or data.get("subtype") not in ("success", None):
            raise self._error(data)
        out: list[Delta] = []
        usage = data.get("usage")
        if isinstance(usage, dict):
            out.append(UsageUpdate(usage_from(usage)))
        raw = {"session_id": data.get("session_id"),
               "total_cost_usd": data.get("total_cost_usd"), "result": dict(data)}
        out.append(Meta(response_id=_str(data.get("session_id")), raw=raw))
        reason = _str(data.get("stop_reason")) or self.stop_reason or "end_turn"
        out += [Finish(_FINISH.get(reason, "stop"), reason), DONE]
        return out

    def _error(self, data: Mapping[str, Any]) -> ProviderError:
        message = str(data.get("result") or data.get("errors") or data.get("subtype")
                      or "the claude program reported an error")
        status = data.get("api_error_status")
        status = status if isinstance(status, int) else None
        kind = _ERROR_KINDS.get(str(data.get("api_error_type")))
        if status is None and (m := _API_ERROR.match(message)):
            status = int(m.group(1))  # "API Error: 401 {...}": the status is in the text
        if kind is None and status is None:
            low = message.lower()
            kind = next((k for text, k in _TEXT_KINDS if text in low), e.ProviderError)
        return error_for(status, message, kind=kind, provider=self.provider, body=dict(data),
                         code=_str(data.get("api_error_type")))

    def _exit(self, data: str) -> list[Delta]:
        info = load_json(data, "claude exit event")
        code = info.get("code") if isinstance(info, dict) else None
        if code == 0 or self.ended:
            return []
        stderr = str(info.get("stderr") or "").strip() if isinstance(info, dict) else ""
        raise ProviderError(
            f"the claude program exited with status {code} before its result"
            + (f": {stderr[-500:]}" if stderr else " (no stderr)"),
            provider=self.provider, body=info, code="exit_status")


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None


def _refuse_unsupported(call: Call) -> None:
    def no(what: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(
            f"the claude-cli provider cannot pass {what} to the claude program; "
            "use the anthropic provider for it")
    if call.tools or call.tool_choice is not None:
        raise no("tools")
    for name in ("temperature", "top_p", "seed", "stop"):
        if getattr(call, name) is not None:
            raise no(name)
    for m in call.messages:
        if m.role == "tool" or m.tool_calls:
            raise no("tool calls or tool results")
        if any(not hasattr(p, "text") for p in m.parts):
            raise no("images")


def _prompt(call: Call) -> tuple[str, str]:
    """(system prompt, stdin prompt)."""
    if call.mode == "text":
        return "", call.prompt or ""
    system = "\n\n".join(m.text for m in call.messages if m.role == "system")
    turns = [m for m in call.messages if m.role != "system"]
    if not turns or turns[-1].role != "user":
        raise e.InvalidMessageError(
            "the claude-cli provider needs the conversation to end with a user message")
    if len(turns) == 1:
        return system, turns[0].text
    history = "\n\n".join(f"{'User' if m.role == 'user' else 'Assistant'}: {m.text}"
                          for m in turns[:-1])
    return system, (f"<conversation_so_far>\n{history}\n</conversation_so_far>\n\n"
                    f"{turns[-1].text}")
