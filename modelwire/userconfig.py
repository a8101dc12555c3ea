"""The user's config file: model aliases, the default model, fallbacks, provider options.

Where: ``$MODELWIRE_CONFIG`` if set, else ``config.toml`` in the platform's user
config directory (``$XDG_CONFIG_HOME/modelwire`` or ``~/.config/modelwire`` on
Linux and other Unixes, ``~/Library/Application Support/modelwire`` on macOS,
``%APPDATA%\\modelwire`` on Windows). A missing file is an empty config.

::

    default_model = "deepseek-chat"          # an alias or '<provider>/<model>'
    fallbacks = ["openai/gpt-4o-mini"]       # tried after the model's own routes

    [aliases]                                # alias -> routes, first configured wins
    deepseek-chat = ["deepseek/deepseek-chat", "openrouter/deepseek/deepseek-chat"]
    fast = "groq/llama-3.3-70b-versatile"

    [providers.azure]                        # provider options (as provider_options=)
    api_version = "v1"
    base_url = "https://my-resource.openai.azure.com"   # as base_urls= / <P>_BASE_URL

Keys do not belong here (use the environment). If a ``[providers.X]`` table
holds ``api_key`` anyway, the file must not be readable by group or others:
otherwise loading it raises ConfigurationError naming the ``chmod`` to run.
Precedence everywhere: client arguments > environment > this file > built-ins.

The file is read lazily (on a client's first call, never at import or
construction) and once per change: the parsed result is cached by path,
modification time and size.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .config import Settings

ENV_VAR = "MODELWIRE_CONFIG"
_TOP_LEVEL = ("default_model", "fallbacks", "aliases", "providers")


@dataclass(frozen=True, slots=True)
class UserConfig:
    """The parsed file. ``api_keys`` only when the file holds any (and is private)."""

    path: Path | None = None
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    default_model: str | None = None
    fallbacks: tuple[str, ...] = ()
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    api_keys: dict[str, str] = field(default_factory=dict, repr=False)
    base_urls: dict[str, str] = field(default_factory=dict, repr=False)  # may embed keys


EMPTY = UserConfig()
_cache: dict[Path, tuple[tuple[int, int], UserConfig]] = {}


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the user's config file lives (it may not exist)."""
    env = os.environ if env is None else env
    if override := env.get(ENV_VAR):
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(env.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = env.get("XDG_CONFIG_HOME")
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "modelwire" / "config.toml"


def load(path: Path | None = None) -> UserConfig:
    """Read and validate the file (cached until it changes). Missing: an empty config."""
    path = config_path() if path is None else path
    try:
        st = path.stat()
    except FileNotFoundError:
        return EMPTY
    except OSError as e:
        raise ConfigurationError(f"cannot read the modelwire config file {path}: {e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise _is_a_directory(path)
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _cache.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    config = parse(read_raw(path), path, mode=st.st_mode)
    _cache[path] = (stamp, config)
    return config


def merge_into(settings: Settings, user: UserConfig) -> None:
    """Fold the file's provider options and keys under what ``settings`` already has
    (arguments and, for keys, the environment win)."""
    if user.providers:
        settings.options = {n: {**user.providers.get(n, {}), **settings.options.get(n, {})}
                            for n in {*user.providers, *settings.options}}
    if user.api_keys or user.base_urls:
        from .registry import get_spec
        missing = {n: k for n, k in user.api_keys.items()
                   if settings.api_key(get_spec(n)) is None}
        settings.api_keys = {**missing, **settings.api_keys}
        unset = {n: u for n, u in user.base_urls.items()
                 if n not in settings.base_urls
                 and not any(settings.env.get(v) for v in get_spec(n).base_url_env)}
        settings.base_urls = {**unset, **settings.base_urls}


def read_raw(path: Path) -> dict[str, Any]:
    """The file as a dict (missing: empty); a syntax error is a ConfigurationError."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise _is_a_directory(path) from None
    except OSError as e:  # unreadable (permissions), a device, ...
        raise ConfigurationError(
            f"cannot read the modelwire config file {path}: {e.strerror or e} (fix its "
            f"permissions, or point ${ENV_VAR} at a readable file)") from None
    except UnicodeDecodeError as e:
        raise ConfigurationError(
            f"the modelwire config file {path} is not valid TOML: it is not UTF-8 text "
            f"(byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigurationError(f"the modelwire config file {path} is not valid TOML: {e}"
                                 ) from None


def _is_a_directory(path: Path) -> ConfigurationError:
    return ConfigurationError(
        f"the modelwire config file {path} is a directory: point ${ENV_VAR} at a file "
        f"(e.g. {path / 'config.toml'}), or unset it")


def parse(data: Mapping[str, Any], path: Path | None = None, *, mode: int = 0o600) -> UserConfig:
    """Validate the parsed TOML; every mistake is a ConfigurationError naming the file."""
    where = f"modelwire config file {path}" if path else "modelwire config"
    unknown = sorted(set(data) - set(_TOP_LEVEL))
    if unknown:
        raise ConfigurationError(f"{where}: unknown setting(s) {', '.join(unknown)}; "
                                 f"allowed: {', '.join(_TOP_LEVEL)}")
    default = data.get("default_model")
    if default is not None and not isinstance(default, str):
        raise ConfigurationError(f"{where}: default_model must be a string, got {default!r}")
    fallbacks = _string_list(data.get("fallbacks", []), f"{where}: fallbacks")
    raw_aliases = data.get("aliases", {})
    if not isinstance(raw_aliases, Mapping):
        raise ConfigurationError(f"{where}: [aliases] must be a table")
    aliases = {str(k): check_routes(k, v, where, known=raw_aliases)
               for k, v in raw_aliases.items()}
    for alias, routes in aliases.items():
        for route in routes:
            _known_provider(route.partition("/")[0], where,
                            f"route {route!r} of alias {alias!r}")
    raw_providers = data.get("providers", {})
    if not isinstance(raw_providers, Mapping) or not all(
            isinstance(v, Mapping) for v in raw_providers.values()):
        raise ConfigurationError(f"{where}: [providers.<name>] entries must be tables")
    providers: dict[str, dict[str, Any]] = {}
    keys: dict[str, str] = {}
    urls: dict[str, str] = {}
    for name, table in raw_providers.items():
        _known_provider(name, where, f"[providers.{name}]")
        opts = dict(table)
        for field_name, into in (("api_key", keys), ("base_url", urls)):
            value = opts.pop(field_name, None)
            if value is None:
                continue
            if not isinstance(value, str) or not value:
                raise ConfigurationError(
                    f"{where}: providers.{name}.{field_name} must be a non-empty string")
            into[name] = value
        providers[name] = opts
    if keys and os.name == "posix" and stat.S_IMODE(mode) & 0o077:
        raise ConfigurationError(
            f"{where} holds API keys but is readable by group or others "
            f"(mode {stat.S_IMODE(mode):o}): run `chmod 600 {path}`, or move the keys "
            "to environment variables")
    return UserConfig(path, aliases, default, fallbacks, providers, keys, urls)


def _known_provider(name: str, where: str, what: str) -> None:
    from .errors import UnknownProviderError
    from .registry import get_spec
    try:
        get_spec(name)
    except UnknownProviderError as e:
        raise ConfigurationError(f"{where}: {what}: {e}") from None


def check_routes(alias: Any, routes: Any, where: str = "aliases",
                 known: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """An alias name (no slash) and its routes ('<provider>/<model>' strings, in order)."""
    if not isinstance(alias, str) or not alias or "/" in alias or alias != alias.strip():
        raise ConfigurationError(
            f"{where}: alias name {alias!r} must be a non-empty name without '/' "
            "(ids with a slash already name a provider)")
    if isinstance(routes, str):
        routes = [routes]
    items = _string_list(routes, f"{where}: alias {alias!r}")
    if not items:
        raise ConfigurationError(f"{where}: alias {alias!r} has no routes")
    for r in items:
        provider, _, model = r.partition("/")
        if not provider or not model:
            hint = (f" (routes are model ids; {r!r} is another alias: give {alias!r} its "
                    "routes instead)" if known is not None and r in known else "")
            raise ConfigurationError(
                f"{where}: route {r!r} of alias {alias!r} must look like "
                f"'<provider>/<model>'{hint}")
    return items


def _string_list(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(x, str) for x in value):
        raise ConfigurationError(f"{what} must be a list of strings, got {value!r}")
    return tuple(value)


# --- writing (``modelwire aliases set``) -------------------------------------

def set_alias(alias: str, routes: list[str] | None, path: Path | None = None) -> Path:
    """Add, replace (routes) or remove (None) one alias in the file; returns its path.

    The file is rewritten whole (comments are not kept) through a temporary file
    and a rename, under a lock (``<file>.lock``) so concurrent writers each keep
    the other's change; a new file is created private (0600), an existing one
    keeps its mode. Routes must name known providers.
    """
    path = config_path() if path is None else path
    if path.is_symlink():  # a dotfiles link: write its target, keep the link
        path = path.resolve()
    with _locked(path):  # two writers at once: each sees the other's alias
        data = read_raw(path)
        parse(data, path)  # refuse to rewrite a file that would not load
        aliases = dict(data.get("aliases", {}))
        if routes is None:
            if alias not in aliases:
                raise ConfigurationError(f"no alias {alias!r} in {path}")
            del aliases[alias]
        else:
            aliases[alias] = list(check_routes(alias, routes))
        data["aliases"] = aliases
        parse(data, path)  # nor write one that would not (e.g. a route to no provider)
        write(path, data)
    return path


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``<path>.lock`` (POSIX; elsewhere the atomic rename alone)."""
    if path.is_dir():
        raise _is_a_directory(path)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def write(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o600
    import tempfile  # lazily: only the CLI writes

    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dumps(data))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def dumps(data: Mapping[str, Any]) -> str:
    """TOML for the shapes this file holds: scalars, lists of scalars, nested tables."""
    lines: list[str] = []
    _table(lines, data, [])
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(lines: list[str], data: Mapping[str, Any], prefix: list[str]) -> None:
    tables = [(k, v) for k, v in data.items() if isinstance(v, Mapping)]
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, Mapping)]
    if prefix and (scalars or not tables):
        lines.extend(["", f"[{'.'.join(_key(p) for p in prefix)}]"])
    for k, v in scalars:
        lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in tables:
        _table(lines, v, [*prefix, k])


def _key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k, ensure_ascii=False)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):  # JSON's escapes are all valid in a TOML basic string
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise ConfigurationError(f"cannot write {type(v).__name__} values to the config file")
