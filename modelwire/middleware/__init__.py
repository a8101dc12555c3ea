"""Middleware: retry, fallback, breaker, rate limits. ``default_middleware`` builds the chain."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..client import AsyncClient
    from ..pipeline import Middleware


def default_middleware(client: AsyncClient, **options: Any) -> list[Middleware]:
    """The chain a client gets when it passes no ``middleware=``."""
    if options:
        raise TypeError(f"unexpected client options: {', '.join(sorted(options))}")
    return []
