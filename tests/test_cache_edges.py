"""The response cache at its edges: per-call options, what a Response says,
cancelled leaders, cut and concurrent streams, broken disk files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from modelwire import AsyncClient
from modelwire.errors import ConfigurationError, InvalidParameterError
from modelwire.mock import MockReply

MODEL = "mock/cached"


# --- the per-call option ------------------------------------------------------------


async def test_cache_true_on_a_call_of_a_client_without_a_cache_is_an_error() -> None:
    for client in (AsyncClient(), AsyncClient(middleware=[])):
        with pytest.raises(ConfigurationError, match=r"AsyncClient\(cache=True\)"):
            await client.complete(MODEL, "hi", cache=True)
        assert not client.mock.requests
        # cache=False asks for nothing a client without a cache cannot do
        assert not (await client.complete(MODEL, "hi", cache=False)).cached
    # ... whether or not another client in the process has a cache
    AsyncClient(cache=True)
    with pytest.raises(ConfigurationError):
        await AsyncClient().complete(MODEL, "hi", cache=True)


async def test_the_per_call_cache_option_is_a_bool() -> None:
    client = AsyncClient(cache=True)
    with pytest.raises(InvalidParameterError, match="True or False"):
        await client.complete(MODEL, "hi", cache="yes")
    assert not client.mock.requests


async def test_to_dict_says_whether_the_answer_was_cached() -> None:
    client = AsyncClient(cache=True)
    first = await client.complete(MODEL, "hi")
    again = await client.complete(MODEL, "hi")
    assert (first.to_dict()["cached"], again.to_dict()["cached"]) == (False, True)


# --- single flight when the leader goes away ------------------------------------------


async def test_a_cancelled_leader_frees_its_waiters() -> None:
    client = AsyncClient(cache=True)
    client.mock.script(MockReply("never finished", latency=5.0), MockReply("went myself"))
    leader = asyncio.create_task(client.complete(MODEL, "same"))
    while not client.mock.requests:  # the leader's request is out
        await asyncio.sleep(0.01)
    waiter = asyncio.create_task(client.complete(MODEL, "same"))
    await asyncio.sleep(0.05)
    assert not waiter.done()  # it waits for the leader ...
    leader.cancel()
    response = await asyncio.wait_for(waiter, 10)  # ... and goes itself once it is gone
    assert response.text == "went myself" and not response.cached
    assert len(client.mock.requests) == 2
    assert (await client.complete(MODEL, "same")).cached


async def test_a_stream_cut_mid_way_is_not_cached() -> None:
    from modelwire.errors import StreamInterruptedError
    client = AsyncClient(cache=True, max_retries=0)
    client.mock.script(MockReply("one two three four five six", disconnect_after=3),
                       MockReply("the whole answer"))
    with pytest.raises(StreamInterruptedError):
        async with client.stream(MODEL, "cut") as s:
            async for _ in s:
                pass
    async with client.stream(MODEL, "cut") as s:
        assert [e async for e in s]
    assert s.response.text == "the whole answer" and not s.response.cached
    assert len(client.mock.requests) == 2


# --- size bounds ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "disk"])
async def test_an_answer_larger_than_max_entry_bytes_is_not_cached(
        kind: str, tmp_path: Path) -> None:
    from modelwire.cache import DiskCache, MemoryCache
    backend = (MemoryCache(max_entry_bytes=4096) if kind == "memory"
               else DiskCache(tmp_path / "c.sqlite3", max_entry_bytes=4096))
    client = AsyncClient(cache=backend)
    client.mock.script(MockReply("big " * 2000), MockReply("big " * 2000), MockReply("small"))
    for _ in range(2):
        await client.complete(MODEL, "huge")
    assert len(client.mock.requests) == 2 and len(backend) == 0
    await client.complete(MODEL, "tiny")
    assert (await client.complete(MODEL, "tiny")).cached and len(backend) == 1


@pytest.mark.parametrize("bad", [
    {"max_entries": 0}, {"max_entries": -1}, {"ttl": 0}, {"ttl": -5}, {"ttl": True},
    {"max_entry_bytes": 0}, {"max_entry_bytes": "1MB"},
])
def test_cache_bounds_are_checked_in_every_backend(bad: dict[str, Any], tmp_path: Path) -> None:
    from modelwire.cache import DiskCache, MemoryCache
    with pytest.raises(ConfigurationError, match=next(iter(bad))):
        MemoryCache(**bad)
    with pytest.raises(ConfigurationError, match=next(iter(bad))):
        DiskCache(tmp_path / "c.sqlite3", **bad)
    if "max_entries" not in bad:
        pytest.importorskip("redis", reason="the redis package is not installed")
        from modelwire.cache import RedisCache
        with pytest.raises(ConfigurationError, match=next(iter(bad))):
            RedisCache("redis://127.0.0.1:6379/0", **bad)


def test_redis_cache_options_are_checked() -> None:
    pytest.importorskip("redis", reason="the redis package is not installed")
    from modelwire.cache import RedisCache
    for bad in ({"lock_timeout": 0}, {"lock_timeout": True}, {"namespace": ""}):
        with pytest.raises(ConfigurationError, match=next(iter(bad))):
            RedisCache("redis://127.0.0.1:6379/0", **bad)  # type: ignore[arg-type]


# --- the disk file --------------------------------------------------------------------


async def test_a_corrupt_disk_cache_file_is_moved_aside_and_started_afresh(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from modelwire.cache import DiskCache
    path = tmp_path / "responses.sqlite3"
    path.write_bytes(b"not a database at all " * 200)
    client = AsyncClient(cache=DiskCache(path))
    await client.complete(MODEL, "hi")
    assert (await client.complete(MODEL, "hi")).cached
    assert (tmp_path / "responses.sqlite3.corrupt").read_bytes().startswith(b"not a database")
    assert any("moved it to" in r.getMessage() for r in caplog.records)


async def test_a_disk_cache_file_overwritten_mid_run_only_costs_misses(tmp_path: Path) -> None:
    from modelwire.cache import DiskCache
    path = tmp_path / "responses.sqlite3"
    client = AsyncClient(cache=DiskCache(path))
    await client.complete(MODEL, "before")
    with open(path, "r+b") as f:
        f.write(b"\0" * 4096)  # the header is gone
    assert (await client.complete(MODEL, "after")).text == "after"
    assert len(client.mock.requests) == 2


def test_processes_starting_together_share_one_new_disk_cache_file(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time
    path = tmp_path / "shared.sqlite3"
    # Each process waits for the same moment, then opens the (new) file and writes:
    # switching a new file to WAL answered "database is locked" to all but one.
    script = (
        "import asyncio, sys, time\n"
        "from modelwire.cache import DiskCache\n"
        "async def main(me, start):\n"
        "    time.sleep(max(start - time.time(), 0))\n"
        "    c = DiskCache(sys.argv[1], max_entries=100)\n"
        "    for i in range(300):\n"
        "        await c.set(f'{me}-{i}', {'n': i, 'pad': 'x' * 500})\n"
        "        await c.get(f'{(me + 1) % 4}-{i}')\n"
        "asyncio.run(main(int(sys.argv[2]), float(sys.argv[3])))\n")
    root = str(Path(__file__).resolve().parent.parent)
    start = str(time.time() + 2.0)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), str(me), start],
                              stderr=subprocess.PIPE, text=True, env={"PYTHONPATH": root})
             for me in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors  # no "database is locked"
    from modelwire.cache import DiskCache
    assert len(DiskCache(path, max_entries=100)) == 100


# --- tenants --------------------------------------------------------------------------


async def test_tenant_decides_sharing_over_the_api_key() -> None:
    from modelwire.cache import MemoryCache
    from modelwire.middleware import ResponseCache
    backend = MemoryCache()

    def client(tenant: str | None, key: str) -> AsyncClient:
        return AsyncClient(cache=ResponseCache(backend, tenant=tenant), api_keys={"mock": key})

    first = client("team-a", "sk-one")
    first.mock.script(MockReply("team a's answer"))
    await first.complete(MODEL, "hi")
    # the same tenant with another key shares the entry (the tenant is the identity) ...
    assert (await client("team-a", "sk-two").complete(MODEL, "hi")).cached
    # ... another tenant with the same key does not, nor does the key without a tenant
    for other in (client("team-b", "sk-one"), client(None, "sk-one")):
        r = await other.complete(MODEL, "hi")
        assert not r.cached and r.text == "hi"


async def test_a_stream_its_caller_dropped_unread_frees_its_waiters() -> None:
    import gc

    from modelwire.pipeline import Timeouts
    client = AsyncClient(cache=True)
    client.mock.script(MockReply("a b c"), MockReply("x y z"))
    leader = await client.stream(MODEL, "same").__aenter__()  # neither read nor closed
    del leader
    gc.collect()
    waiter = asyncio.create_task(_read(client, Timeouts(total=30)))
    events, cached = await asyncio.wait_for(waiter, 10)  # not its 30 s deadline
    assert events and not cached and len(client.mock.requests) == 2


async def _read(client: AsyncClient, timeout: Any) -> tuple[list[Any], bool]:
    async with client.stream(MODEL, "same", timeout=timeout) as s:
        return [e async for e in s], s.response.cached


# --- the CLI --------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["chat"], ["chat", "--no-stream"],
                                     ["complete", "--no-stream"]])
def test_the_cli_cache_flag_answers_a_repeat_from_the_disk_cache(
        command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from modelwire.cli.app import app
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    runner = CliRunner()
    args = [*command, "-m", "mock/echo", "--json", "--cache", "-t", "0.7", "hello cache"]
    runs = [runner.invoke(app, args) for _ in range(2)]
    assert [r.exit_code for r in runs] == [0, 0], runs[0].output
    answers = [json.loads(r.stdout) for r in runs]
    assert [a["cached"] for a in answers] == [False, True]  # sampled, but asked for
    assert answers[1]["text"] == "hello cache"
    assert (tmp_path / "modelwire" / "responses.sqlite3").is_file()
    without = json.loads(runner.invoke(app, [*command, "-m", "mock/echo", "--json",
                                             "hello cache"]).stdout)
    assert without["cached"] is False


async def test_a_replayed_stream_read_to_its_end_is_one_successful_call_in_metrics() -> None:
    client = AsyncClient(cache=True)
    for _ in range(2):
        async with client.stream(MODEL, "one two") as s:
            assert [e async for e in s]
    assert client.metrics is not None
    stats = client.metrics.snapshot()["models"][MODEL]
    assert (stats["calls"], stats["successes"], stats["streams_abandoned"],
            stats["cache_hits"]) == (2, 2, 0, 1)


async def test_cache_true_on_embed_is_an_error_not_ignored() -> None:
    client = AsyncClient(cache=True)
    with pytest.raises(InvalidParameterError, match="embed"):
        await client.embed("mock/embed", ["a"], cache=True)
    assert len((await client.embed("mock/embed", ["a"], cache=False)).vectors) == 1
