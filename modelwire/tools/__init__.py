"""Tools from plain Python functions, and the loop that runs them.

* :func:`tool` / ``Tool.from_function(fn)``: a :class:`~modelwire.types.Tool`
  whose JSON Schema comes from the type hints (pydantic) and whose text comes
  from the docstring (docstring-parser). Both libraries are imported only when
  a tool is built, so ``import modelwire`` stays lean.
* ``AsyncClient.run_tools`` / ``stream_tools`` (:mod:`.loop`): call the model,
  run the tools it asks for, send the results back, repeat.

This package's ``__init__`` imports nothing heavy: codecs import
:mod:`.jsonschema` (pure dict code) from here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..types import tool

if TYPE_CHECKING:
    from .loop import ModelStep, ToolResultEvent, ToolRunResult, ToolStep, ToolStream
    from .schema import ArgumentsError, FunctionTool

__all__ = ["ArgumentsError", "FunctionTool", "ModelStep", "ToolResultEvent", "ToolRunResult",
           "ToolStep", "ToolStream", "tool"]
_LAZY = {"ArgumentsError": "schema", "FunctionTool": "schema", "ModelStep": "loop",
         "ToolResultEvent": "loop", "ToolRunResult": "loop", "ToolStep": "loop",
         "ToolStream": "loop"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


