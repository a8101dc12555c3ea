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


def test_a_call_in_flight_when_another_thread_closes_the_client_fails_clearly() -> None:
    """It used to wait forever on the stopped loop."""
    import threading

    import modelwire
    from modelwire.mock import MockReply

    client = modelwire.Client()
    client.mock.script(MockReply("late", latency=30))
    outcome: dict[str, BaseException] = {}
    started = threading.Event()

    def call() -> None:
        started.set()
        try:
            client.complete("mock/slow", "hi")
        except BaseException as e:  # the test inspects it
            outcome["error"] = e

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    started.wait(5)
    while not client.mock.requests and worker.is_alive():  # the request reached the mock
        threading.Event().wait(0.01)
    client.close()
    worker.join(20)
    assert not worker.is_alive(), "the call still waits on a closed client"
    err = outcome["error"]
    assert isinstance(err, modelwire.ConfigurationError)
    assert "closed while this call was in flight" in str(err)


def test_a_closed_client_refuses_calls_with_a_clear_error() -> None:
    import warnings

    import modelwire

    client = modelwire.Client()
    client.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine ... was never awaited"
        with pytest.raises(modelwire.ConfigurationError, match="Client is closed"):
            client.complete("mock/echo", "hi")
        with pytest.raises(modelwire.ConfigurationError, match="Client is closed"):
            list(client.stream("mock/echo", "hi"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX")
def test_a_forked_child_gets_a_clear_error_not_a_hang() -> None:
    """multiprocessing's fork copies the Client but not its loop thread: a call used to
    wait forever, and exit waited on it too."""
    code = textwrap.dedent("""
        import os, sys, modelwire
        client = modelwire.Client()
        assert client.complete("mock/m", "parent").text == "parent"
        pid = os.fork()
        if pid == 0:
            try:
                client.complete("mock/m", "child")
                print("child: answered")
            except modelwire.ConfigurationError as e:
                print("child:", e)
            sys.stdout.flush()
            sys.exit(0)  # a normal exit: the finalizer runs here and must not wait
        _, status = os.waitpid(pid, 0)
        print("parent again:", client.complete("mock/m", "again").text, status)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "child: this Client was created in another process" in proc.stdout, proc.stdout
    assert "parent again: again 0" in proc.stdout  # the parent's client is untouched
    assert "Traceback" not in proc.stderr
