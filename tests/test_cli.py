"""The ``modelwire`` command-line program, in-process (CliRunner) and as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import modelwire.cli.app as cli_app
from modelwire import AsyncClient
from modelwire.cli import INSTALL_HINT, main
from modelwire.cli.app import app
from modelwire.cli.render import mask_url
from modelwire.mock import MockReply
from modelwire.registry import all_specs
from modelwire.transports.mock import MockTransport

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-test-SECRET"
RESPONSE_KEYS = {"text", "tool_calls", "finish_reason", "usage", "provider", "model",
                 "request_id", "latency", "cached"}

runner = CliRunner()


def invoke(*args: str, input: str | None = None) -> Any:
    result = runner.invoke(app, list(args), input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"unexpected {result.exception!r}\n{result.stderr}")
    return result


class Scripted:
    """Clients the CLI built, whose mocks answer what the test queued first."""

    def __init__(self) -> None:
        self.mocks: list[MockTransport] = []  # kept: closing a client drops its transports
        self.queue: list[MockReply] = []

    def script(self, replies: list[MockReply]) -> None:
        self.queue.extend(replies)

    def __call__(self) -> AsyncClient:
        client = AsyncClient(middleware=[])
        client.mock.script(*self.queue)
        self.queue.clear()
        self.mocks.append(client.mock)
        return client

    @property
    def sent(self) -> dict[str, Any]:
        """The last request body the most recent client's mock received."""
        return self.mocks[-1].requests[-1]


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Scripted:
    """Make the CLI use pre-scripted mock clients without retry middleware."""
    factory = Scripted()
    monkeypatch.setattr(cli_app, "new_client", factory)
    return factory


# --- chat ---------------------------------------------------------------------------


def test_chat_streams_the_echo() -> None:
    result = invoke("chat", "-m", "mock/echo", "hello there")
    assert result.exit_code == 0
    assert result.stdout == "hello there\n"
    assert result.stderr == ""


