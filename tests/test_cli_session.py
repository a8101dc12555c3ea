"""`modelwire chat` as a conversation: `-c` continues the last one; the interactive session."""

from __future__ import annotations

import io
import json
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
