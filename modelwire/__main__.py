"""``python -m modelwire``: the command-line program (same as ``modelwire``)."""

from .cli import main

main()
