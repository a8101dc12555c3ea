"""The ``modelwire`` logger: requests at DEBUG (request id, masked key), retries,
fallbacks and breaker transitions at INFO; MODELWIRE_LOG turns it on without
code; the local-model notice is a warning that can be silenced."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import modelwire.client as client_module
from modelwire import AsyncClient
from modelwire.hooks import mask_key
from modelwire.middleware import BreakerPolicy, RetryPolicy
from modelwire.testing import FaultServer

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-proj-logging0123456789abcdef"
FAST = RetryPolicy(initial=0.0, max_wait=0.0, jitter=0.0)


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "modelwire"
            and r.levelno == level]


async def test_each_request_is_logged_at_debug_with_its_id_and_a_masked_key(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="modelwire")
    async with FaultServer() as server, AsyncClient(
            api_keys={"openai": KEY}, base_urls={"openai": server.url_for("openai")}) as client:
        resp = await client.complete("openai/gpt-4o-mini", "hi")
        async with client.stream("openai/gpt-4o-mini", "hi") as stream:
            _ = [e async for e in stream]
    debug = _messages(caplog, logging.DEBUG)
    assert resp.request_id
    answered = [m for m in debug if "openai/gpt-4o-mini answered" in m]
    assert len(answered) == 1 and f"request id {resp.request_id}" in answered[0]
    assert f"key {mask_key(KEY)}" in answered[0] and mask_key(KEY) == "sk-…cdef"
    assert any("openai/gpt-4o-mini stream opened" in m for m in debug)
    assert KEY not in caplog.text


async def test_retries_fallbacks_and_breaker_changes_are_logged_at_info(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modelwire")
    async with FaultServer() as server:
        client = AsyncClient(
            api_keys={"openai": KEY, "anthropic": "ak-logging-0123456789"},
            base_urls={"openai": server.url_for("openai"),
                       "anthropic": server.url_for("anthropic")},
            retry=FAST, max_retries=1, fallbacks=["anthropic/claude-sonnet-4-5"],
            breaker=BreakerPolicy(failures=1, failure_rate=None))
        async with client:
            resp = await client.complete("openai/mw-status-503", "hi")
    assert resp.provider == "anthropic"
    info = _messages(caplog, logging.INFO)
    assert any(m.startswith("retrying openai/mw-status-503 (attempt 2)") and "ServerError" in m
               for m in info), info
    assert any(m.startswith("circuit breaker for openai/mw-status-503 opened: a call failed")
               for m in info), info
    assert any(m.startswith("falling back from openai/mw-status-503 to "
                            "anthropic/claude-sonnet-4-5") for m in info), info
    assert not _messages(caplog, logging.DEBUG)  # requests only at DEBUG
    assert KEY not in caplog.text


def test_modelwire_log_env_turns_logging_on_without_code() -> None:
    code = textwrap.dedent("""
        import modelwire
        with modelwire.Client() as c:
            print(c.complete("mock/echo", "hello").text)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MODELWIRE_LOG": "debug"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello\n"
    assert "modelwire DEBUG mock/echo answered" in proc.stderr
    env.pop("MODELWIRE_LOG")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert (proc.stdout, proc.stderr) == ("hello\n", "")


def test_the_local_model_notice_is_a_warning_that_can_be_silenced(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(client_module, "_announced_default", False)
    with caplog.at_level(logging.WARNING, logger="modelwire"):
        target = AsyncClient(env={}).resolve(None)
    assert target.provider == "local"
    [record] = [r for r in caplog.records if r.name == "modelwire"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("modelwire: no provider key set; using local/")


def test_the_notice_is_printed_by_default_and_silenced_by_the_logger_level() -> None:
    code = textwrap.dedent("""
        import logging, sys
        import modelwire
        if sys.argv[1] == "quiet":
            logging.getLogger("modelwire").setLevel(logging.ERROR)
        modelwire.AsyncClient(env={}).resolve(None)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MODELWIRE_LOG", None)
    out = {mode: subprocess.run([sys.executable, "-c", code, mode], env=env,
                                capture_output=True, text=True, timeout=60)
           for mode in ("default", "quiet")}
    assert "modelwire: no provider key set; using local/" in out["default"].stderr
    assert out["quiet"].stderr == ""


def test_mask_key_shows_only_a_prefix_and_the_last_four() -> None:
    assert mask_key(KEY) == "sk-…cdef"
    assert mask_key("short-key") == "***"  # too short to show any of it
    assert mask_key(None) == "none"


def test_a_bad_modelwire_log_value_is_reported_and_ignored() -> None:
    code = "import modelwire, logging; print(logging.getLogger('modelwire').level)"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MODELWIRE_LOG": "loud"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "0\n"
    assert "MODELWIRE_LOG='loud' is not a logging level" in proc.stderr
