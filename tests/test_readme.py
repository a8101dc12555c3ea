"""Every ```python block in README.md runs, as written, in a fresh process.

The process's provider keys and base URLs point at a local FaultServer (and
the mock needs nothing), so ``anthropic/claude-sonnet-4-5`` in an example is
answered on 127.0.0.1 over the real Anthropic wire. A block opts out only
with an HTML comment on the line before it that says why::

    <!-- readme-test: skip (needs a Redis server) -->

``<!-- readme-test: llama -->`` marks a block that runs the local model (the
``llama`` pytest marker); ``<!-- readme-test: redis -->`` one that needs Redis: it
runs with ``REDIS_URL`` set to a real redis-server the test starts on 127.0.0.1.
Anything else after ``readme-test:`` is an error.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelwire.registry import ANTHROPIC, GEMINI, all_specs
from modelwire.testing import FaultServer

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARK = re.compile(r"<!--\s*readme-test:\s*(.*?)\s*-->")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    heading: str
    code: str
    mark: str | None  # None, "llama", "redis", or "skip (<reason>)"


def blocks(text: str) -> list[Block]:
    out: list[Block] = []
    lines = text.splitlines()
    heading, i = "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.strip() == "```python":
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            m = MARK.fullmatch(lines[j].strip()) if j >= 0 else None
            end = next(k for k in range(i + 1, len(lines)) if lines[k].strip() == "```")
            out.append(Block(i + 1, heading, "\n".join(lines[i + 1:end]) + "\n",
                             m.group(1) if m else None))
            i = end
        i += 1
    return out


BLOCKS = blocks(README.read_text(encoding="utf-8"))

# Refuse anything but loopback inside the example's process, like tests/conftest.py.
GUARD = """
import runpy, socket, sys
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo
LOCAL = ("127.0.0.1", "::1", "localhost")
def connect(self, address):
    if isinstance(address, tuple) and address[0] not in LOCAL:
        raise OSError(f"README example tried to reach {address!r}")
    return _connect(self, address)
def getaddrinfo(host, *a, **k):
    if host not in LOCAL and host is not None:
        raise OSError(f"README example tried to resolve {host!r}")
    return _getaddrinfo(host, *a, **k)
socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer.run_in_thread() as s:
        yield s


def example_env(server: FaultServer) -> dict[str, str]:
    """Every HTTP provider's key and base URL aimed at the fault server."""
    specs = all_specs()
    names = {v for s in specs for v in (*s.key_env, *s.base_url_env)}
    env = {k: v for k, v in os.environ.items() if k not in names and k != "MODELWIRE_LOG"}
    for spec in specs:
        if spec.transport != "http" or not spec.key_env or not spec.base_url_env:
            continue
        if spec.name in ("azure", "openai-responses"):  # not wires the fault server speaks
            continue
        wire = "anthropic" if spec.codec == ANTHROPIC else (
            "gemini" if spec.codec == GEMINI else "openai")
        env[spec.key_env[0]] = f"readme-test-key-{spec.name}"
        env[spec.base_url_env[0]] = server.url_for(wire)
    env["PYTHONPATH"] = str(ROOT)
    return env


def _params() -> list[object]:
    out: list[object] = []
    for b in BLOCKS:
        marks: list[pytest.MarkDecorator] = []
        if b.mark == "llama":
            marks.append(pytest.mark.llama)
        out.append(pytest.param(b, id=f"line{b.line}-{b.heading[:30]}", marks=marks))
    return out


def test_the_readme_has_examples_and_every_opt_out_says_why() -> None:
    assert len(BLOCKS) >= 5
    for b in BLOCKS:
        if b.mark in (None, "llama", "redis"):
            continue
        assert re.fullmatch(r"skip \(.+\)", b.mark), (
            f"README line {b.line}: '<!-- readme-test: {b.mark} -->' must be 'llama', "
            f"'redis' or 'skip (<why>)'")


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server on 127.0.0.1 for the blocks marked ``redis``."""
    sys.path.insert(0, str(Path(__file__).parent))
    from redis_server import serve
    for server in serve():
        yield server.url


@pytest.mark.parametrize("block", _params())
def test_readme_example_runs(block: Block, server: FaultServer, tmp_path: Path,
                             request: pytest.FixtureRequest) -> None:
    if block.mark is not None and block.mark.startswith("skip"):
        pytest.skip(f"README line {block.line}: {block.mark}")
    if block.mark == "llama" and importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("needs llama-cpp-python: pip install 'modelwire[local]'")
    env = example_env(server)
    if block.mark == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    path = tmp_path / f"readme_line_{block.line}.py"
    path.write_text(block.code, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", GUARD, str(path)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (
        f"README example at line {block.line} ({block.heading}) failed:\n{block.code}\n"
        f"--- stderr ---\n{proc.stderr}")
    assert "Traceback" not in proc.stderr and "Unclosed" not in proc.stderr, proc.stderr
