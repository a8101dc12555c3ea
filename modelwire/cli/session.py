"""Multi-turn chat for the CLI: the interactive session and ``chat -c``.

The last conversation is kept in the user's data directory
(``$MODELWIRE_DATA_DIR``, else ``$XDG_DATA_HOME/modelwire``, else
``~/.local/share/modelwire``) as ``last_conversation.json``: messages, model
and summary, never a key. Interactive sessions and ``chat -c`` save it after
every turn; one-shot ``chat PROMPT`` leaves it alone.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ..client import AsyncClient
    from ..conversation import AsyncConversation

HELP = "commands: /exit (or Ctrl-D, Ctrl-C) to leave, /save PATH to save a copy, /help"


def data_dir() -> Path:
    explicit = os.environ.get("MODELWIRE_DATA_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "modelwire"


def last_path() -> Path:
    return data_dir() / "last_conversation.json"


def open_conversation(client: AsyncClient, model: str | None, system: str | None,
                      resume: bool, **settings: Any) -> AsyncConversation:
    """The last conversation (``resume``; ``model`` given: continue on that model) or a new one."""
    from ..conversation import AsyncConversation
    path = last_path()
    if resume and path.exists():
        from ..errors import ConfigurationError
        try:
            conv = AsyncConversation.load(path, client)
        except ConfigurationError as e:
            raise ConfigurationError(
                f"{e}. Remove {path} to start afresh") from None
        if model is not None:
            conv.model = model
        if system is not None:
            conv.system = system
        conv.settings.update({k: v for k, v in settings.items() if v is not None})
        return conv
    return client.conversation(model, system=system,
                               **{k: v for k, v in settings.items() if v is not None})


def save_last(conv: AsyncConversation, err: TextIO) -> None:
    path = last_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conv.save(path)
    except OSError as e:  # a read-only home must not break the chat
        err.write(f"modelwire: could not save the conversation to {path}: {e}\n")


async def turn(conv: AsyncConversation, text: str, out: TextIO) -> None:
    """Send one message and write the streamed answer."""
    from ..response import TextDelta
    tail, done = "", False
    try:
        async for event in conv.stream(text):
            if type(event) is TextDelta:
                out.write(event.text)
                out.flush()
                tail = event.text[-1:] or tail
        done = True
    finally:  # also when Ctrl-C or an error cuts the answer: the next line starts clean
        if (tail and tail != "\n") or (done and not tail):
            out.write("\n")
            out.flush()


async def interactive(conv: AsyncConversation, read: Callable[[str], str], out: TextIO,
                      err: TextIO) -> int:
    """The read-send-print loop. ``read`` is ``input``; EOFError (Ctrl-D) ends it."""
    from ..errors import ModelwireError
    err.write(f"modelwire chat with {conv.model or 'the default model'} "
              f"({len(conv.messages)} earlier messages). {HELP}\n")
    while True:
        try:
            line = _read_line(read, "> ")
        except EOFError:
            out.write("\n")
            return 0
        except KeyboardInterrupt:  # Ctrl-C at the prompt leaves, like the shell's exit 130
            out.write("\n")
            return 130
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return 0
        if text == "/help":
            err.write(HELP + "\n")
            continue
        if text == "/save" or text.startswith("/save "):
            target = text[len("/save"):].strip()
            if not target:
                err.write("usage: /save PATH\n")
                continue
            try:
                conv.save(Path(target).expanduser())
                err.write(f"saved to {target}\n")
            except OSError as e:
                err.write(f"could not save to {target}: {e.strerror or e}\n")
            continue
        if _COMMAND.fullmatch(text):  # a mistyped command is not a message for the model
            err.write(f"unknown command {text}; {HELP}\n")
            continue
        try:
            await turn(conv, text, out)
        except ModelwireError as e:  # one failed turn does not end the session
            err.write(f"error: {type(e).__name__}: {' '.join(str(e).split())}\n")
            if conv.messages and conv.messages[-1].role == "user":
                conv.messages.pop()  # the unanswered message is not history
            continue
        save_last(conv, err)


_COMMAND = re.compile(r"/[A-Za-z]+")


def _read_line(read: Callable[[str], str], prompt: str) -> str:
    """``read(prompt)`` with Ctrl-C raising KeyboardInterrupt at once.

    The session runs inside ``asyncio.run``, whose SIGINT handler only cancels the
    main task; a blocking ``input()`` never gives the loop a chance to notice, so
    Ctrl-C at the prompt did nothing until Enter (and then not even that).
    """
    if threading.current_thread() is not threading.main_thread():
        return read(prompt)
    previous = signal.getsignal(signal.SIGINT)
    if previous is None or previous is signal.SIG_IGN:  # not ours to change
        return read(prompt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return read(prompt)
    finally:
        signal.signal(signal.SIGINT, previous)


def stdin_is_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()
