"""claude-cli against hostile fake programs: failure modes the real one rarely shows.

The real program is exercised in test_claude_cli.py; these small shell scripts
stand in for it only where it cannot be made to misbehave on purpose: noise
before its JSON, a result and then no exit, a child left holding the pipes, a
prompt never read, a stderr flood, malformed event shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest

from modelwire import AsyncClient
from modelwire.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidMessageError,
    MalformedResponseError,
    RequestTimeoutError,
)

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash for the "
                                "fake programs")

ASSISTANT = json.dumps({"type": "assistant", "message": {
    "id": "msg_1", "model": "claude-x", "role": "assistant", "stop_reason": "end_turn",
    "content": [{"type": "text", "text": "héllo ✓ 🎉"}]}})
RESULT = json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "ok",
                     "session_id": "s1", "total_cost_usd": 0.01,
                     "usage": {"input_tokens": 3, "output_tokens": 2}})


def fake(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def client(program: str, timeout: float = 30.0) -> AsyncClient:
    return AsyncClient(provider_options={"claude-cli": {"program": program}},
                       timeout=timeout, max_retries=0)


def gone(pid: int) -> bool:
    """Dead (or a zombie nobody has reaped yet: it runs no more)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def wait_gone(pid: int) -> bool:
    for _ in range(200):
        if gone(pid):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_noise_lines_before_the_json_are_not_events(tmp_path: Path) -> None:
    prog = fake(tmp_path, "claude", f"echo 'Warning: a wrapper said something'\n"
                                    f"echo '{ASSISTANT}'\necho '{RESULT}'")
    async with client(prog) as c:
        resp = await c.complete("claude-cli/x", "hi")
        assert resp.text == "héllo ✓ 🎉" and resp.usage.input_tokens == 3
        async with c.stream("claude-cli/x", "hi") as s:
            text = "".join([e.text async for e in s if hasattr(e, "text")])
        assert text == "héllo ✓ 🎉"


async def test_only_noise_and_exit_0_names_what_it_printed(tmp_path: Path) -> None:
    prog = fake(tmp_path, "claude", "echo 'Please log in first'")
    async with client(prog) as c:
        with pytest.raises(MalformedResponseError, match=r"without its result.*Please log in"):
            await c.complete("claude-cli/x", "hi")


async def test_error_result_with_the_status_in_its_text_is_typed(tmp_path: Path) -> None:
    line = json.dumps({"type": "result", "subtype": "success", "is_error": True,
                       "result": "API Error: 401 {\"type\":\"error\"} · Please run /login"})
    prog = fake(tmp_path, "claude", f"echo '{line}'")
    async with client(prog) as c:
        with pytest.raises(AuthenticationError) as info:
            await c.complete("claude-cli/x", "hi")
    assert info.value.status == 401


@pytest.mark.parametrize("line", [
    {"type": "assistant", "message": {"id": "m", "model": "x", "content": 5}},
    {"type": "assistant", "message": "text"},
    {"type": "stream_event", "event": "x"},
])
async def test_malformed_event_shapes_are_typed_errors(tmp_path: Path,
                                                       line: dict[str, object]) -> None:
    prog = fake(tmp_path, "claude", f"echo '{json.dumps(line)}'\necho '{RESULT}'")
    async with client(prog) as c:
        with pytest.raises(MalformedResponseError):
            await c.complete("claude-cli/x", "hi")


async def test_a_result_then_no_exit_is_an_answer_not_a_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    prog = fake(tmp_path, "claude", f"echo $$ > {pidfile}\necho '{ASSISTANT}'\n"
                                    f"echo '{RESULT}'\nexec sleep 600")
    async with client(prog, timeout=60) as c:
        for stream in (False, True):
            if stream:
                async with c.stream("claude-cli/x", "hi") as s:
                    async for _ in s:
                        pass
                    text = s.response.text if s.response else None
            else:
                text = (await c.complete("claude-cli/x", "hi")).text
            assert text == "héllo ✓ 🎉"
            assert await wait_gone(int(pidfile.read_text()))


async def test_a_child_left_holding_the_pipes_neither_delays_nor_outlives_the_call(
        tmp_path: Path) -> None:
    pidfile = tmp_path / "child"
    prog = fake(tmp_path, "claude", f"sleep 600 & echo $! > {pidfile}\n"
                                    f"echo '{ASSISTANT}'\necho '{RESULT}'")
    async with client(prog, timeout=60) as c:
        resp = await c.complete("claude-cli/x", "hi")
        assert resp.text == "héllo ✓ 🎉"
        assert await wait_gone(int(pidfile.read_text()))  # killed with its group


async def test_a_prompt_never_read_cannot_wedge_the_call(tmp_path: Path) -> None:
    """A prompt larger than the pipe, a program that never reads it: the timeout holds."""
    prog = fake(tmp_path, "claude", "exec sleep 600")
    async with client(prog, timeout=1.0) as c:
        with pytest.raises(RequestTimeoutError):
            await asyncio.wait_for(c.complete("claude-cli/x", "x" * 2_000_000), 60)


async def test_a_stderr_flood_does_not_deadlock(tmp_path: Path) -> None:
    prog = fake(tmp_path, "claude", f"head -c 20000000 /dev/zero >&2\necho '{ASSISTANT}'\n"
                                    f"echo '{RESULT}'")
    async with client(prog) as c:
        resp = await asyncio.wait_for(c.complete("claude-cli/x", "hi"), 60)
    assert resp.text == "héllo ✓ 🎉"


