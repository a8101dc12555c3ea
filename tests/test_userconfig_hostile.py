"""The user config file against careless users: every mistake a typed error naming the file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import modelwire
from modelwire import userconfig


def _client_error(path: Path, text: str, model: str | None = "mock/x") -> str:
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(modelwire.ConfigurationError) as info, \
            modelwire.Client(config=path) as client:
        client.complete(model, "hi")
    assert str(path) in str(info.value)
    return str(info.value)


@pytest.mark.parametrize(("text", "match"), [
    ('[providers.opneai]\ntimeout = 3\n', "unknown provider 'opneai'"),  # a typo, was ignored
    ('[aliases]\nfast = ["mock/a", "nope/x"]\n', "route 'nope/x' of alias 'fast'"),
    ('[aliases]\na = "b"\nb = "a"\n', "'b' is another alias"),  # no alias cycles
    ('x = = 1\n', "line 1"),
    ('[aliases]\nfast = ["mock/a",\n', "not valid TOML"),
])
def test_bad_files_name_the_file_and_the_mistake(tmp_path: Path, text: str, match: str) -> None:
    # Regression: an unknown provider table was silently ignored, and a route to an
    # unknown provider failed only at call time, without naming the file or alias.
    assert match in _client_error(tmp_path / "config.toml", text)


def test_non_utf8_file_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'default_model = "mock/\xff"\n')
    with pytest.raises(modelwire.ConfigurationError, match="not UTF-8 text"):
        userconfig.load(path)


def test_config_env_var_pointing_at_a_directory(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: a raw IsADirectoryError escaped from the first call.
    monkeypatch.setenv("MODELWIRE_CONFIG", str(tmp_path))
    with pytest.raises(modelwire.ConfigurationError, match="is a directory: point"), \
            modelwire.Client() as client:
        client.complete("mock/x", "hi")
    with pytest.raises(modelwire.ConfigurationError, match="is a directory"):
        userconfig.set_alias("fast", ["mock/x"])


def test_config_env_var_pointing_at_an_unreadable_file(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[aliases]\nfast = "mock/x"\n')
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("running as root: a mode-0 file is still readable, so no permission error")
    monkeypatch.setenv("MODELWIRE_CONFIG", str(path))
    with pytest.raises(modelwire.ConfigurationError, match="cannot read"):
        userconfig.load()


def test_a_missing_file_is_an_empty_config(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELWIRE_CONFIG", str(tmp_path / "absent.toml"))
    with modelwire.Client() as client:
        assert client.complete("mock/x", "fine").text == "fine"


def test_set_alias_refuses_to_write_a_file_that_would_not_load(tmp_path: Path) -> None:
    # Regression: `modelwire aliases set fast nope/x` wrote the file, and every client
    # then failed on it.
    path = tmp_path / "config.toml"
    userconfig.set_alias("ok", ["mock/a"], path)
    with pytest.raises(modelwire.ConfigurationError, match="unknown provider 'nope'"):
        userconfig.set_alias("fast", ["nope/x"], path)
    assert userconfig.load(path).aliases == {"ok": ("mock/a",)}


WRITER = """
import sys, time
from pathlib import Path
from modelwire.userconfig import set_alias
go = Path(sys.argv[2] + ".go")
while not go.exists():  # start together, so the writes overlap
    time.sleep(0.001)
for i in range(N):
    set_alias(f"{sys.argv[1]}{i}", [f"mock/{sys.argv[1]}{i}"], Path(sys.argv[2]))
"""
N = 60


def test_concurrent_alias_writers_lose_nothing_and_never_corrupt(tmp_path: Path) -> None:
    # Regression: each writer read, changed and renamed the whole file, so two at once
    # dropped each other's aliases (the rename kept the file itself whole).
    path = tmp_path / "config.toml"
    code = WRITER.replace("range(N)", f"range({N})")
    procs = [subprocess.Popen([sys.executable, "-c", code, name, str(path)])
             for name in ("a", "b")]
    time.sleep(0.5)  # (not a timing assert: lets both start before the go file appears)
    Path(f"{path}.go").touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    aliases = userconfig.load(path).aliases
    assert sorted(aliases) == sorted(f"{n}{i}" for n in "ab" for i in range(N))
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".config-")] == []
    assert userconfig.parse(userconfig.read_raw(path), path).aliases == aliases


def test_set_alias_keeps_a_symlinked_config_a_symlink(tmp_path: Path) -> None:
    # Regression: the rename replaced a dotfiles symlink with a plain file.
    real = tmp_path / "dotfiles" / "modelwire.toml"
    real.parent.mkdir()
    real.write_text('[aliases]\nold = "mock/old"\n')
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    userconfig.set_alias("new", ["mock/new"], link)
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert set(userconfig.load(link).aliases) == {"old", "new"}
