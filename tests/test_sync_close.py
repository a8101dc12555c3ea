"""A sync Client that is never closed closes quietly: at interpreter exit and on
garbage collection, no "Unclosed client session" / "Unclosed connector"."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = """
import gc, threading, warnings
warnings.simplefilter("always")
import modelwire
from modelwire.testing import FaultServer

server_cm = FaultServer.run_in_thread()
server = server_cm.__enter__()
def make():
    return modelwire.Client(api_keys={"openai": "sk-test"},
                            base_urls={"openai": server.url_for("openai")})
"""

SCRIPTS = {
    "left open at exit": """
client = make()
print(client.complete("openai/gpt-4o-mini", "hi").text)
with client.stream("openai/gpt-4o-mini", "hi") as s:
    for _ in s:
        pass
""",
    "dropped and collected": """
client = make()
print(client.complete("openai/gpt-4o-mini", "hi").text)
del client
gc.collect()
alive = [t.name for t in threading.enumerate() if t.name == "modelwire-loop"]
print("loop threads:", alive)
""",
    "closed twice": """
client = make()
print(client.complete("openai/gpt-4o-mini", "hi").text)
client.close()
client.close()
""",
}


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_no_unclosed_warnings(name: str) -> None:
    code = textwrap.dedent(PRELUDE) + textwrap.dedent(SCRIPTS[name])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDEVMODE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), proc.stderr  # the call was answered
    assert "Unclosed" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    if name == "dropped and collected":
        assert "loop threads: []" in proc.stdout
