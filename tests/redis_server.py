"""A real redis-server for tests: started on 127.0.0.1 at a free port in a temp dir,
no persistence, stopped at the end. Missing binary: skip (fail under CI)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, binary: str, workdir: str) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra: list[str] = []  # more redis-server arguments

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir, "--protected-mode", "yes",
             *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"FLUSHALL\r\n")
            s.recv(16)


def find_redis_server() -> str:
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
    if binary is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the Redis tests")
        pytest.skip(message)
    return binary


def serve() -> Iterator[RedisServer]:
    """The body of a session fixture: ``yield from serve()``."""
    pytest.importorskip("redis", reason="the redis package is not installed "
                                        "(pip install 'modelwire[redis]')")
    binary = find_redis_server()
    with tempfile.TemporaryDirectory(prefix="modelwire-redis-") as workdir:
        server = RedisServer(binary, workdir)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def fresh_url(server: RedisServer) -> str:
    """The body of a per-test fixture: the server (re)started and emptied."""
    if server.proc is None:
        server.start()
    server.flush()
    return server.url


ROOT = Path(__file__).resolve().parent.parent
WORKERS = Path(__file__).resolve().parent / "redis_workers.py"


def spawn(mode: str, **args: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{WORKERS.parent}"}
    return subprocess.Popen([sys.executable, str(WORKERS), mode, json.dumps(args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def result(proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]
