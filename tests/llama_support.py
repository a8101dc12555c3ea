"""Shared pieces of the llama.cpp tests: the bundled model, and real llama.cpp servers.

Import the session fixture into a test module with
``from llama_support import llama_server  # noqa: F401``.

The server is llama-cpp-python's own (``python -m llama_cpp.server``), started
through a two-line launcher that wraps its ``main()`` in
:func:`modelwire.transports.local.model_params`: on a CPU that advertises AMX
inside a VM that does not enable it, llama.cpp's AMX kernels crash the process
on the first decode, in the server exactly as in-process. It also resets the
model's context before each generation, as modelwire's in-process runner does
(:func:`modelwire.transports.llama_setup.fresh_context`): llama-cpp-python's
server otherwise reuses the previous request's prompt cache, and logits from a
replayed last token differ from a whole-prompt evaluation, so the same greedy
request could answer differently the second time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelwire.local_models import resolve

ROOT = Path(__file__).resolve().parents[1]
ALIAS = "smollm2"  # the --model_alias the servers answer to
_LAUNCHER = (
    "import llama_cpp\n"
    "from modelwire.transports.llama_setup import fresh_context, model_params\n"
    "from llama_cpp.server.__main__ import main\n"
    "_generate = llama_cpp.Llama.generate\n"
    "def generate(self, *args, **kwargs):\n"
    "    fresh_context(self)\n"
    "    return _generate(self, *args, **kwargs)\n"
    "llama_cpp.Llama.generate = generate\n"
    "with model_params():\n"
    "    main()\n"
)


def smollm2_path() -> str:
    return resolve("smollm2-135m-instruct")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LlamaServer:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def start_server(*extra: str, timeout: float = 60.0) -> LlamaServer:
    """Start ``llama_cpp.server`` on a free loopback port and wait until it answers."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    cmd = [sys.executable, "-c", _LAUNCHER, "--model", smollm2_path(),
           "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", "2048", "--use_mlock", "False", *extra]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = LlamaServer(proc, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited with {proc.returncode}:\n"
                               f"{server.output()}")
        try:
            with urllib.request.urlopen(f"{server.base_url}/models", timeout=2) as r:
                if r.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"llama.cpp server not ready after {timeout}s:\n{server.output()}")


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """One real llama.cpp server for the whole session, killed at its end."""
    server = start_server()
    try:
        yield server
    finally:
        server.stop()
        server.log.unlink(missing_ok=True)
