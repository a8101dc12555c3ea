"""The claude-cli provider, end to end with the REAL Claude Code program.

A session fixture installs ``@anthropic-ai/claude-code`` from the npm registry
once per machine into ``~/.cache/modelwire-tests/claude-code`` (or
``$MODELWIRE_TEST_CACHE/claude-code``). Without ``npm`` the tests that need the
program skip, except under CI (``$CI`` set), where they fail. The program runs
with a temporary HOME and ``ANTHROPIC_BASE_URL`` pointing at modelwire's own
fault server on 127.0.0.1, so a client nobody here wrote exercises its
Anthropic wire.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelwire import AsyncClient, Client
from modelwire.errors import (
    ConfigurationError,
    MalformedResponseError,
    MissingDependencyError,
    OverloadedError,
    ProviderError,
    RequestTimeoutError,
    StreamInterruptedError,
    UnsupportedFeatureError,
)
from modelwire.pipeline import Timeouts
from modelwire.registry import get_codec
from modelwire.response import TextDelta, UsageUpdate
from modelwire.testing import Fault, FaultServer

CLAUDE_CODE_VERSION = "2.1.332"
MODEL = "claude-cli/claude-sonnet-4-5"


def _cache_dir() -> Path:
    root = os.environ.get("MODELWIRE_TEST_CACHE") or "~/.cache/modelwire-tests"
    return Path(root).expanduser() / "claude-code"


@pytest.fixture(scope="session")
def claude_program() -> str:
    """The real ``claude`` program, installed from the npm registry once per machine."""
    cache = _cache_dir()
    exe = cache / "node_modules" / ".bin" / "claude"
    if not exe.exists():
        npm = shutil.which("npm")
        if npm is None:
            msg = ("npm is not installed: the claude-cli tests install "
                   f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION} with it")
            if os.environ.get("CI"):
                pytest.fail(msg)
            pytest.skip(msg)
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / ".install.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions at once install it once
            if not exe.exists():
                subprocess.run(
                    [npm, "install", "--prefix", str(cache), "--no-fund", "--no-audit",
                     f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}"],
                    check=True, timeout=1200, stdout=subprocess.DEVNULL)
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "DISABLE_AUTOUPDATER": "1"})
    assert version.returncode == 0 and "Claude Code" in version.stdout, version.stderr
    return str(exe)


def _group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group, read from /proc."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat_line = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat_line.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(int(entry.name))
    return alive


async def _group_gone(pgid: int) -> list[int]:
    """The group's live processes once they are gone, or after a generous bound. SIGKILL
    to a group is delivered asynchronously: on a loaded machine a grandchild (which
    nobody can wait for) could still be seen alive for a moment."""
    for _ in range(200):
        if not _group_alive(pgid):
            break
        await asyncio.sleep(0.05)
    return _group_alive(pgid)


def _options(program: str, server: FaultServer, home: Path, **env: str) -> dict[str, Any]:
    return {"claude-cli": {"program": program, "cwd": str(home), "env": {
        "HOME": str(home), "ANTHROPIC_BASE_URL": server.url_for("anthropic"),
        "ANTHROPIC_API_KEY": "fake", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", **env}}}


def _client(program: str, server: FaultServer, home: Path, **kw: Any) -> AsyncClient:
    kw.setdefault("max_retries", 0)
    return AsyncClient(provider_options=_options(program, server, home), **kw)


# --- the real program ----------------------------------------------------------


async def test_text_usage_cost_and_session(claude_program: str, tmp_path: Path) -> None:
    async with FaultServer() as server, _client(claude_program, server, tmp_path) as client:
        server.script(Fault.ok("Hi from the wire.", usage=(11, 4)))
        r = await client.complete(MODEL, [{"role": "system", "content": "Be terse."},
                                          {"role": "user", "content": "say hi"}])
        sent = server.requests
    assert r.text == "Hi from the wire."
    assert (r.provider, r.finish_reason) == ("claude-cli", "stop")
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.source) == (11, 4, "reported")
    assert isinstance(r.raw["total_cost_usd"], float) and r.raw["total_cost_usd"] > 0
    assert r.request_id == r.raw["session_id"] and re.fullmatch(r"[0-9a-f-]{36}", r.request_id)
    # the program spoke the Anthropic wire to our server, with our system prompt
    assert [(q.method, q.wire) for q in sent] == [("POST", "anthropic")]
    body = sent[0].json
    assert body["model"] == "claude-sonnet-4-5"
    assert "Be terse." in str(body["system"])
    assert "say hi" in str(body["messages"])


async def test_streaming_yields_deltas_then_the_same_response(claude_program: str,
                                                              tmp_path: Path) -> None:
    async with FaultServer() as server, _client(claude_program, server, tmp_path) as client:
        server.script(Fault.ok("one two three four", chunks=4))
        async with client.stream(MODEL, "count") as stream:
            deltas = [e.text async for e in stream if isinstance(e, TextDelta)]
        assert server.requests[0].json.get("stream") is True
    assert deltas == ["one", " two", " three", " four"]
    assert stream.response.text == "one two three four"
    assert stream.response.usage.source == "reported"


async def test_server_529_is_a_typed_overloaded_error(claude_program: str,
                                                      tmp_path: Path) -> None:
    async with FaultServer() as server, _client(claude_program, server, tmp_path) as client:
        server.script(Fault.status(529))
        with pytest.raises(OverloadedError) as info:
            await client.complete(MODEL, "hi")
        assert len(server.requests) == 1  # the program's own retries are off: ours decide
    err = info.value
    assert (err.status, err.retryable, err.provider) == (529, True, "claude-cli")


async def test_a_400_is_sent_once_not_quietly_resent(claude_program: str,
                                                     tmp_path: Path) -> None:
    """Left alone, the program re-sends a 400 with fewer beta headers (3 requests)."""
    async with FaultServer() as server, _client(claude_program, server, tmp_path) as client:
        server.script(Fault.status(400), Fault.ok("should never be seen"))
        with pytest.raises(ProviderError) as info:
            await client.complete(MODEL, "hi")
        assert len(server.requests) == 1
    assert info.value.status == 400 and not info.value.retryable


async def test_529_then_ok_is_retried_by_modelwire(claude_program: str, tmp_path: Path) -> None:
    async with FaultServer() as server, \
            _client(claude_program, server, tmp_path, max_retries=1) as client:
        server.script(Fault.status(529, retry_after=0.01), Fault.ok("second time"))
        r = await client.complete(MODEL, "hi")
        assert len(server.requests) == 2
    assert r.text == "second time"


async def test_cut_stream_raises_stream_interrupted_with_partial(claude_program: str,
                                                                 tmp_path: Path) -> None:
    async with FaultServer() as server, _client(claude_program, server, tmp_path) as client:
        server.script(Fault.cut_stream(after_events=5))  # start, block start, 3 deltas
        seen: list[str] = []
        with pytest.raises(StreamInterruptedError) as info:
            async with client.stream(MODEL, "hi") as stream:
                async for e in stream:
                    if isinstance(e, TextDelta):
                        seen.append(e.text)
        assert len(server.requests) == 1  # no hidden non-streaming replay
    assert seen and info.value.partial is not None
    assert info.value.partial.text == "".join(seen)
    assert info.value.partial.finish_reason == "error"
    assert "Connection" in info.value.message


async def test_cancelling_kills_the_process_group(claude_program: str, tmp_path: Path) -> None:
    async with FaultServer() as server, _client(claude_program, server, tmp_path) as client:
        server.script(Fault.stall(after_events=5, seconds=30))
        stream = await client.stream(MODEL, "hi")
        transport = client.transport_for(client.resolve(MODEL).spec)
        (resp,) = list(transport._live)  # type: ignore[attr-defined]
        pid = resp.proc.pid
        assert pid in _group_alive(pid)  # alive now, leading its own process group
        task = asyncio.ensure_future(stream.collect())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await _group_gone(pid) == []
        assert not transport._live  # type: ignore[attr-defined]


def test_sync_client_and_health(claude_program: str, tmp_path: Path) -> None:
    with FaultServer.run_in_thread() as server, \
            Client(provider_options=_options(claude_program, server, tmp_path)) as client:
        assert client.complete(MODEL, "hi").text == "Hello from the fault server."
        (report,) = client.health_check(["claude-cli"])
    assert report.ok and report.reachable and report.latency is not None


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_the_program_reaches_only_loopback(claude_program: str, tmp_path: Path) -> None:
    """With non-essential traffic off, every socket it opens goes to 127.0.0.1."""
    log = tmp_path / "strace.log"
    with FaultServer.run_in_thread() as server:
        env = {**os.environ, **_options(claude_program, server, tmp_path)["claude-cli"]["env"]}
        run = subprocess.run(
            ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(log),
             claude_program, "-p", "--output-format", "stream-json", "--verbose",
             "--model", "claude-sonnet-4-5", "--tools", ""],
            input=b"hi", capture_output=True, env=env, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert b"Hello from the fault server." in run.stdout
    inet = [ln for ln in log.read_text().splitlines() if "AF_INET" in ln]
    assert inet, "expected at least the connection to the fault server"
    outside = [ln for ln in inet if not re.search(r'inet_addr\("127\.|inet_pton\(AF_INET6, "::1"',
                                                   ln)]
    assert outside == []


# --- errors with stand-in programs (exit status, garbage, silence) --------------


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-claude"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _fake(program: str, **kw: Any) -> AsyncClient:
    return AsyncClient(provider_options={"claude-cli": {"program": program}}, max_retries=0,
                       **kw)


async def test_missing_program_names_the_npm_install(tmp_path: Path) -> None:
    async with _fake(str(tmp_path / "nope" / "claude")) as client:
        with pytest.raises(MissingDependencyError) as info:
            await client.complete(MODEL, "hi")
    assert isinstance(info.value, ConfigurationError)
    assert "npm install -g @anthropic-ai/claude-code" in str(info.value)


async def test_non_zero_exit_carries_stderr(tmp_path: Path) -> None:
    program = _script(tmp_path, 'cat >/dev/null; echo "bad flag --frob" >&2; exit 3')
    async with _fake(program) as client:
        with pytest.raises(ProviderError) as info:
            await client.complete(MODEL, "hi")
        with pytest.raises(ProviderError) as info2:
            await client.stream(MODEL, "hi")
    for err in (info.value, info2.value):
        assert "status 3" in err.message and "bad flag --frob" in err.message


async def test_malformed_event_is_a_typed_error(tmp_path: Path) -> None:
    program = _script(tmp_path, 'cat >/dev/null; echo "this is not json"')
    async with _fake(program) as client:
        with pytest.raises(MalformedResponseError):
            await client.complete(MODEL, "hi")


async def test_output_without_result_is_malformed(tmp_path: Path) -> None:
    program = _script(tmp_path, 'cat >/dev/null; echo \'{"type":"system","subtype":"init"}\'')
    async with _fake(program) as client:
        with pytest.raises(MalformedResponseError, match="without its result"):
            await client.complete(MODEL, "hi")


async def test_silence_times_out_and_kills(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    program = _script(tmp_path, f'echo $$ > {pidfile}; cat >/dev/null; sleep 60 & wait')
    async with _fake(program, timeout=Timeouts(read=0.5, total=30)) as client:
        with pytest.raises(RequestTimeoutError, match=r"Timeouts\.read=0\.5s fired") as e:
            await client.complete(MODEL, "hi")
        assert (e.value.limit, e.value.seconds) == ("read", 0.5)
        assert e.value.__context__ is None and e.value.__cause__ is None
    pid = int(pidfile.read_text())
    assert await _group_gone(pid) == []  # the shell and its sleeping child are gone


async def test_unsupported_options_are_refused_not_dropped(tmp_path: Path) -> None:
    async with _fake(_script(tmp_path, "exit 0")) as client:
        for kw in ({"temperature": 0.2}, {"tools": [{"name": "f", "parameters": {}}]}):
            with pytest.raises(UnsupportedFeatureError):
                await client.complete(MODEL, "hi", **kw)


def test_detection_and_configuration(tmp_path: Path) -> None:
    from modelwire.config import Settings
    from modelwire.registry import DETECTION_ORDER, get_spec

    order = list(DETECTION_ORDER)
    assert order.index("openai") < order.index("claude-cli")
    assert order.index("anthropic") < order.index("claude-cli")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "claude").write_text("#!/bin/sh\n")
    (bindir / "claude").chmod(0o755)
    spec = get_spec("claude-cli")
    assert Settings(env={"PATH": str(bindir)}).is_configured(spec)
    assert Settings(env={"PATH": str(bindir)}).default_model() == MODEL
    assert not Settings(env={"PATH": str(tmp_path)}).is_configured(spec)
    assert Settings(env={"PATH": str(bindir), "ANTHROPIC_API_KEY": "k"}).default_model() \
        .startswith("anthropic/")
    assert Settings(env={"CLAUDE_CLI_PATH": str(bindir / "claude")}).is_configured(spec)


# --- the codec alone, on lines the real program printed (recorded above) ----------


def test_codec_on_recorded_lines() -> None:
    from modelwire.providers.claude_cli import ClaudeCLICodec
    from modelwire.registry import get_spec
    from modelwire.wire.sse import SSEEvent

    codec = ClaudeCLICodec(get_spec("claude-cli"))
    decode = codec.stream_decoder()
    partial = ('{"type":"stream_event","event":{"type":"content_block_delta","index":0,'
               '"delta":{"type":"text_delta","text":"Hel"}},"api_message_id":"msg_1"}')
    thinking = ('{"type":"stream_event","event":{"type":"content_block_delta","index":0,'
                '"delta":{"type":"thinking_delta","thinking":"hmm"}},"api_message_id":"msg_1"}')
    whole = ('{"type":"assistant","message":{"id":"msg_1","model":"claude-sonnet-4-5",'
             '"content":[{"type":"text","text":"Hel"}]}}')
    synthetic = ('{"type":"assistant","message":{"id":"x","model":"<synthetic>",'
                 '"content":[{"type":"text","text":"API Error: ..."}]}}')
    result = ('{"type":"result","subtype":"success","is_error":false,"result":"Hel",'
              '"stop_reason":"end_turn","session_id":"s-1","total_cost_usd":0.5,'
              '"usage":{"input_tokens":5,"cache_read_input_tokens":2,"output_tokens":1}}')
    deltas = [d for line in (partial, thinking, whole, synthetic, result)
              for d in decode(SSEEvent("message", line))]
    names = [type(d).__name__ for d in deltas]
    assert names.count("TextDelta") == 1  # the whole message repeats streamed text: skipped
    assert "ReasoningDelta" in names and names[-1] == "Done"
    usage = next(d.usage for d in deltas if isinstance(d, UsageUpdate))
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (7, 2, 1)
    # after the result nothing counts; a clean exit is silent
    assert decode(SSEEvent("message", partial)) == []
    assert decode(SSEEvent("exit", '{"code":0,"stderr":""}')) == []
    # an exit without a result is an error naming the status and stderr
    with pytest.raises(ProviderError, match=r"status 2 .*boom"):
        codec.stream_decoder()(SSEEvent("exit", '{"code":2,"stderr":"boom"}'))
    with pytest.raises(MalformedResponseError):
        codec.stream_decoder()(SSEEvent("message", "[1, 2]"))


async def test_env_option_reaches_the_program_but_never_the_request(tmp_path: Path) -> None:
    secret = "sk-ant-SECRET-in-env-option"
    program = _script(tmp_path, "cat >/dev/null; printf '%s\\n' "
                      "\"{\\\"type\\\":\\\"result\\\",\\\"subtype\\\":\\\"success\\\","
                      "\\\"result\\\":\\\"$MY_KEY $CLAUDE_CODE_MAX_RETRIES\\\"}\"")
    options = {"claude-cli": {"program": program, "env": {"MY_KEY": secret}}}
    async with AsyncClient(provider_options=options, max_retries=0) as client:
        call = client.build_call(MODEL, "hi")
        wire = get_codec(call.target.spec).encode(call)
        assert secret not in repr(wire) and secret.encode() not in (wire.body or b"")
        r = await client.complete(MODEL, "hi")
    # the program saw the option's variable, and the default that turns its retries off
    assert r.raw["result"]["result"] == f"{secret} 0"