def test_chat_writes_and_flushes_each_delta(monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[tuple[str, str]] = []

    class Recorder:
        def write(self, s: str) -> int:
            log.append(("write", s))
            return len(s)

        def flush(self) -> None:
            log.append(("flush", ""))

        def isatty(self) -> bool:
            return False

    async def run() -> None:
        async with AsyncClient(middleware=[]) as client:
            client.mock.script(MockReply("one two three"))
            await cli_app._stream_out(client.stream("mock/m", "q"), False, False)

    monkeypatch.setattr(sys, "stdout", Recorder())
    asyncio.run(run())
    assert log == [("write", "one"), ("flush", ""), ("write", " two"), ("flush", ""),
                   ("write", " three"), ("flush", ""), ("write", "\n"), ("flush", "")]


def test_chat_no_stream_uses_a_plain_call(scripted: Scripted) -> None:
    scripted.script([MockReply("whole answer")])
    result = invoke("chat", "-m", "mock/m", "--no-stream", "q")
    assert (result.exit_code, result.stdout) == (0, "whole answer\n")
    assert "stream" not in scripted.sent


def test_chat_streaming_request_is_a_stream(scripted: Scripted) -> None:
    invoke("chat", "-m", "mock/m", "q")
    assert scripted.sent["stream"] is True


@pytest.mark.parametrize("extra", [[], ["--no-stream"]])
def test_chat_json_prints_one_response_object(extra: list[str]) -> None:
    result = invoke("chat", "-m", "mock/echo", "--json", *extra, "count these four words")
    assert result.exit_code == 0
    assert result.stdout.count("\n") == 1
    data = json.loads(result.stdout)
    assert set(data) == RESPONSE_KEYS
    assert data["text"] == "count these four words"
    assert (data["provider"], data["model"], data["finish_reason"]) == ("mock", "echo", "stop")
    assert data["usage"]["input_tokens"] == 4 and data["usage"]["output_tokens"] == 4
    assert data["usage"]["source"] == "reported"
    assert data["request_id"].startswith("chatcmpl-")
    assert data["tool_calls"] == [] and data["latency"] >= 0


def test_chat_json_includes_tool_calls(scripted: Scripted) -> None:
    scripted.script([MockReply(tool_calls=[("lookup", {"q": "x"})])])
    data = json.loads(invoke("chat", "-m", "mock/m", "--json", "q").stdout)
    assert data["finish_reason"] == "tool_calls"
    assert [(c["name"], c["arguments"]) for c in data["tool_calls"]] == [("lookup", {"q": "x"})]


def test_chat_reads_the_prompt_from_stdin() -> None:
    result = invoke("chat", "-m", "mock/echo", input="from stdin\n")
    assert (result.exit_code, result.stdout) == (0, "from stdin\n")


def test_chat_empty_stdin_is_a_usage_error() -> None:
    result = invoke("chat", "-m", "mock/echo", input="")
    assert result.exit_code == 2
    assert "prompt is empty" in result.stderr


def test_chat_forwards_system_temperature_and_max_tokens(scripted: Scripted) -> None:
    invoke("chat", "-m", "mock/m", "-s", "be terse", "--temperature", "0.2",
           "--max-tokens", "7", "question")
    sent = scripted.sent
    assert sent["messages"] == [{"role": "system", "content": "be terse"},
                                {"role": "user", "content": "question"}]
    assert sent["temperature"] == 0.2
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 7


def test_chat_reports_a_length_stop_and_tool_calls_on_stderr(scripted: Scripted) -> None:
    scripted.script([MockReply("cut", finish_reason="length",
                               tool_calls=[("f", {"a": 1})])])
    result = invoke("chat", "-m", "mock/m", "q")
    assert result.stdout == "cut\n"
    assert 'tool call: f({"a": 1})' in result.stderr
    assert "finish_reason=length" in result.stderr


def test_chat_reasoning_is_hidden_unless_asked(scripted: Scripted) -> None:
    scripted.script([MockReply("answer", reasoning="secret thoughts")])
    result = invoke("chat", "-m", "mock/m", "q")
    assert result.stdout == "answer\n" and "thoughts" not in result.stdout + result.stderr
    scripted.script([MockReply("answer", reasoning="secret thoughts")])
    result = invoke("chat", "-m", "mock/m", "--reasoning", "q")
    assert result.stdout == "answer\n" and "secret thoughts" in result.stderr


# --- errors ---------------------------------------------------------------------------


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_missing_key_is_a_configuration_error() -> None:
    result = invoke("chat", "-m", "openai/gpt-4o-mini", "hi")
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert line.startswith("error: MissingAPIKeyError: ")
    assert "OPENAI_API_KEY" in line
    assert result.stdout == ""


def test_unknown_provider_is_named() -> None:
    result = invoke("chat", "-m", "nope/model", "hi")
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert line.startswith("error: UnknownProviderError: ")
    assert "'nope'" in line and "mock" in line  # lists the known providers


def test_bad_model_id_is_a_configuration_error() -> None:
    result = invoke("chat", "-m", "no-slash", "hi")
    assert result.exit_code == 2
    assert _one_error_line(result.stderr).startswith("error: InvalidModelError: ")


@pytest.mark.parametrize("status, kind", [(500, "ServerError"), (429, "RateLimitError")])
def test_provider_error_exits_1(scripted: Scripted, status: int, kind: str) -> None:
    scripted.script([MockReply(status=status, error="scripted failure")])
    result = invoke("chat", "-m", "mock/m", "hi")
    assert result.exit_code == 1
    line = _one_error_line(result.stderr)
    assert line.startswith(f"error: {kind}: ") and "scripted failure" in line


def test_interrupted_stream_keeps_partial_output_then_one_error_line(scripted: Scripted) -> None:
    scripted.script([MockReply("partial words here", disconnect_after=3)])
    result = invoke("chat", "-m", "mock/m", "hi")
    assert result.exit_code == 1
    assert result.stdout == "partial words\n"  # the line is ended before the error
    assert _one_error_line(result.stderr).startswith("error: StreamInterruptedError: ")


def test_ctrl_c_exits_130_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted() -> AsyncClient:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_app, "new_client", interrupted)
    result = invoke("chat", "-m", "mock/m", "hi")
    assert result.exit_code == 130
    assert result.stderr == "" and result.stdout == ""


