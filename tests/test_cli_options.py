"""CLI habits: --version, python -m modelwire, the call's options on chat and
complete, -v logging."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import modelwire
import modelwire.cli.app as cli_app
from modelwire import AsyncClient
from modelwire.cli.app import app
from modelwire.hooks import Hooks, logger
from modelwire.middleware import Fallback
from modelwire.mock import MockReply
from modelwire.pipeline import Call, Next, Outcome

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


class Recorder:
    """Builds the CLI's clients: fallback, then a middleware that records every
    Call it passes on, with mocks scripted by the test."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.replies: list[MockReply] = []

    async def record(self, call: Call, next: Next) -> Outcome:
        self.calls.append(call)
        return await next(call)

    def __call__(self) -> AsyncClient:
        client = AsyncClient(middleware=[Fallback(hooks=Hooks()), self.record])
        client.mock.script(*self.replies)
        return client


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    r = Recorder()
    monkeypatch.setattr(cli_app, "new_client", r)
    return r


OPTIONS = ["--temperature", "0.3", "--max-tokens", "9", "--seed", "42", "--stop", "END",
           "--stop", "STOP", "--top-p", "0.8", "--timeout", "12.5"]


@pytest.mark.parametrize("command", ["chat", "complete"])
@pytest.mark.parametrize("stream", [True, False])
def test_chat_and_complete_pass_every_call_option(recorder: Recorder, command: str,
                                                  stream: bool) -> None:
    args = [command, "-m", "mock/a", *OPTIONS, "--fallback", "mock/b", "--fallback", "mock/c"]
    result = runner.invoke(app, [*args, *([] if stream else ["--no-stream"]), "hello"])
    assert result.exit_code == 0, result.stderr
    [call] = recorder.calls
    assert (call.temperature, call.max_tokens, call.seed, call.stop, call.top_p) == (
        0.3, 9, 42, ["END", "STOP"], 0.8)
    assert call.timeouts.total == 12.5
    assert [t.name for t in call.fallbacks] == ["mock/b", "mock/c"]
    assert call.stream is stream
    assert call.mode == ("chat" if command == "chat" else "text")


def test_options_left_out_stay_unset(recorder: Recorder) -> None:
    assert runner.invoke(app, ["chat", "-m", "mock/a", "hello"]).exit_code == 0
    [call] = recorder.calls
    assert (call.temperature, call.max_tokens, call.seed, call.stop, call.top_p) == (
        None, None, None, None, None)
    assert call.fallbacks == ()


def test_fallback_serves_when_the_first_model_fails(recorder: Recorder) -> None:
    recorder.replies = [MockReply(status=404), MockReply("from the fallback")]
    result = runner.invoke(app, ["chat", "-m", "mock/a", "--fallback", "mock/b", "--json",
                                 "hello"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["text"], data["model"]) == ("from the fallback", "b")
    assert [c.target.name for c in recorder.calls] == ["mock/a", "mock/b"]


def test_bad_option_values_are_usage_errors() -> None:
    for bad in (["--max-tokens", "0"], ["--timeout", "0"], ["--temperature", "hot"]):
        result = runner.invoke(app, ["chat", "-m", "mock/a", *bad, "hi"])
        assert result.exit_code == 2, bad


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"modelwire {modelwire.__version__}\n")


def test_python_dash_m_modelwire() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "modelwire", "--version"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, f"modelwire {modelwire.__version__}\n")
    proc = subprocess.run([sys.executable, "-m", "modelwire", "chat", "-m", "mock/echo",
                           "hello from -m"], env=env, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "hello from -m\n"), proc.stderr


@pytest.fixture
def restore_logger() -> Iterator[None]:
    handlers, level = list(logger.handlers), logger.level
    llama_level = logging.getLogger("modelwire.llama").level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logging.getLogger("modelwire.llama").setLevel(llama_level)


@pytest.mark.usefixtures("restore_logger")
@pytest.mark.parametrize("flag, llama_debug", [("-v", False), ("-vv", False), ("-vvv", True)])
def test_llama_cpp_debug_lines_only_at_vvv(recorder: Recorder, flag: str,
                                           llama_debug: bool) -> None:
    """-vv printed ~2,000 lines of llama.cpp's model metadata per local call."""
    recorder.replies = [MockReply("ok")]
    result = runner.invoke(app, [flag, "chat", "-m", "mock/a", "hi"])
    assert result.exit_code == 0, result.stderr
    llama = logging.getLogger("modelwire.llama")
    assert llama.isEnabledFor(logging.DEBUG) is llama_debug
    assert llama.isEnabledFor(logging.WARNING)  # its warnings and errors always show


@pytest.mark.usefixtures("restore_logger")
@pytest.mark.parametrize("flag, request_lines", [("-v", False), ("-vv", True)])
def test_verbose_logs_on_stderr(recorder: Recorder, flag: str, request_lines: bool) -> None:
    recorder.replies = [MockReply(status=503), MockReply("ok")]
    result = runner.invoke(app, [flag, "chat", "-m", "mock/a", "--fallback", "mock/b", "hi"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "ok\n"  # logs never mix into the answer
    assert "falling back from mock/a to mock/b" in result.stderr
    assert ("mock/b stream opened" in result.stderr) is request_lines
    assert logger.level == (logging.DEBUG if request_lines else logging.INFO)


def test_no_log_lines_without_verbose(recorder: Recorder) -> None:
    recorder.replies = [MockReply(status=503), MockReply("ok")]
    result = runner.invoke(app, ["chat", "-m", "mock/a", "--fallback", "mock/b", "hi"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "ok\n", "")


def test_health_without_a_key_says_so_and_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    result = runner.invoke(app, ["health", "--json", "openai", "local"])
    assert result.exit_code == 0, result.stderr
    openai, local = json.loads(result.stdout)
    assert (openai["key_present"], openai["reachable"], openai["error"]) == (
        False, None, "no key: set OPENAI_API_KEY")
    assert (local["key_required"], local["key_present"]) == (False, False)
    table = runner.invoke(app, ["health", "openai", "local"]).stdout
    assert "no key: set OPENAI_API_KEY" in " ".join(table.split())  # may wrap at 80 columns
    assert "not needed" in next(ln for ln in table.splitlines() if " local " in ln)
