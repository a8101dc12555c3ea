"""SubprocessTransport: a program's stdout as a wire (the Claude Code CLI).

The codec's ``WireRequest`` body is JSON: ``program``, ``args``, ``stdin``,
``defaults`` and ``env`` and ``cwd``, and optionally ``final_type``: the
``type`` of the JSON line that ends the answer (after it the program gets a
moment to exit, then its group is killed rather than waited on). The program's environment is this
process's, then ``defaults``, then the ``env`` provider option given to the
transport (kept out of requests: it may hold keys), then the request's ``env``. The program runs in
a session of its own (``start_new_session=True``), so closing the response,
a timeout, or cancelling the caller's task kills its whole process group, as
does the end of the run (a child the program left behind holding our pipes
neither keeps the call waiting nor outlives it). The prompt is fed to stdin
while stdout is read, so a program that never reads it cannot wedge the call.

The response is ``200`` once the program has started. Every stdout line is
framed as an SSE ``data:`` event for the codec; after end of output the
transport adds one ``event: exit`` event whose data is
``{"code": exit_status, "stderr": tail}``. ``read()`` (non-streamed calls)
returns the same lines, with the exit event as a last line ``exit:{...}``.

Timeouts: ``read`` is the longest silence on stdout, ``total`` the whole run;
either kills the program and raises :class:`RequestTimeoutError` naming the
limit. A program that cannot be found raises :class:`MissingProgramError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..errors import (
    ConfigurationError,
    InvalidMessageError,
    MalformedResponseError,
    MissingDependencyError,
    ProviderConnectionError,
    ResponseTooLargeError,
    timeout_error,
)
from ..pipeline import Timeouts
from .base import WireRequest

PROGRAM_ENV = "CLAUDE_CLI_PATH"  # where the claude program is, when not on PATH
_LINE_LIMIT = 16 * 1024 * 1024  # longest stdout line accepted
_STDERR_TAIL = 4096
_EXIT_GRACE = 2.0  # after the program exits (or prints its final line), for the rest to come


class MissingProgramError(MissingDependencyError):
    """The program a provider runs is not installed (or not where configured)."""

    def __init__(self, program: str, install: str) -> None:
        self.extra = ""
        ConfigurationError.__init__(
            self,
            f"the program {program!r} was not found: install it with `{install}`, put it "
            f"on PATH, or point {PROGRAM_ENV} (or provider_options={{'claude-cli': "
            "{'program': '/path/to/claude'}}) at it")


def find_program(options: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """The program's path: the ``program`` option, then $CLAUDE_CLI_PATH, then PATH."""
    program = options.get("program") or env.get(PROGRAM_ENV) or "claude"
    program = os.path.expanduser(str(program))
    if os.sep in program:
        return program if os.path.isfile(program) and os.access(program, os.X_OK) else None
    path = (options.get("env") or {}).get("PATH") or env.get("PATH")
    return shutil.which(program, path=path) if path else None  # no PATH: nowhere to look


