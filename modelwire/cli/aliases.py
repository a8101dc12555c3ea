"""``modelwire aliases``: list model aliases and their routes; set or remove them.

``modelwire aliases`` lists every alias (client code aside: built-ins and the
user config file), marking which routes are usable now (``*``: the provider's
key is set, or it needs none). ``modelwire aliases set NAME ROUTE...`` and
``modelwire aliases remove NAME`` edit the user config file
(:mod:`modelwire.userconfig`; ``--config PATH`` or ``$MODELWIRE_CONFIG``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from . import render

aliases_app = typer.Typer(help="Model aliases: a name -> its id on each provider, in order.",
                          no_args_is_help=False)

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", help="The config file (default: $MODELWIRE_CONFIG or the user config dir).")]


def alias_rows(path: Path | None = None) -> list[dict[str, Any]]:
    """Every alias with its source, routes, and which routes are usable here."""
    from ..config import Settings
    from ..routes import BUILTIN_ALIASES, Routes, usable
    from ..userconfig import load, merge_into

    user = load(path)
    routes = Routes(user.aliases, BUILTIN_ALIASES)
    settings = Settings()
    merge_into(settings, user)  # keys kept in the file count as configured
    rows = []
    for name in routes.names():
        ids = routes.get(name) or ()
        rows.append({
            "alias": name,
            "source": "config" if name in user.aliases else "built-in",
            "routes": list(ids),
            "usable": [r for r in ids if _usable(settings, r, usable)],
        })
    return rows


def _usable(settings: Any, route: str, usable: Any) -> bool:
    from ..errors import UnknownProviderError
    try:
        return bool(usable(settings, route))
    except UnknownProviderError:
        return False


@aliases_app.callback(invoke_without_command=True)
def list_aliases(ctx: typer.Context, as_json: Annotated[bool, typer.Option(
        "--json", help="Print the aliases as JSON.")] = False,
        config: ConfigOpt = None) -> None:
    """List aliases (``*`` marks routes whose provider is configured)."""
    if ctx.invoked_subcommand is not None:
        return
    from ..errors import ModelwireError
    from .app import _fail, _print_json
    try:
        rows = alias_rows(config)
    except ModelwireError as e:
        _fail(e)
    if as_json:
        _print_json(rows)
        return
    table = [[r["alias"], r["source"], ", ".join(
        f"{x}*" if x in r["usable"] else x for x in r["routes"])] for r in rows]
    render.print_table("modelwire aliases (* = configured)", ["alias", "source", "routes"],
                       table)


@aliases_app.command("set")
def set_alias(
    name: Annotated[str, typer.Argument(help="The alias, e.g. deepseek-chat.")],
    routes: Annotated[list[str], typer.Argument(
        help="'<provider>/<model>' ids, first choice first.")],
    config: ConfigOpt = None,
) -> None:
    """Add or replace an alias in the user config file (rewritten whole: comments
    are not kept; a new file is created private, 0600)."""
    from ..errors import ModelwireError
    from ..userconfig import set_alias as write_alias
    from .app import _fail
    try:
        path = write_alias(name, list(routes), config)
    except ModelwireError as e:
        _fail(e)
    print(f"{name} -> {', '.join(routes)} (in {path})")


@aliases_app.command("remove")
def remove_alias(name: Annotated[str, typer.Argument(help="The alias to remove.")],
                 config: ConfigOpt = None) -> None:
    """Remove an alias from the user config file."""
    from ..errors import ModelwireError
    from ..userconfig import set_alias as write_alias
    from .app import _fail
    try:
        path = write_alias(name, None, config)
    except ModelwireError as e:
        _fail(e)
    print(f"removed {name} (from {path})")