@pytest.fixture
def auth_failing_server() -> Iterator[str]:
    """A local OpenAI-compatible server that rejects every key with a 401."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = json.dumps({"error": {"message": "Incorrect API key provided: sk-t***RET.",
                                         "type": "invalid_request_error",
                                         "code": "invalid_api_key"}}).encode()
            self.send_response(401)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_provider_error_over_http_exits_1(monkeypatch: pytest.MonkeyPatch,
                                          auth_failing_server: str) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", auth_failing_server)
    result = invoke("chat", "-m", "openai/gpt-4o-mini", "hi")
    assert result.exit_code == 1
    line = _one_error_line(result.stderr)
    assert line.startswith("error: AuthenticationError: ") and "HTTP 401" in line
    assert SECRET not in result.stdout + result.stderr


# --- complete -------------------------------------------------------------------------


def test_complete_streams_a_text_completion(scripted: Scripted) -> None:
    result = invoke("complete", "-m", "mock/echo", "once upon a time")
    assert (result.exit_code, result.stdout) == (0, "once upon a time\n")
    sent = scripted.sent
    assert sent["prompt"] == "once upon a time" and "messages" not in sent


def test_complete_json_and_max_tokens(scripted: Scripted) -> None:
    result = invoke("complete", "-m", "mock/echo", "--json", "--max-tokens", "2",
                    "one two three")
    data = json.loads(result.stdout)
    assert set(data) == RESPONSE_KEYS
    assert (data["text"], data["finish_reason"]) == ("one two", "length")
    assert scripted.sent["max_tokens"] == 2


def test_complete_no_stream(scripted: Scripted) -> None:
    result = invoke("complete", "-m", "mock/echo", "--no-stream", "plain")
    assert result.stdout == "plain\n"
    assert "stream" not in scripted.sent


# --- providers ------------------------------------------------------------------------


def test_providers_table_lists_every_row_and_never_a_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    result = invoke("providers")
    assert result.exit_code == 0
    out = result.stdout
    assert SECRET not in out + result.stderr
    lines = out.splitlines()
    for spec in all_specs():
        assert any(f" {spec.name} " in ln for ln in lines), spec.name
    i = next(i for i, ln in enumerate(lines) if " openai " in ln)
    assert " set " in lines[i] and "https://api.openai.com/v1" in lines[i]
    assert "OPENAI_API_KEY" in lines[i + 1] and "gpt-4o-mini" in lines[i + 1]
    i = next(i for i, ln in enumerate(lines) if " anthropic " in ln)
    assert " missing " in lines[i] and "ANTHROPIC_API_KEY" in lines[i + 1]
    assert "not needed" in next(ln for ln in lines if " mock " in ln)


@pytest.mark.parametrize("columns", [None, "100", "60"])
def test_providers_table_fits_the_terminal_when_piped(columns: str | None) -> None:
    """Piped (not a terminal): within $COLUMNS, else 80 columns."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns:
        env["COLUMNS"] = columns
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-m", "modelwire", "providers"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) > len(all_specs())
    assert max(len(ln) for ln in lines) <= int(columns or 80)


def test_providers_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("GEMINI_BASE_URL", "https://gw.example/v1?key=AIzaSyFAKEFAKE12345")
    result = invoke("providers", "--json")
    assert SECRET not in result.stdout and "AIzaSyFAKE" not in result.stdout
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {s.name for s in all_specs()}
    assert rows["openai"]["key_set"] is True and rows["openai"]["key_env"] == "OPENAI_API_KEY"
    assert rows["anthropic"]["key_set"] is False
    assert rows["gemini"]["base_url"] == "https://gw.example/v1?key=***"
    assert rows["mock"]["wire"] == "openai-compat via mock"
    assert rows["anthropic"]["wire"] == "anthropic"