class SubprocessTransport:
    def __init__(self, options: Mapping[str, Any] | None = None,
                 install_hint: str = "npm install -g @anthropic-ai/claude-code") -> None:
        self.env = {str(k): str(v) for k, v in dict((options or {}).get("env") or {}).items()}
        self.install_hint = install_hint
        self._live: set[ProcessResponse] = set()

    async def send(self, request: WireRequest, timeouts: Timeouts) -> ProcessResponse:
        try:
            spec = json.loads(request.body or b"{}")
            args = [str(a) for a in spec["args"]]
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigurationError(f"bad subprocess request ({e}): a codec bug") from None
        env = {**os.environ, **_strs(spec.get("defaults")), **self.env, **_strs(spec.get("env"))}
        # no program named: $CLAUDE_CLI_PATH (in the program's environment), then PATH
        named = {"program": str(spec["program"])} if spec.get("program") else {}
        program = named.get("program") or env.get(PROGRAM_ENV) or "claude"
        path = find_program(named, env)
        if path is None:
            raise MissingProgramError(program, self.install_hint)
        cwd = spec.get("cwd") or None
        if cwd is not None and not os.path.isdir(cwd):
            raise ConfigurationError(f"the working directory {cwd!r} (the cwd option) is not "
                                     "a directory")
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                path, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd,
                start_new_session=True, limit=_LINE_LIMIT)
        except FileNotFoundError:
            raise MissingProgramError(program, self.install_hint) from None
        except ValueError as e:  # a NUL byte: no argument or variable can carry one
            raise InvalidMessageError(f"cannot run {program!r}: {e} (a NUL character in the "
                                      "system prompt or an option)") from None
        except OSError as e:
            raise ProviderConnectionError(f"could not start {program!r}: {e}",
                                          retryable=False) from None
        final = spec.get("final_type")
        resp = ProcessResponse(proc, timeouts, started, self._live,
                               str(final) if final else None)
        self._live.add(resp)
        # stdin is fed alongside the reading, never before it: a program that prints
        # before it reads (or never reads) cannot wedge us on a full pipe, and the
        # read timeouts bound the whole exchange
        resp.feed(str(spec.get("stdin") or "").encode("utf-8"))
        return resp

    async def aclose(self) -> None:
        for resp in list(self._live):
            await resp.aclose()


def _strs(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(value or {}).items()}


class ProcessResponse:
    status = 200
    headers: Mapping[str, str] = {}

    def __init__(self, proc: asyncio.subprocess.Process, timeouts: Timeouts, started: float,
                 live: set[ProcessResponse], final_type: str | None = None) -> None:
        self.proc = proc
        self._final = final_type  # the ``type`` of the JSON line that ends the answer
        self._stdin_task: asyncio.Future[None] | None = None
        self._read_timeout, self._total = timeouts.read, timeouts.total
        self._deadline = started + timeouts.total if timeouts.total else None
        self._live = live
        self._stderr: bytearray = bytearray()
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())
        self._closed = False

    def feed(self, data: bytes) -> None:
        self._stdin_task = asyncio.ensure_future(self._feed(data))

    async def _feed(self, data: bytes) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(data)
            await stdin.drain()
        stdin.close()  # the program may have closed its end already: nothing to say then

    def _is_final(self, line: bytes) -> bool:
        if self._final is None or not line.startswith(b"{") \
                or self._final.encode() not in line[:4096]:
            return False
        try:
            data = json.loads(line)
        except ValueError:
            return False
        return isinstance(data, dict) and data.get("type") == self._final

    async def _next_line(self, stdout: asyncio.StreamReader,
                         exited: asyncio.Future[int | None]) -> bytes:
        """The next stdout line; b"" at its end, or once the program has exited and
        what it wrote is read (a child it left behind may hold the pipe open)."""
        read: asyncio.Future[bytes] = asyncio.ensure_future(stdout.readline())
        try:
            if not exited.done():
                either: list[asyncio.Future[Any]] = [read, exited]
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if read.done():
                return read.result()
            done, _ = await asyncio.wait({read}, timeout=_EXIT_GRACE)
            return read.result() if done else b""
        finally:
            if not read.done():
                read.cancel()
                with contextlib.suppress(BaseException):
                    await read

    async def _exit(self) -> int | None:
        return await exit_of(self.proc)

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self._stderr += chunk
            del self._stderr[:-_STDERR_TAIL]

    async def _lines(self) -> AsyncIterator[bytes]:
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        exited = asyncio.ensure_future(self._exit())
        saw_final = False
        try:
            while True:
                line = await self._within_limits(self._next_line(stdout, exited))
                if not line:
                    break
                line = line.strip()
                if line:
                    yield line
                    if self._is_final(line):  # the answer is whole: no waiting on more
                        saw_final = True
                        await asyncio.wait({exited}, timeout=_EXIT_GRACE)
                        break
            if not exited.done() and saw_final:
                self._kill()  # lingering after its answer: not worth a timeout
            if not exited.done():
                await self._within_limits(asyncio.shield(exited))
            self._kill()  # what it left behind would hold stderr open
            await asyncio.wait({self._stderr_task}, timeout=_EXIT_GRACE)
            tail = self._stderr.decode("utf-8", "replace")
            await self.aclose()  # anything the program left running goes with it
            yield b"exit:" + json.dumps({"code": self.proc.returncode, "stderr": tail}).encode()
        except BaseException:  # timeout, cancellation, a closed reader: the program goes too
            await self.aclose()
            raise
        finally:
            exited.cancel()

    async def _within_limits(self, aw: Any) -> Any:
        limit, which = self._read_timeout, "read"
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if limit is None or left < limit:
                limit, which = max(left, 0.0), "total"
        try:
            return await asyncio.wait_for(aw, limit)
        except asyncio.TimeoutError:  # raised below, outside the except: no chained context
            err: Exception = timeout_error(
                which, self._read_timeout if which == "read" else self._total,
                "waiting for the program (it was killed)")
        except ValueError as e:  # a line longer than the limit
            err = MalformedResponseError(f"the program printed a line too long: {e}")
        raise err

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        async for line in self._lines():
            if line.startswith(b"exit:"):
                yield b"event: exit\ndata: " + line[5:] + b"\n\n"
            else:
                yield b"data: " + line + b"\n\n"

    async def read(self, max_bytes: int | None = None) -> bytes:
        body, size = [], 0
        async for line in self._lines():
            size += len(line) + 1
            if max_bytes is not None and size > max_bytes:
                await self.aclose()
                raise ResponseTooLargeError(
                    f"the program printed more than max_response_bytes={max_bytes} bytes",
                    limit=max_bytes)
            body.append(line + b"\n")
        return b"".join(body)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._live.discard(self)
        # the whole group, even when the program itself has exited: a child it left
        # behind (holding our pipes) must not outlive the call
        self._kill()
        if self._stdin_task is not None:
            self._stdin_task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), 5.0)
        self._stderr_task.cancel()

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


