"""`modelwire chat` as a conversation: `-c` continues the last one; the interactive session."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import modelwire.cli.app as cli_app
from modelwire import AsyncClient
from modelwire.cli import session
from modelwire.cli.app import app
from modelwire.mock import MockReply
from modelwire.transports.mock import MockTransport

runner = CliRunner()


@pytest.fixture
def mocks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[MockTransport]:
    monkeypatch.setenv("MODELWIRE_DATA_DIR", str(tmp_path / "data"))
    made: list[MockTransport] = []

    def factory() -> AsyncClient:
        client = AsyncClient(middleware=[])
        made.append(client.mock)
        return client

    monkeypatch.setattr(cli_app, "new_client", factory)
    return made


def test_continue_keeps_the_last_conversation(mocks: list[MockTransport],
                                              tmp_path: Path) -> None:
    first = runner.invoke(app, ["chat", "-c", "-m", "mock/echo", "my name is Ann"])
    assert first.exit_code == 0 and first.stdout == "my name is Ann\n"
    saved = json.loads((tmp_path / "data" / "last_conversation.json").read_text())
    assert saved["model"] == "mock/echo" and len(saved["messages"]) == 2
    second = runner.invoke(app, ["chat", "-c", "what is my name?"])
    assert second.exit_code == 0
    sent = mocks[-1].requests[-1]["messages"]
    assert [m["content"] for m in sent] == ["my name is Ann", "my name is Ann",
                                            "what is my name?"]
    assert mocks[-1].requests[-1]["model"] == "echo"  # the saved model, not a default
    saved = json.loads((tmp_path / "data" / "last_conversation.json").read_text())
    assert len(saved["messages"]) == 4


def test_one_shot_chat_leaves_the_store_alone(mocks: list[MockTransport],
                                              tmp_path: Path) -> None:
    assert runner.invoke(app, ["chat", "-m", "mock/echo", "hi"]).exit_code == 0
    assert not (tmp_path / "data" / "last_conversation.json").exists()


def test_json_is_refused_for_a_conversation(mocks: list[MockTransport]) -> None:
    result = runner.invoke(app, ["chat", "-c", "--json", "-m", "mock/echo", "hi"])
    assert result.exit_code == 2 and "one-shot" in result.stderr


async def test_interactive_session_streams_saves_and_exits(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    monkeypatch.setenv("MODELWIRE_DATA_DIR", str(tmp_path))
    client = AsyncClient(middleware=[])
    client.mock.script(MockReply("hello Ann"), MockReply("fail", status=400),
                       MockReply("you are Ann"))
    conv = session.open_conversation(client, "mock/m", None, resume=False)
    lines = iter(["hi, I am Ann", "", "/help", "this one fails", f"/save {tmp_path}/copy.json",
                  "who am I?", "/exit", "never read"])
    out, err = io.StringIO(), io.StringIO()

    def read(prompt: str) -> str:
        return next(lines)

    assert await session.interactive(conv, read, out, err) == 0
    assert out.getvalue() == "hello Ann\nyou are Ann\n"
    assert "error: BadRequestError" in err.getvalue() and "/exit" in err.getvalue()
    assert next(lines) == "never read"
    assert [m.text for m in conv.messages] == ["hi, I am Ann", "hello Ann", "who am I?",
                                               "you are Ann"]
    copy: Any = json.loads((tmp_path / "copy.json").read_text())
    assert len(copy["messages"]) == 2  # saved before the last turn
    assert len(json.loads(session.last_path().read_text())["messages"]) == 4
    await client.aclose()


async def test_ctrl_d_ends_the_session() -> None:
    client = AsyncClient(middleware=[])
    conv = session.open_conversation(client, "mock/m", None, resume=False)

    def read(prompt: str) -> str:
        raise EOFError

    assert await session.interactive(conv, read, io.StringIO(), io.StringIO()) == 0


async def test_a_mistyped_command_is_not_sent_to_the_model() -> None:
    client = AsyncClient(middleware=[])
    conv = session.open_conversation(client, "mock/m", None, resume=False)
    lines = iter(["/exti", "/savex", "/exit"])
    out, err = io.StringIO(), io.StringIO()
    assert await session.interactive(conv, lambda _: next(lines), out, err) == 0
    assert conv.messages == [] and client.mock.requests == []
    assert err.getvalue().count("unknown command") == 2 and "/exti" in err.getvalue()
    await client.aclose()


async def test_a_failed_save_names_the_path_asked_for(tmp_path: Path) -> None:
    client = AsyncClient(middleware=[])
    conv = session.open_conversation(client, "mock/m", None, resume=False)
    target = tmp_path / "missing-dir" / "copy.json"
    lines = iter([f"/save {target}", "/exit"])
    err = io.StringIO()
    assert await session.interactive(conv, lambda _: next(lines), io.StringIO(), err) == 0
    assert f"could not save to {target}: No such file" in err.getvalue()
    assert ".tmp" not in err.getvalue()  # not the temporary file's name
    await client.aclose()


async def test_ctrl_c_at_the_prompt_ends_the_session_with_130() -> None:
    client = AsyncClient(middleware=[])
    conv = session.open_conversation(client, "mock/m", None, resume=False)

    def read(prompt: str) -> str:
        raise KeyboardInterrupt

    assert await session.interactive(conv, read, io.StringIO(), io.StringIO()) == 130
    await client.aclose()


@pytest.mark.skipif(sys.platform == "win32", reason="a pty and SIGINT are POSIX")
def test_real_process_ctrl_c_at_the_interactive_prompt_exits_130(tmp_path: Path) -> None:
    """SIGINT while input() waits used to do nothing (asyncio.run's handler only
    cancels the main task, which a blocking read never notices)."""
    import os
    import pty
    import select
    import signal
    import subprocess

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(PYTHONPATH=str(root), MODELWIRE_DATA_DIR=str(tmp_path))
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelwire", "chat", "-m", "mock/echo"],
        stdin=follower, stdout=follower, stderr=follower, env=env, cwd=root,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(follower)
    seen = b""
    try:
        while b"> " not in seen:  # the prompt: input() is waiting
            ready, _, _ = select.select([leader], [], [], 30)
            assert ready, f"no prompt; output so far: {seen!r}"
            seen += os.read(leader, 4096)
        _wait_until_blocked_reading(proc.pid)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        try:
            while select.select([leader], [], [], 0.5)[0]:
                seen += os.read(leader, 4096)
        except OSError:  # the follower side closed
            pass
        os.close(leader)
    assert code == 130, seen
    assert b"Traceback" not in seen


def _wait_until_blocked_reading(pid: int) -> None:
    """Until the main thread sleeps in input()'s read: a SIGINT that lands between the
    prompt's write and the read would only be seen at the next line (a race of Python's
    stdio readline, not modelwire's; a person's Ctrl-C never comes that fast)."""
    import time
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():  # not Linux: give it a moment
        time.sleep(0.5)
        return
    for _ in range(3000):
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "S":
            return
        time.sleep(0.01)


def test_continue_with_a_damaged_file_says_how_to_start_afresh(
        mocks: list[MockTransport]) -> None:
    path = session.last_path()
    path.parent.mkdir(parents=True)
    path.write_text('{"format": "modelwire.conversation", "version": 1, "messages": [5]}')
    result = runner.invoke(app, ["chat", "-c", "-m", "mock/echo", "hi"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ConfigurationError: ")
    assert "corrupt" in result.stderr and f"Remove {path} to start afresh" in result.stderr
    assert "Traceback" not in result.stderr


async def test_an_answer_cut_by_an_error_still_ends_its_line() -> None:
    client = AsyncClient(middleware=[])
    client.mock.script(MockReply("half an answer", disconnect_after=2))
    conv = session.open_conversation(client, "mock/m", None, resume=False)
    lines = iter(["hi", "/exit"])
    out, err = io.StringIO(), io.StringIO()
    assert await session.interactive(conv, lambda _: next(lines), out, err) == 0
    assert out.getvalue().endswith("\n") and out.getvalue().strip()
    assert "error: StreamInterruptedError" in err.getvalue()
    await client.aclose()