@pytest.mark.parametrize("url, secrets, expected", [
    ("https://api.openai.com/v1", (), "https://api.openai.com/v1"),
    ("https://h/v1?key=abc&alt=sse", (), "https://h/v1?key=***&alt=sse"),
    ("https://h/v1?api-version=2024-10-21", (), "https://h/v1?api-version=2024-10-21"),
    ("https://user:hunter22@h/v1", (), "https://user:***@h/v1"),
    ("https://h/keys/sk-abcdefghijkl/v1", (), "https://h/keys/***/v1"),
    ("https://h/x-my-configured-key-1/v1", ("my-configured-key-1",), "https://h/x-***/v1"),
])
def test_mask_url(url: str, secrets: tuple[str, ...], expected: str) -> None:
    assert mask_url(url, secrets) == expected


# --- health ---------------------------------------------------------------------------


REPORTS = [
    {"provider": "openai", "key_present": True, "reachable": True, "latency": 0.123,
     "breaker": "closed", "error": None},
    {"provider": "anthropic", "key_present": False, "reachable": None, "latency": None,
     "breaker": "closed", "error": "no key"},
]


def _fake_health(monkeypatch: pytest.MonkeyPatch, reports: list[Any]) -> list[Any]:
    """Stand-in for AsyncClient.health_check; returns the list of provider names asked for."""
    asked: list[Any] = []

    async def health_check(self: AsyncClient, providers: Any = None) -> list[Any]:
        asked.append(providers)
        return reports

    monkeypatch.setattr(AsyncClient, "health_check", health_check)
    return asked