async def exit_of(proc: asyncio.subprocess.Process) -> int | None:
    """The program's exit status. Not ``proc.wait()`` alone: that may also wait for
    the pipes to close, which a child left behind can put off for ever."""
    wait = asyncio.ensure_future(proc.wait())
    try:
        while proc.returncode is None and not wait.done():
            await asyncio.wait([wait], timeout=0.05)
    finally:
        wait.cancel()
    return proc.returncode


async def probe_program(options: Mapping[str, Any], env: Mapping[str, str],
                        timeout: float = 10.0) -> tuple[float | None, str | None]:
    """``program --version``: (seconds it took, None) or (None, why it is not usable)."""
    path = find_program(options, env)
    if path is None:
        return None, str(MissingProgramError(str(options.get("program") or "claude"),
                                             "npm install -g @anthropic-ai/claude-code"))
    started = time.perf_counter()
    run_env = {**env, **{str(k): str(v) for k, v in (options.get("env") or {}).items()}}
    try:
        proc = await asyncio.create_subprocess_exec(
            path, "--version", stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=run_env,
            start_new_session=True)
    except OSError as e:
        return None, f"could not start {path!r}: {e}"
    answered = False
    try:
        await asyncio.wait_for(exit_of(proc), timeout)
        answered = True
    except asyncio.TimeoutError:
        pass
    finally:  # the group, always: a child it left behind must not outlive the probe
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        try:  # the pipes close with the group: what it printed is there to read
            _, err = await asyncio.wait_for(proc.communicate(), 5.0)
        except asyncio.TimeoutError:
            err = b""
    if not answered:
        return None, f"{path} --version did not answer within {timeout:.0f}s"
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip()[-300:]
        return None, f"{path} --version exited with status {proc.returncode}: {tail}"
    return time.perf_counter() - started, None
