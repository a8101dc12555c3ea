"""Exact counts for local GGUF models: the llama.cpp tokenizer on the chat-template prompt."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from ..errors import MissingDependencyError, UnsupportedFeatureError
from ..types import Message, Tool

_lock = threading.Lock()


@lru_cache(maxsize=4)
def _vocab(path: str) -> Any:
    """A vocabulary-only llama.cpp model: loads the tokenizer, not the weights."""
    try:
        import llama_cpp
    except ImportError:
        raise MissingDependencyError("token counts for local models", "local",
                                     "llama-cpp-python") from None
    return llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)


def count_local(name: str, msgs: list[Message] | None, text: str | None,
                tools: list[Tool]) -> tuple[int, Any, str]:
    from .. import local_models
    from ..chat_template import load_chat_template

    if tools:
        raise UnsupportedFeatureError(
            "token counts with tools are not available for local models "
            "(their chat templates render tools differently); count the messages only")
    path = local_models.resolve(name)
    with _lock:  # llama.cpp objects are not thread-safe
        llm = _vocab(path)
        n = 0
        method = "llama.cpp tokenizer (GGUF vocabulary)"
        if text is not None:
            n += len(llm.tokenize(text.encode(), add_bos=False, special=False))
        if msgs is not None:
            template = load_chat_template(path)
            prompt = template.render(msgs)
            # the local transport feeds this prompt with the model's BOS handling
            n += len(llm.tokenize(prompt.encode(), add_bos=not prompt.startswith(
                template.bos_token or "\0"), special=True))
            method += " on the GGUF chat template"
    return n, "exact", method
