"""The cold path: a fresh process importing modelwire, building a default
AsyncClient and making its first call imports only what that call needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import asyncio, json, sys
import modelwire
from modelwire.middleware import RetryPolicy
from modelwire.testing import Fault, FaultServer

async def main():
    async with FaultServer() as server:
        server.script(*script)
        async with modelwire.AsyncClient(
                api_keys={"openai": "sk-test"},
                base_urls={"openai": server.url_for("openai")},
                retry=RetryPolicy(initial=0, max_wait=0, jitter=0)) as c:
            before = {m: m in sys.modules for m in WATCH}
            text = (await c.complete("openai/gpt-4o-mini", "hi")).text
            after = {m: m in sys.modules for m in WATCH}
    print(json.dumps({"text": text, "before": before, "after": after}))

WATCH = ["tenacity", "limits", "modelwire.middleware.ratelimit", "modelwire.events"]
"""


def _run(script: str) -> dict[str, dict[str, bool]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT) + script + "\nasyncio.run(main())"],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, dict[str, bool]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_a_default_client_imports_no_retry_or_rate_limit_machinery_until_needed() -> None:
    out = _run("script = [Fault.ok('fine')]")
    assert out["before"] == out["after"] == {
        "tenacity": False, "limits": False, "modelwire.middleware.ratelimit": False,
        "modelwire.events": False}


def test_the_first_retry_imports_tenacity() -> None:
    out = _run("script = [Fault.status(503), Fault.ok('fine')]")
    assert out["before"]["tenacity"] is False
    assert out["after"]["tenacity"] is True
    assert out["after"]["modelwire.events"] is True  # RetryScheduled was emitted