def test_health_table(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_health(monkeypatch, REPORTS)
    result = invoke("health")
    assert result.exit_code == 0
    assert asked == [None]
    openai = next(ln for ln in result.stdout.splitlines() if " openai " in ln)
    assert "yes" in openai and "123 ms" in openai and "closed" in openai
    assert "no key" in next(ln for ln in result.stdout.splitlines() if " anthropic " in ln)


def test_health_json_and_named_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_health(monkeypatch, REPORTS)
    result = invoke("health", "--json", "openai", "anthropic")
    assert result.exit_code == 0
    assert asked == [["openai", "anthropic"]]
    assert json.loads(result.stdout) == REPORTS


@pytest.mark.parametrize("broken", [
    {"reachable": False, "error": "ProviderConnectionError: refused"},
    {"reachable": True, "error": "the API key was rejected (HTTP 401)"},
])
def test_health_exits_1_when_a_keyed_provider_is_not_usable(
        monkeypatch: pytest.MonkeyPatch, broken: dict[str, Any]) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: the error on one line
    _fake_health(monkeypatch, [dict(REPORTS[0], **broken), *REPORTS[1:]])
    result = invoke("health")
    assert result.exit_code == 1
    assert broken["error"] in result.stdout


def test_health_keyless_failures_only_inform(monkeypatch: pytest.MonkeyPatch) -> None:
    local = {"provider": "local", "key_present": False, "reachable": False, "latency": None,
             "breaker": None, "error": "the local provider needs: pip install 'modelwire[local]'"}
    _fake_health(monkeypatch, [REPORTS[0], local])
    assert invoke("health").exit_code == 0


def test_health_renders_report_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real health_check returns HealthReport dataclasses, not dicts."""
    from modelwire.health import HealthReport
    _fake_health(monkeypatch, [HealthReport("openai", True, True, 0.5, "open", None)])
    result = invoke("health", "--json")
    assert json.loads(result.stdout) == [{"provider": "openai", "key_present": True,
                                          "key_required": True,
                                          "reachable": True, "latency": 0.5,
                                          "breaker": "open", "error": None}]


def test_health_for_real_against_an_unreachable_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    result = invoke("health", "--json", "openai")
    assert result.exit_code == 1
    (report,) = json.loads(result.stdout)
    assert (report["provider"], report["key_present"], report["reachable"]) == (
        "openai", True, False)
    assert SECRET not in result.stdout + result.stderr


# --- the program itself ---------------------------------------------------------------


def test_main_without_typer_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "typer", None)
    with pytest.raises(SystemExit) as info:
        main(["providers"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.strip() == INSTALL_HINT and "pip install 'modelwire[cli]'" in err


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def test_real_process_chat_and_config_error() -> None:
    ok = subprocess.run([sys.executable, "-m", "modelwire.cli", "chat", "-m", "mock/echo", "hi"],
                        capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)
    assert (ok.returncode, ok.stdout) == (0, "hi\n"), ok.stderr
    piped = subprocess.run([sys.executable, "-m", "modelwire.cli", "chat", "-m", "mock/echo"],
                           input="through a pipe\n", capture_output=True, text=True,
                           env=_env(), cwd=ROOT, timeout=60)
    assert piped.stdout == "through a pipe\n"
    bad = subprocess.run([sys.executable, "-m", "modelwire.cli", "chat", "-m",
                          "anthropic/claude-sonnet-4-5", "hi"],
                         capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)
    assert bad.returncode == 2
    assert _one_error_line(bad.stderr).startswith("error: MissingAPIKeyError: ")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery is POSIX")
def test_real_process_ctrl_c_exits_130() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        conn, _ = listener.accept()  # hold the request open, never answer
        held.append(conn)
        accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelwire.cli", "chat", "-m", "openai/gpt-4o-mini", "hi"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=_env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1"))
    try:
        assert accepted.wait(30), "the CLI never connected"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill() if proc.poll() is None else None
        for c in held:
            c.close()
        listener.close()
    assert proc.returncode == 130
    assert "Traceback" not in err and SECRET not in out + err


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_a_stdout_that_cannot_encode_the_answer_does_not_crash(encoding: str) -> None:
    """A UnicodeEncodeError traceback used to end the answer (LANG=C on old systems)."""
    text = "héllo ☃ 日本"
    plain = subprocess.run([sys.executable, "-m", "modelwire", "chat", "-m", "mock/echo", text],
                           capture_output=True, env=_env(PYTHONIOENCODING=encoding),
                           cwd=ROOT, timeout=60)
    assert plain.returncode == 0, plain.stderr
    assert b"Traceback" not in plain.stderr
    assert plain.stdout.decode(encoding).startswith("h")
    as_json = subprocess.run(
        [sys.executable, "-m", "modelwire", "chat", "-m", "mock/echo", "--json", text],
        capture_output=True, env=_env(PYTHONIOENCODING=encoding), cwd=ROOT, timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout.decode(encoding))["text"] == text  # exact, escaped


@pytest.mark.parametrize("data", [b"caf\xe9", bytes(range(256))])
def test_undecodable_stdin_is_a_usage_error(data: bytes) -> None:
    proc = subprocess.run([sys.executable, "-m", "modelwire", "chat", "-m", "mock/echo"],
                          input=data, capture_output=True, env=_env(PYTHONIOENCODING="utf-8"),
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("error: stdin is not utf-8 text: byte 0x")
    assert b"Traceback" not in proc.stderr


def test_an_undecodable_prompt_argument_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "modelwire", "chat", "-m", "mock/echo",
                           os.fsdecode(b"caf\xe9")], capture_output=True, text=True,
                          env=_env(), cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert "PROMPT is not valid text" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("extra", [[], ["--no-stream"]])
def test_an_empty_answer_is_said_on_stderr(scripted: Scripted, extra: list[str]) -> None:
    """A base model asked to chat ends its turn at once: an empty line alone, exit 0,
    read like a glitch."""
    scripted.script([MockReply("")])
    result = invoke("chat", "-m", "mock/m", *extra, "q")
    assert result.exit_code == 0
    assert result.stdout == "\n"
    assert "answer is empty (finish_reason=stop)" in result.stderr


def test_a_tool_call_alone_is_not_called_empty(scripted: Scripted) -> None:
    scripted.script([MockReply(tool_calls=[("f", {"a": 1})])])
    result = invoke("chat", "-m", "mock/m", "q")
    assert "empty" not in result.stderr and "tool call: f" in result.stderr
