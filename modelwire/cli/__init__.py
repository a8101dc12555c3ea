"""The ``modelwire`` command-line program: chat, complete, providers, health.

Needs the ``cli`` extra (typer + rich). Without it ``main()`` says which pip
command to run and exits 1; nothing else here imports them at module level,
so ``import modelwire.cli`` always works.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

INSTALL_HINT = ("modelwire: the command-line program needs typer and rich: "
                "pip install 'modelwire[cli]'")


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``modelwire = modelwire.cli:main``)."""
    try:
        import rich  # noqa: F401
        import typer  # noqa: F401
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        raise SystemExit(1) from None
    from .app import app
    _tolerant_stdout()
    try:
        app(args=list(argv) if argv is not None else None, prog_name="modelwire")
    except KeyboardInterrupt:  # outside a command (argument parsing): still quiet
        raise SystemExit(130) from None


def _tolerant_stdout() -> None:
    """A stdout that cannot encode every character (LANG=C on an old system, a latin-1
    terminal, PYTHONIOENCODING=ascii) shows '?' for the ones it cannot, instead of
    ending the answer with a UnicodeEncodeError traceback. --json stays exact (escapes)."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None and getattr(sys.stdout, "errors", None) == "strict":
        reconfigure(errors="replace")
