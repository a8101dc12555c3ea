"""How modelwire sets up llama.cpp in a process: safe load parameters, quiet logs
that never touch file descriptors 1 and 2, and calls that never share a prompt cache.

Three facts about llama-cpp-python this module exists for:

* **Output.** With ``verbose=False`` llama-cpp-python silences llama.cpp by
  swapping the *process's* file descriptors 1 and 2 for ``/dev/null`` around
  model loading (``suppress_stdout_stderr``): every other thread's prints
  vanish meanwhile. We replace that context manager with a no-op and send
  llama.cpp's log lines to the ``modelwire.llama`` logger through its log
  callback instead (DEBUG, or WARNING/ERROR for its warnings and errors; shown
  only where the application configures logging).
* **Reproducibility.** ``Llama.generate`` reuses the KV cache of the previous
  call when prompts share a prefix, and then re-evaluates only the last
  prompt token. Logits from that one-token batch differ from those of the
  whole-prompt batch (by up to ~0.5 here for SmolLM2 Q4_1: quantized matmul
  kernels differ by batch size), so the first call in a process and every
  later one could pick different tokens at temperature 0. :func:`fresh_context`
  resets the context before each call: every call evaluates its whole prompt,
  so the same request gives the same answer in any order and any process.
* **AMX.** See :func:`model_params`.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("modelwire.llama")
log.addHandler(logging.NullHandler())  # printed only where the application configures logging

# ggml_log_level today: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continues the
# last line). llama-cpp-python's own table predates that order. llama.cpp's INFO is a
# dump of model metadata: DEBUG here.
_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING,
           4: logging.ERROR}
_setup_lock = threading.Lock()
_callback: Any = None  # the ctypes callback must outlive every llama.cpp call: keep it here


class _NoRedirect:
    """Stands in for llama-cpp-python's ``suppress_stdout_stderr``: redirects nothing."""

    def __init__(self, disable: bool = True) -> None:
        pass

    def __enter__(self) -> _NoRedirect:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def quiet_llama() -> None:
    """Route llama.cpp's logs to logging and stop llama-cpp-python's fd swapping.
    Idempotent; call before loading a model."""
    global _callback
    with _setup_lock:
        if _callback is not None:
            return
        ll: Any = importlib.import_module("llama_cpp")
        for name in ("llama_cpp.llama", "llama_cpp._internals", "llama_cpp.llama_chat_format"):
            module: Any = importlib.import_module(name)
            if hasattr(module, "suppress_stdout_stderr"):
                module.suppress_stdout_stderr = _NoRedirect
        last = [logging.DEBUG]

        def on_log(level: int, text: bytes, user_data: Any) -> None:
            lvl = last[0] if level == 5 else _LEVELS.get(level, logging.DEBUG)
            last[0] = lvl
            if log.isEnabledFor(lvl):
                log.log(lvl, "%s", text.decode("utf-8", "replace").rstrip("\n"))

        _callback = ll.llama_log_callback(on_log)
        ll.llama_log_set(_callback, ctypes.c_void_p(0))


def fresh_context(llm: Any) -> None:
    """Forget the previous call's tokens so the next one evaluates its whole prompt."""
    llm.reset()


@contextlib.contextmanager
def model_params(extra_buffers: bool | None = None) -> Iterator[None]:
    """While active, llama.cpp loads models without "extra buffer types" (weight
    repacking) when ``extra_buffers`` is False, or None on a CPU that advertises
    AMX: virtual machines that advertise AMX without enabling it crash in
    ggml's AMX kernels (a general protection fault at ``ldtilecfg``)."""
    ll: Any = importlib.import_module("llama_cpp.llama_cpp")  # what llama.py calls through
    if extra_buffers is None:
        extra_buffers = not _advertises_amx()
    defaults = ll.llama_model_default_params
    if not extra_buffers:
        def without_extra() -> Any:
            params = defaults()
            if hasattr(params, "use_extra_bufts"):
                params.use_extra_bufts = False
            return params
        ll.llama_model_default_params = without_extra
    try:
        yield
    finally:
        ll.llama_model_default_params = defaults


def _advertises_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return "amx_tile" in f.read()
    except OSError:
        return False
