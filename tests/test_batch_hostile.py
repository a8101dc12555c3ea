"""Batch jobs under hostile input: careless files and options, misused paths."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from modelwire import AsyncClient
from modelwire.batch import ResultWriter, output_lock, prepare_output, read_requests, run_file
from modelwire.cli.app import app
from modelwire.errors import ConfigurationError, InvalidMessageError


def _run(inp: Path, out: Path) -> dict[str, int]:
    async def go() -> dict[str, int]:
        async with AsyncClient(middleware=[]) as client:
            return await run_file(client, inp, out, model="mock/echo")
    return asyncio.run(go())


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in out.read_text().splitlines()]


def test_bom_crlf_and_blank_lines_are_read(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b'\xef\xbb\xbf{"id": "a", "prompt": "hi"}\r\n\r\n  \n'
                    b'{"id": "b", "prompt": "yo"}\r\n')
    assert [r.id for r in read_requests(inp)] == ["a", "b"]


def test_input_that_is_not_utf8_or_not_a_file_is_a_typed_error(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b'\xff\xfe{"id": 1}\n')
    with pytest.raises(InvalidMessageError, match="not UTF-8"):
        read_requests(inp)
    with pytest.raises(ConfigurationError, match="cannot read the input"):
        read_requests(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigurationError, match="cannot read the input"):
        read_requests(tmp_path)


@pytest.mark.parametrize(("line", "match"), [
    ({"id": "x", "prompt": ["a"]}, '"prompt" must be a string'),
    ({"id": "x", "prompt": 12}, '"prompt" must be a string'),
    ({"id": "x", "prompt": "a", "options": []}, '"options" must be an object'),
    ({"id": "x", "prompt": "a", "options": {"stream": True}}, "cannot set stream"),
    ({"id": "x", "prompt": "a", "options": {"model": "mock/echo"}}, "cannot set model"),
    ({"id": "x", "prompt": "a", "options": {"messages": []}}, "cannot set messages"),
    ({"id": "x", "custom_id": "y", "prompt": "a"}, "not both"),
])
def test_structural_mistakes_are_refused_naming_the_line(tmp_path: Path, line: dict[str, Any],
                                                         match: str) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text('{"id": "ok", "prompt": "fine"}\n' + json.dumps(line) + "\n")
    with pytest.raises(InvalidMessageError, match=match) as info:
        _run(inp, out)
    assert "in.jsonl:2" in str(info.value)
    assert not out.exists() or out.read_text() == ""  # nothing ran


def test_option_mistakes_are_typed_errors_in_the_output_not_a_crash(tmp_path: Path) -> None:
    """What complete() itself rejects is that id's error; the rest still run."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    bad = [{"timeout": "x"}, {"temperature": "hot"}, {"top_p": "1"}, {"seed": 1.5},
           {"tools": 5}, {"bogus": 1}, {"max_tokens": "10"}]
    lines = [{"id": f"b{i}", "prompt": "hi", "options": o} for i, o in enumerate(bad)]
    lines.append({"id": "good", "prompt": "hi", "options": {"temperature": 0, "seed": 1}})
    inp.write_text("".join(json.dumps(x) + "\n" for x in lines))
    counts = _run(inp, out)
    assert counts["ok"] == 1 and counts["errors"] == len(bad)
    rows = {r["id"]: r for r in _rows(out)}
    assert rows["good"]["response"]["text"] == "hi"
    for i, option in enumerate(bad):
        err = rows[f"b{i}"]["error"]
        assert err["type"] in ("InvalidParameterError", "InvalidMessageError"), err
        assert next(iter(option)) in err["message"] or "bad options" in err["message"], err


def test_output_that_is_the_input_is_refused(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": "a", "prompt": "hi"}\n')
    before = inp.read_text()
    with pytest.raises(ConfigurationError, match="is the input file"):
        _run(inp, inp)
    link = tmp_path / "link.jsonl"
    link.symlink_to(inp)
    with pytest.raises(ConfigurationError, match="is the input file"):
        _run(inp, link)
    assert inp.read_text() == before


def test_request_lines_in_the_output_are_not_taken_for_results(tmp_path: Path) -> None:
    """An output holding request-shaped lines (a copy of the input) is not 'done'."""
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "a", "prompt": "hi"}\n')
    with pytest.raises(ConfigurationError, match="not a batch result line"):
        prepare_output(out)


