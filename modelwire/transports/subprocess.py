"""SubprocessTransport: a program's stdout as a wire (the Claude Code CLI).

The codec's ``WireRequest`` body is JSON: ``program``, ``args``, ``stdin``,
``defaults`` and ``env`` and ``cwd``. The program's environment is this
process's, then ``defaults``, then the ``env`` provider option given to the
transport (kept out of requests: it may hold keys), then the request's ``env``. The program runs in
a session of its own (``start_new_session=True``), so closing the response,
a timeout, or cancelling the caller's task kills its whole process group.

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
            program, args = str(spec["program"]), [str(a) for a in spec["args"]]
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigurationError(f"bad subprocess request ({e}): a codec bug") from None
        # The environment (keys included) is never left a local of this frame when it
        # raises: error trackers that capture locals (Sentry's default) would send it.
        env = {**os.environ, **_strs(spec.get("defaults")), **self.env, **_strs(spec.get("env"))}
        path = find_program({"program": program}, env)
        if path is None:
            del env
            raise MissingProgramError(program, self.install_hint)
        started = time.monotonic()
        error: Exception | None = None
        try:
            proc = await asyncio.create_subprocess_exec(
                path, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, cwd=spec.get("cwd") or None,
                start_new_session=True, limit=_LINE_LIMIT)
        except FileNotFoundError:
            error = MissingProgramError(program, self.install_hint)
        except OSError as e:
            error = ProviderConnectionError(f"could not start {program!r}: {e}",
                                            retryable=False)
        del env
        if error is not None:
            raise error  # outside the except clause: no __context__ either
        resp = ProcessResponse(proc, timeouts, started, self._live)
        self._live.add(resp)
        try:
            assert proc.stdin is not None
            proc.stdin.write(str(spec.get("stdin") or "").encode("utf-8"))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await proc.stdin.drain()
            proc.stdin.close()
        except BaseException:
            await resp.aclose()
            raise
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
                 live: set[ProcessResponse]) -> None:
        self.proc = proc
        self._read_timeout, self._total = timeouts.read, timeouts.total
        self._deadline = started + timeouts.total if timeouts.total else None
        self._live = live
        self._stderr: bytearray = bytearray()
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())
        self._closed = False

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self._stderr += chunk
            del self._stderr[:-_STDERR_TAIL]

    async def _lines(self) -> AsyncIterator[bytes]:
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        try:
            while True:
                line = await self._within_limits(stdout.readline())
                if not line:
                    break
                line = line.strip()
                if line:
                    yield line
            await self._within_limits(self.proc.wait())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._stderr_task), 5.0)
            tail = self._stderr.decode("utf-8", "replace")
            yield b"exit:" + json.dumps({"code": self.proc.returncode, "stderr": tail}).encode()
        except BaseException:  # timeout, cancellation, a closed reader: the program goes too
            await self.aclose()
            raise

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
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), 5.0)
        self._stderr_task.cancel()


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
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        return None, f"{path} --version did not answer within {timeout:.0f}s"
    finally:
        if proc.returncode is None:  # timed out or cancelled
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip()[-300:]
        return None, f"{path} --version exited with status {proc.returncode}: {tail}"
    return time.perf_counter() - started, None
