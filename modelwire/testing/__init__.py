"""Test helpers users get: a fault-injecting fake LLM provider server.

``from modelwire.testing import FaultServer, Fault`` -- see
:mod:`modelwire.testing.fault_server` for how to script faults.  The server
(and aiohttp) is imported only when one of these names is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .fault_server import Fault, FaultServer

__all__ = ["Fault", "FaultServer"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import fault_server

        return getattr(fault_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