def test_output_directory_missing_or_a_directory(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": "a", "prompt": "hi"}\n')
    with pytest.raises(ConfigurationError, match="does not exist"):
        _run(inp, tmp_path / "no" / "such" / "out.jsonl")
    with pytest.raises(ConfigurationError, match="is a directory"):
        _run(inp, tmp_path)


def test_cli_reports_path_mistakes_in_one_line(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": "a", "prompt": "hi"}\n')
    for args, message in (([str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o.jsonl")],
                           "cannot read the input"),
                          ([str(inp), "-o", str(tmp_path / "x" / "o.jsonl")], "does not exist"),
                          ([str(inp), "-o", str(inp)], "is the input file")):
        result = CliRunner().invoke(app, ["batch", *args, "-m", "mock/echo", "--no-progress"])
        assert result.exit_code == 2, result.output
        assert "error: ConfigurationError: " in result.stderr and message in result.stderr
        assert "Traceback" not in result.output


async def test_huge_concurrency_starts_no_more_workers_than_requests(
        monkeypatch: pytest.MonkeyPatch) -> None:
    workers = 0
    real = asyncio.ensure_future

    def counting(aw: Any, **kw: Any) -> Any:
        nonlocal workers
        workers += "worker" in getattr(aw, "__qualname__", "")
        return real(aw, **kw)

    monkeypatch.setattr(asyncio, "ensure_future", counting)
    async with AsyncClient(middleware=[]) as client:
        results = await client.batch([{"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y"}],
                                     model="mock/echo", concurrency=100_000)
        assert [r.ok for r in results] == [True, True]
        assert workers == 2
        with pytest.raises(ConfigurationError, match="concurrency"):
            await client.batch([], concurrency=True)


def test_lone_surrogates_neither_crash_the_batch_nor_corrupt_the_output(tmp_path: Path) -> None:
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text('{"id": "x", "prompt": "\\ud800 lone"}\n{"id": "y", "prompt": "fine"}\n')
    counts = _run(inp, out)
    assert counts["ok"] == 1 and counts["errors"] == 1
    err = _rows(out)[0]["error"]
    assert err["type"] == "InvalidMessageError" and "not valid Unicode" in err["message"]
    writer = ResultWriter(out)  # a provider's text may carry one too: written as its escape
    writer.write({"id": "z", "response": {"text": "a\udc80b"}})
    writer.close()
    assert _rows(out)[-1]["response"]["text"] == "a\udc80b"
    assert prepare_output(out).done == {"x": False, "y": True, "z": True}


def test_a_second_run_on_the_same_output_is_refused(tmp_path: Path) -> None:
    """Two terminals, one output: every id would be written (and paid for) twice."""
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text('{"id": "a", "prompt": "hi"}\n')
    with output_lock(out):
        with pytest.raises(ConfigurationError, match="another run is writing"):
            _run(inp, out)
        assert not out.exists()
    assert _run(inp, out)["ok"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


def test_a_whole_last_line_missing_only_its_newline_is_kept(tmp_path: Path) -> None:
    """Not a half-written line: redoing it would pay twice for an answer we have."""
    out = tmp_path / "out.jsonl"
    out.write_text('{"id":"a","response":{"text":"kept"}}\n{"id":"b","response":{"text":"also"}}')
    state = prepare_output(out)
    assert state.done == {"a": True, "b": True} and state.truncated == 0
    assert out.read_text().endswith('"also"}}\n')
    out.write_text('{"id":"a","response":{"text":"kept"}}\n{"id":"b","response":{"te')
    assert prepare_output(out).done == {"a": True}  # really half-written: cut, redone
    out.write_text('{"id":"a","response":{"text":"kept"}}\n{"id":"b"}')  # valid JSON, no result
    assert prepare_output(out).done == {"a": True}
    assert out.read_text() == '{"id":"a","response":{"text":"kept"}}\n'


async def test_a_lone_surrogate_is_a_typed_error_for_every_wire() -> None:
    """Not a raw UnicodeEncodeError from deep in the JSON encoder."""
    async with AsyncClient(api_keys={"openai": "sk-x", "anthropic": "sk-x"},
                           base_urls={"openai": "http://127.0.0.1:9/v1",
                                      "anthropic": "http://127.0.0.1:9"},
                           max_retries=0) as client:
        for model in ("mock/echo", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"):
            with pytest.raises(InvalidMessageError, match="not valid Unicode"):
                await client.complete(model, "half a pair: \ud800")
            with pytest.raises(InvalidMessageError, match="not valid Unicode"):
                async with client.stream(model, "\udc80") as s:
                    async for _ in s:
                        pass


def test_an_output_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    """-o /dev/stdout read its own pipe (for ever) to find finished ids."""
    inp, fifo = tmp_path / "in.jsonl", tmp_path / "fifo"
    inp.write_text('{"id": "a", "prompt": "hi"}\n')
    os.mkfifo(fifo)
    for out in (fifo, Path("/dev/null")):
        with pytest.raises(ConfigurationError, match="not a regular file"):
            _run(inp, out)


def test_sigterm_ends_the_cli_even_when_it_is_stuck_in_blocking_code(tmp_path: Path) -> None:
    """Input from a FIFO nobody writes: opening it blocks. SIGTERM must still end the
    command (cancelled when the loop can run, else after a short grace)."""
    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelwire.cli", "batch", str(fifo), "-o",
         str(tmp_path / "out.jsonl"), "-m", "mock/echo", "--no-progress"],
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # let it reach the blocking open (a late signal ends it too)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
