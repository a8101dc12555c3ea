"""Opt-in DeprecationWarnings for the compatibility names.

The old names are supported, not deprecated: by default they warn about
nothing. A project that is migrating can turn the warnings on, with
``MODELWIRE_COMPAT_WARNINGS=1`` in the environment or
:func:`enable_deprecation_warnings`; each then points at docs/migration.md.
(Python hides DeprecationWarning outside ``__main__`` unless asked:
``python -W default::DeprecationWarning`` or pytest shows them.)
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

GUIDE = "docs/migration.md"
_enabled: bool | None = None  # None: follow the environment variable
_inside = threading.local()  # depth of compat objects building compat objects


def enable_deprecation_warnings(enabled: bool | None = True) -> None:
    """Turn the warnings on (True), off (False), or back to the environment (None)."""
    global _enabled
    _enabled = enabled


def warnings_enabled() -> bool:
    if _enabled is not None:
        return _enabled
    return os.environ.get("MODELWIRE_COMPAT_WARNINGS", "").lower() in ("1", "true", "yes", "on")


def deprecated(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``old`` has a modelwire equivalent ``new`` (only when opted in)."""
    if not getattr(_inside, "depth", 0) and warnings_enabled():
        warnings.warn(f"{old} is a compatibility name; the modelwire equivalent is {new} "
                      f"(see {GUIDE})", DeprecationWarning, stacklevel=stacklevel)


@contextmanager
def quiet() -> Iterator[None]:
    """Compat names used by other compat names warn once, for the caller's name only."""
    _inside.depth = getattr(_inside, "depth", 0) + 1
    try:
        yield
    finally:
        _inside.depth -= 1