async def test_a_stream_closed_early_kills_the_process_group(tmp_path: Path) -> None:
    pidfile, childfile = tmp_path / "pid", tmp_path / "child"
    partial = json.dumps({"type": "stream_event", "event": {
        "type": "content_block_delta", "index": 0,
        "delta": {"type": "text_delta", "text": "tick "}}})
    prog = fake(tmp_path, "claude", f"echo $$ > {pidfile}\nsleep 600 & echo $! > {childfile}\n"
                                    f"while true; do echo '{partial}'; sleep 0.05; done")
    async with client(prog) as c, c.stream("claude-cli/x", "hi") as s:
        async for _event in s:
            break
    assert await wait_gone(int(pidfile.read_text()))
    assert await wait_gone(int(childfile.read_text()))
    assert os.getpgid(os.getpid()) != int(pidfile.read_text())  # it had a group of its own


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_killing_the_cli_kills_the_programs_it_started(tmp_path: Path, signame: str) -> None:
    """``kill``/``timeout``/a closed terminal: the programs (in sessions of their own)
    would otherwise run on, orphaned, spending tokens."""
    import signal
    import subprocess
    import sys
    import time

    pids = tmp_path / "pids"
    prog = fake(tmp_path, "claude", f"echo $$ >> {pids}\necho '{ASSISTANT}'\nexec sleep 600")
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps({"id": f"r{i}", "prompt": "hi"}) + "\n" for i in range(3)))
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelwire.cli", "batch", str(inp), "-o", str(out),
         "-m", "claude-cli/x", "-c", "3", "--no-progress"],
        env={**os.environ, "PYTHONPATH": str(root), "CLAUDE_CLI_PATH": prog},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
                not pids.exists() or len(pids.read_text().split()) < 3):
            time.sleep(0.05)
        started = [int(x) for x in pids.read_text().split()]
        assert len(started) == 3
        proc.send_signal(getattr(signal, signame))
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + getattr(signal, signame), err
        assert all(asyncio.run(wait_gone(pid)) for pid in started)
    finally:  # a failing run must leave neither the CLI nor its programs behind
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for pid in (pids.read_text().split() if pids.exists() else []):
            with contextlib.suppress(OSError):
                os.killpg(int(pid), signal.SIGKILL)


async def test_claude_cli_path_is_the_program_that_runs(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """$CLAUDE_CLI_PATH did pick the provider in detection, then was ignored for the run."""
    prog = fake(tmp_path, "my-claude", f"echo '{ASSISTANT}'\necho '{RESULT}'")
    monkeypatch.setenv("CLAUDE_CLI_PATH", prog)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    async with AsyncClient(max_retries=0) as c:
        assert (await c.complete("claude-cli/x", "hi")).text == "héllo ✓ 🎉"


@pytest.mark.parametrize(("option", "match"), [
    ({"cwd": "/nonexistent/dir"}, "not a directory"),  # was: "the program was not found"
    ({"args": "--debug"}, "list of strings"),  # was: split into characters
])
async def test_option_mistakes_say_what_is_wrong(tmp_path: Path, option: dict[str, str],
                                                 match: str) -> None:
    prog = fake(tmp_path, "claude", f"echo '{ASSISTANT}'\necho '{RESULT}'")
    async with AsyncClient(provider_options={"claude-cli": {"program": prog, **option}},
                           max_retries=0) as c:
        with pytest.raises(ConfigurationError, match=match):
            await c.complete("claude-cli/x", "hi")


async def test_a_nul_in_the_system_prompt_is_a_typed_error(tmp_path: Path) -> None:
    prog = fake(tmp_path, "claude", f"echo '{ASSISTANT}'\necho '{RESULT}'")
    async with client(prog) as c:
        with pytest.raises(InvalidMessageError, match="NUL"):
            await c.complete("claude-cli/x", [{"role": "system", "content": "a\x00b"},
                                              {"role": "user", "content": "hi"}])


async def test_health_probe_neither_waits_on_nor_leaves_a_child(tmp_path: Path) -> None:
    from modelwire.transports.subprocess import probe_program

    child = tmp_path / "child"
    prog = fake(tmp_path, "claude", f"sleep 600 & echo $! > {child}\necho '2.1.332 (Claude Code)'")
    took, why = await probe_program({"program": prog}, dict(os.environ), timeout=30)
    assert why is None and took is not None  # it answered: was "did not answer within 30s"
    assert await wait_gone(int(child.read_text()))
    pidfile = tmp_path / "pid"
    hung = fake(tmp_path, "hung", f"echo $$ > {pidfile}\nexec sleep 600")
    took, why = await probe_program({"program": hung}, dict(os.environ), timeout=0.5)
    assert took is None and why is not None and "did not answer" in why
    assert await wait_gone(int(pidfile.read_text()))


async def test_raw_line_separators_inside_json_strings(tmp_path: Path) -> None:
    """JSON strings may hold U+2028, U+2029 and U+0085 raw; they end no line."""
    text = "a\u2028b\u0085c\u2029d"
    line = json.dumps({"type": "assistant", "message": {
        "id": "m1", "model": "x", "content": [{"type": "text", "text": text}]}},
        ensure_ascii=False)
    script = tmp_path / "claude"
    script.write_text(f"#!/bin/bash\ncat <<'END'\n{line}\n{RESULT}\nEND\n", encoding="utf-8")
    script.chmod(0o755)
    async with client(str(script)) as c:
        assert (await c.complete("claude-cli/x", "hi")).text == text
        async with c.stream("claude-cli/x", "hi") as s:
            async for _ in s:
                pass
        assert s.response is not None and s.response.text == text
