"""``python -m modelwire.cli``."""

from . import main

main()
