"""What the CLI prints besides model output: provider rows, health reports, tables.

Never prints a key: key columns say only whether one is set and in which
variable, and base URLs are masked (query values and userinfo that look like
secrets, and any configured key wherever it appears).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_NAMES = ("key", "token", "secret", "sig", "password", "passwd", "auth", "credential")
_KEYLIKE = re.compile(
    r"^(sk|pk|rk|gsk|xai|sk-ant|sk-or|AIza)[-_A-Za-z0-9]{6,}$|^[A-Za-z0-9_\-.]{32,}$"
)


def mask_url(url: str, secrets: Iterable[str] = ()) -> str:
    """``url`` with secret-looking parts replaced by ``***``."""
    for s in secrets:
        if s and len(s) >= 8:  # shorter "keys" would mangle ordinary URL text
            url = url.replace(s, MASK)
    try:
        parts = urlsplit(url)
    except ValueError:
        return url if not _KEYLIKE.match(url) else MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        masked = [(k, MASK if _secret(k, v) else v) for k, v in pairs]
        if masked != pairs:
            query = urlencode(masked, safe="*")
    path = "/".join(MASK if _KEYLIKE.match(seg) else seg for seg in parts.path.split("/"))
    if (netloc, query, path) == (parts.netloc, parts.query, parts.path):
        return url
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def _secret(name: str, value: str) -> bool:
    lowered = name.lower()
    return any(s in lowered for s in _SECRET_NAMES) or bool(_KEYLIKE.match(value))


def _wire(codec: str, transport: str) -> str:
    module = codec.partition(":")[0].rsplit(".", 1)[-1].replace("_", "-")
    return module if transport == "http" else f"{module} via {transport}"


def provider_rows(env: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One dict per registered provider, safe to print."""
    from ..config import Settings
    from ..registry import all_specs

    settings = Settings() if env is None else Settings(env=env)
    specs = all_specs()
    secrets = [k for k in (settings.api_key(s) for s in specs) if k]
    rows = []
    for spec in specs:
        key_var = next((v for v in spec.key_env if settings.env.get(v)), None)
        base = settings.base_url(spec)
        rows.append({
            "name": spec.name,
            "key_set": key_var is not None,
            "key_env": key_var or (spec.key_env[0] if spec.key_env else None),
            "requires_key": spec.requires_key,
            "base_url": mask_url(base, secrets) if base else None,
            "base_url_env": list(spec.base_url_env),
            "default_model": spec.default_model,
            "wire": _wire(spec.codec, spec.transport),
        })
    return rows


def key_cell(row: Mapping[str, Any]) -> str:
    """``set`` / ``missing`` and, on a second line, the variable."""
    if row["key_set"]:
        return f"set\n{row['key_env']}"
    if not row["requires_key"]:
        return "not needed"
    return f"missing\n{row['key_env']}" if row["key_env"] else "missing"


PROVIDER_COLUMNS = ["provider", "key", "base URL\ndefault model · wire"]


def provider_table_rows(rows: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Three columns, two lines a row: fits 80 columns (``--json`` has every field)."""
    out = []
    for r in rows:
        base = r["base_url"] or f"(set {' or '.join(r['base_url_env']) or 'a base URL'})"
        out.append([r["name"], key_cell(r), f"{base}\n{r['default_model'] or '-'} · {r['wire']}"])
    return out


def report_dict(report: Any) -> dict[str, Any]:
    """A health report as a plain dict, whatever type health_check returned."""
    if isinstance(report, Mapping):
        return dict(report)
    to_dict = getattr(report, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return dataclasses.asdict(report)
    return {k: v for k, v in vars(report).items() if not k.startswith("_")}


def _yes_no(value: Any) -> str:
    return "-" if value is None else "yes" if value else "no"


def health_table_rows(reports: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    out = []
    for r in reports:
        latency = r.get("latency")
        out.append([
            str(r.get("provider", "?")),
            "not needed" if not r.get("key_present") and r.get("key_required") is False
            else _yes_no(r.get("key_present")),
            _yes_no(r.get("reachable")),
            f"{latency * 1000:.0f} ms" if isinstance(latency, (int, float)) else "-",
            str(r.get("breaker") or "-"), _one_line(str(r.get("error") or "")) or "-",
        ])
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A rich table on stdout, within the terminal's width; when piped, within
    ``$COLUMNS`` or 80 columns."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=sys.stdout)
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for i, name in enumerate(columns):
        table.add_column(name, no_wrap=i < 2, overflow="fold")  # the last ones fold
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # literal text, never rich markup
    console.print(table)
