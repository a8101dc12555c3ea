"""Model aliases and routes, the user config file, models as clients, `modelwire aliases`."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import modelwire
from modelwire import AsyncClient, Client
from modelwire.cli.app import app
from modelwire.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidModelError,
    MissingAPIKeyError,
    ServerError,
)
from modelwire.mock import MockReply
from modelwire.routes import BUILTIN_ALIASES, NoRouteConfiguredError
from modelwire.userconfig import config_path, dumps, load, set_alias

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MSG = "hello there"


def names(targets: list[modelwire.pipeline.Target]) -> list[str]:
    return [t.name for t in targets]


# --- routes -----------------------------------------------------------------------------


def test_alias_uses_the_first_configured_route_and_the_rest_are_fallbacks() -> None:
    client = AsyncClient(env={"OPENROUTER_API_KEY": "k1", "FIREWORKS_API_KEY": "k2"},
                         config=False)
    assert names(client.plan("deepseek-chat")) == [
        "openrouter/deepseek/deepseek-chat", "fireworks/accounts/fireworks/models/deepseek-v3"]
    call = client.build_call("deepseek-chat", MSG, fallbacks=["mock/last"])
    assert call.target.name == "openrouter/deepseek/deepseek-chat"
    assert [t.name for t in call.fallbacks] == [
        "fireworks/accounts/fireworks/models/deepseek-v3", "mock/last"]
    # with the first provider's key set, it comes first
    client2 = AsyncClient(env={"DEEPSEEK_API_KEY": "k", "OPENROUTER_API_KEY": "k"}, config=False)
    assert client2.plan("deepseek-chat")[0].name == "deepseek/deepseek-chat"


async def test_a_failing_route_falls_back_to_the_next() -> None:
    async with AsyncClient(aliases={"m": ["mock/a", "mock/b"]}, config=False,
                           max_retries=0) as client:
        client.mock.script(MockReply(status=401), MockReply("from b"))
        resp = await client.complete("m", MSG)
    assert resp.text == "from b"
    assert [(a.model, a.error is None) for a in resp.attempts] == [("a", False), ("b", True)]


async def test_unknown_name_keeps_invalid_model_error_and_lists_aliases() -> None:
    client = AsyncClient(aliases={"mine": "mock/x"}, config=False)
    with pytest.raises(InvalidModelError, match=r"known aliases: .*deepseek-chat.*mine"):
        await client.complete("no-such-model", MSG)


def test_alias_with_no_configured_provider_names_the_variables() -> None:
    client = AsyncClient(env={}, config=False)
    with pytest.raises(NoRouteConfiguredError, match="DEEPSEEK_API_KEY, OPENROUTER_API_KEY"):
        client.plan("deepseek-chat")
    assert issubclass(NoRouteConfiguredError, ConfigurationError)


@pytest.mark.parametrize("aliases, match", [
    ({"a/b": "mock/x"}, "without '/'"),
    ({"a": "noslash"}, "'<provider>/<model>'"),
    ({"a": []}, "no routes"),
    ({"a": [1]}, "list of strings"),
])
def test_bad_aliases_argument_is_a_configuration_error(aliases: dict[str, object],
                                                      match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        AsyncClient(aliases=aliases, config=False)  # type: ignore[arg-type]


def test_code_beats_the_file_beats_builtins(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[aliases]\nsmollm2 = "mock/file"\ngpt-4o-mini = "mock/file-gpt"\n')
    client = AsyncClient(aliases={"gpt-4o-mini": "mock/code"}, config=cfg)
    assert client.plan("gpt-4o-mini")[0].name == "mock/code"
    assert client.plan("smollm2")[0].name == "mock/file"
    assert client.routes.get("deepseek-chat") == BUILTIN_ALIASES["deepseek-chat"]


def test_import_and_construction_do_not_load_routes_or_the_config() -> None:
    import subprocess
    code = ("import sys, modelwire; modelwire.AsyncClient(); "
            "print(sorted(m for m in sys.modules if m in "
            "('modelwire.userconfig', 'modelwire.routes', 'tomllib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# --- the user config file ---------------------------------------------------------------


def test_config_path_env_override_and_xdg(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    assert config_path({"MODELWIRE_CONFIG": str(tmp_path / "x.toml")}) == tmp_path / "x.toml"
    if sys.platform not in ("win32", "darwin"):
        assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == (
            tmp_path / "modelwire" / "config.toml")
        assert config_path({}) == Path.home() / ".config" / "modelwire" / "config.toml"


async def test_file_gives_default_model_fallbacks_and_provider_options(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('default_model = "primary"\nfallbacks = ["mock/spare"]\n'
                   '[aliases]\nprimary = ["mock/main"]\n'
                   '[providers.azure]\napi_version = "v1"\n')
    async with AsyncClient(config=cfg, max_retries=0, env={}) as client:
        client.mock.script(MockReply(status=500), MockReply("spare answered"))
        resp = await client.complete(None, MSG)
        assert resp.text == "spare answered"
        assert [a.model for a in resp.attempts] == ["main", "spare"]
        assert client.settings.options["azure"]["api_version"] == "v1"


async def test_explicit_arguments_beat_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('default_model = "mock/from-file"\nfallbacks = ["mock/f"]\n'
                   '[providers.azure]\napi_version = "file"\n')
    client = AsyncClient(config=cfg, default_model="mock/from-code", fallbacks=[],
                         provider_options={"azure": {"api_version": "code"}})
    call = client.build_call(None, MSG)
    assert call.target.name == "mock/from-code" and not call.fallbacks
    assert client.settings.options["azure"]["api_version"] == "code"


def test_file_base_urls_rank_below_arguments_and_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[providers.ollama]\nbase_url = "http://127.0.0.1:9999/v1"\n'
                   '[providers.vllm]\nbase_url = "http://127.0.0.1:9998/v1"\n')
    client = AsyncClient(config=cfg, env={"VLLM_BASE_URL": "http://127.0.0.1:1/v1"})
    assert client.plan("ollama/llama3")[0].base_url == "http://127.0.0.1:9999/v1"
    assert client.plan("vllm/m")[0].base_url == "http://127.0.0.1:1/v1"
    code = AsyncClient(config=cfg, base_urls={"ollama": "http://127.0.0.1:2/v1"})
    assert code.plan("ollama/llama3")[0].base_url == "http://127.0.0.1:2/v1"
    with pytest.raises(ConfigurationError, match="base_url must be a non-empty string"):
        bad = tmp_path / "bad.toml"
        bad.write_text("[providers.ollama]\nbase_url = 3\n")
        AsyncClient(config=bad).plan("mock/x")


def test_the_file_is_read_lazily_not_at_construction(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("this is = = not toml")
    client = AsyncClient(config=cfg)  # constructing never reads it
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        client.build_call("mock/x", MSG)


def test_load_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[aliases]\na = "mock/one"\n')
    first = load(cfg)
    assert load(cfg) is first
    cfg.write_text('[aliases]\na = "mock/two-changed"\n')
    assert load(cfg).aliases["a"] == ("mock/two-changed",)
    assert load(tmp_path / "missing.toml").aliases == {}


@pytest.mark.parametrize("text, match", [
    ('defualt_model = "x"\n', "unknown setting.*defualt_model"),
    ('default_model = 3\n', "default_model must be a string"),
    ('fallbacks = "mock/x"\n', "fallbacks must be a list"),
    ('[aliases]\nbad = "x"\n', "'<provider>/<model>'"),
    ('[providers]\nopenai = 3\n', "must be tables"),
])
def test_bad_files_are_configuration_errors(tmp_path: Path, text: str, match: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigurationError, match=match):
        AsyncClient(config=cfg).build_call("mock/x", MSG)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX permissions")
def test_keys_in_a_readable_file_are_refused_and_private_ones_used(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[providers.openai]\napi_key = "sk-from-file-123"\n')
    cfg.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600") as info:
        AsyncClient(config=cfg, env={}).build_call("mock/x", MSG)
    assert "sk-from-file" not in str(info.value)
    cfg.chmod(0o600)
    client = AsyncClient(config=cfg, env={})
    assert client.plan("openai/gpt-4o-mini")[0].api_key == "sk-from-file-123"
    assert "sk-from-file" not in repr(load(cfg))
    # the environment beats the file
    env_client = AsyncClient(config=cfg, env={"OPENAI_API_KEY": "sk-env"})
    assert env_client.plan("openai/gpt-4o-mini")[0].api_key == "sk-env"


def test_set_alias_writes_toml_that_loads_back(tmp_path: Path) -> None:
    cfg = tmp_path / "sub" / "c.toml"
    set_alias("odd name", ['mock/with "quotes" and \\ back'], cfg)
    set_alias("fast", ["groq/llama-3.3-70b-versatile", "mock/echo"], cfg)
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    data = tomllib.loads(cfg.read_text())
    assert data["aliases"] == {"odd name": ['mock/with "quotes" and \\ back'],
                               "fast": ["groq/llama-3.3-70b-versatile", "mock/echo"]}
    set_alias("fast", None, cfg)
    assert "fast" not in load(cfg).aliases
    with pytest.raises(ConfigurationError, match="no alias 'fast'"):
        set_alias("fast", None, cfg)


def test_dumps_round_trips_nested_tables() -> None:
    data = {"default_model": "x", "fallbacks": ["a/b"], "aliases": {"k": ["p/m"]},
            "providers": {"azure": {"api_version": "v1", "n": 3, "on": True, "f": 1.5}}}
    assert tomllib.loads(dumps(data)) == data


# --- models as clients ------------------------------------------------------------------


async def test_model_client_switches_provider() -> None:
    async with AsyncClient(aliases={"m": ["mock/a", "mock/b", "openai/gpt-4o-mini"]},
                           config=False, env={}, max_retries=0) as client:
        model = client.model("m")
        assert model.provider == "mock" and model.routes[0] == "mock/a"
        assert (await model.complete(MSG)).model == "a"
        with pytest.raises(MissingAPIKeyError, match="OPENAI_API_KEY"):
            model.set_provider("openai")  # not configured: refused, route unchanged
        with pytest.raises(ConfigurationError, match="no route on provider 'groq'"):
            model.set_provider("groq")
        assert model.targets()[0].model == "a"


async def test_model_client_pinned_provider_and_no_fallback() -> None:
    client = AsyncClient(aliases={"m": ["openrouter/x/m", "deepseek/m"]}, config=False,
                         env={"OPENROUTER_API_KEY": "k", "DEEPSEEK_API_KEY": "k"})
    model = client.model("m")
    assert [t.provider for t in model.targets()] == ["openrouter", "deepseek"]
    model.set_provider("deepseek")
    assert [t.provider for t in model.targets()] == ["deepseek", "openrouter"]
    call = model._call(MSG, fallbacks=["mock/z"])
    assert (call.target.provider, [t.name for t in call.fallbacks]) == (
        "deepseek", ["openrouter/x/m", "mock/z"])
    model.set_provider("deepseek", fallback=False)
    assert [t.provider for t in model.targets()] == ["deepseek"]
    model.set_provider(None)
    assert model.provider == "openrouter"
    model.set_provider(None, fallback=False)
    call = model._call(MSG)
    assert (call.target.provider, call.fallbacks) == ("openrouter", [])
    with pytest.raises(ConfigurationError, match="names provider 'mock'"):
        client.model("mock/x").set_provider("openai")


def test_sync_model_client_complete_and_stream() -> None:
    with Client(aliases={"m": ["mock/a", "mock/b"]}, config=False, max_retries=0) as client:
        model = client.model("m")
        client.mock.script(MockReply(status=500), MockReply("fell back"))
        assert model.complete(MSG).text == "fell back"
        model.set_provider("mock")
        with model.stream("one two") as stream:
            text = "".join(e.text for e in stream if isinstance(e, modelwire.TextDelta))
        assert text == "one two" and stream.response.model == "a"
        assert model.complete_text("x y").text == "x y"
    with pytest.raises(InvalidModelError):
        Client(config=False).model("nope")


def test_alias_error_through_fallback_stays_typed() -> None:
    with Client(aliases={"m": ["mock/a"]}, config=False, max_retries=0) as client:
        client.mock.script(MockReply(status=500))
        with pytest.raises(ServerError):
            client.complete("m", MSG)
        client.mock.script(MockReply(status=401))
        with pytest.raises(AuthenticationError):
            client.model("m").complete(MSG)


# --- the CLI ----------------------------------------------------------------------------


def test_cli_aliases_set_list_remove(tmp_path: Path) -> None:
    runner = CliRunner()
    cfg = str(tmp_path / "c.toml")
    r = runner.invoke(app, ["aliases", "set", "fast", "groq/llama-3.3-70b-versatile",
                            "mock/echo", "--config", cfg])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["aliases", "--json", "--config", cfg])
    rows = {row["alias"]: row for row in json.loads(r.stdout)}
    assert rows["fast"]["source"] == "config"
    assert rows["fast"]["usable"] == ["mock/echo"]  # groq has no key in tests
    assert rows["deepseek-chat"]["source"] == "built-in"
    r = runner.invoke(app, ["aliases", "--config", cfg])
    assert "mock/echo*" in r.stdout
    r = runner.invoke(app, ["aliases", "remove", "fast", "--config", cfg])
    assert r.exit_code == 0
    r = runner.invoke(app, ["aliases", "remove", "fast", "--config", cfg])
    assert r.exit_code == 2 and "error: ConfigurationError: no alias 'fast'" in r.stderr
    r = runner.invoke(app, ["aliases", "set", "a/b", "mock/x", "--config", cfg])
    assert r.exit_code == 2


def test_cli_chat_uses_an_alias_from_the_file(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    set_alias("echo", ["mock/echo"], cfg)
    monkeypatch.setenv("MODELWIRE_CONFIG", str(cfg))
    r = CliRunner().invoke(app, ["chat", "-m", "echo", "hi there"])
    assert r.exit_code == 0 and r.stdout.strip() == "hi there"


def test_a_local_server_named_in_a_route_counts_as_configured() -> None:
    client = AsyncClient(aliases={"m": ["openai/gpt-4o-mini", "ollama/llama3"]}, env={},
                         config=False)
    assert names(client.plan("m")) == ["ollama/llama3"]
    keyed = AsyncClient(aliases={"m": ["openai/gpt-4o-mini", "ollama/llama3"]},
                        env={"OPENAI_API_KEY": "k"}, config=False)
    assert names(keyed.plan("m")) == ["openai/gpt-4o-mini", "ollama/llama3"]
