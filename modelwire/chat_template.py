"""Chat templates: chat messages -> one prompt, for endpoints that only complete text.

With ``provider_options={"vllm": {"completion_only": True, "chat_template": T}}``
(or those keys in ``ProviderSpec.options``) chat calls on that provider go to
``/completions``: the messages rendered by T, T's end-of-turn strings added to
``stop``. T is a built-in name (``chatml``, ``llama3``, ``mistral``, ``gemma``,
``phi3``, ``zephyr``: pure Python after each model's published template), a Jinja
template (Hugging Face format, rendered as transformers does; needs
``modelwire[templates]``), or the path of a ``tokenizer_config.json``, a
``.jinja`` file or a ``.gguf`` model. Optional keys: ``bos_token``/``eos_token``
(for a Jinja string), and ``server_adds_bos``: the server's tokenizer puts BOS
before every prompt, so a BOS the template writes first is dropped, not doubled.
It defaults to the file's own flag (a GGUF's ``tokenizer.ggml.add_bos_token``,
exactly as llama.cpp decides; a tokenizer_config's ``add_bos_token``), else False.
"""

from __future__ import annotations

import functools
import json
import os
import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from .errors import (
    ConfigurationError,
    InvalidMessageError,
    MissingDependencyError,
    UnsupportedFeatureError,
)
from .pipeline import Call
from .types import ImagePart, Message

Turns = list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class ChatTemplate:
    name: str
    render_turns: Callable[[Turns], str]
    stops: tuple[str, ...]
    bos_token: str = ""
    server_adds_bos: bool = False

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt for ``messages``, ending where the assistant's answer begins."""
        prompt = self.render_turns(plain_turns(messages))
        if self.server_adds_bos and self.bos_token and prompt.startswith(self.bos_token):
            prompt = prompt[len(self.bos_token):]
        return prompt


def plain_turns(messages: Sequence[Message]) -> Turns:
    """Role + text per message; anything a text prompt cannot carry is refused."""
    turns: Turns = []
    for i, m in enumerate(messages):
        if m.role == "tool" or m.tool_calls:
            raise UnsupportedFeatureError(
                f"messages[{i}] {'is a tool result' if m.role == 'tool' else 'has tool calls'}: "
                "a completion-only endpoint takes one text prompt, so tool calling is not "
                "available there (use a chat endpoint)")
        if not isinstance(m.content, str) and any(isinstance(p, ImagePart) for p in m.content):
            raise UnsupportedFeatureError(
                f"messages[{i}] has an image: a completion-only endpoint takes text only")
        turn = {"role": m.role, "content": m.text}
        if m.name:
            turn["name"] = m.name
        turns.append(turn)
    if not turns:
        raise InvalidMessageError("messages is empty: pass at least one message")
    return turns


# --- built-in templates ------------------------------------------------------

def _chatml(turns: Turns) -> str:
    body = "".join(f"<|im_start|>{t['role']}\n{t['content']}<|im_end|>\n" for t in turns)
    return body + "<|im_start|>assistant\n"


def _llama3(turns: Turns) -> str:  # Meta-Llama-3-8B-Instruct: contents are trimmed
    body = "".join(f"<|start_header_id|>{t['role']}<|end_header_id|>\n\n"
                   f"{t['content'].strip()}<|eot_id|>" for t in turns)
    return "<|begin_of_text|>" + body + "<|start_header_id|>assistant<|end_header_id|>\n\n"


def _take_turns(turns: Turns, name: str) -> tuple[str, Turns]:
    """(leading system text, the rest) for templates with no system role, whose
    published versions also demand strictly alternating user/assistant turns."""
    n = 0
    while n < len(turns) and turns[n]["role"] == "system":
        n += 1
    system, rest = "\n\n".join(t["content"] for t in turns[:n]), turns[n:]
    for j, t in enumerate(rest):
        want = "user" if j % 2 == 0 else "assistant"
        if t["role"] != want:
            raise InvalidMessageError(
                f"the {name} chat template needs system messages only at the start, then "
                f"user and assistant turns alternating from a user turn; messages[{n + j}] "
                f"is {t['role']!r} where {want!r} belongs")
    if not rest:
        raise InvalidMessageError(f"the {name} chat template needs a user message")
    return system, rest


def _mistral(turns: Turns) -> str:
    # Mistral-7B-Instruct-v0.1; the system text joins the first user turn (mistral-common v1)
    system, rest = _take_turns(turns, "mistral")
    out = ["<s>"]
    for j, t in enumerate(rest):
        if t["role"] == "user":
            text = f"{system}\n\n{t['content']}" if system and j == 0 else t["content"]
            out.append(f"[INST] {text} [/INST]")
        else:
            out.append(f"{t['content']}</s> ")
    return "".join(out)


def _gemma(turns: Turns) -> str:
    # gemma-2b-it / gemma-2; a system message is folded into the first user turn as Gemma 3 does
    system, rest = _take_turns(turns, "gemma")
    out = ["<bos>"]
    for j, t in enumerate(rest):
        role = "model" if t["role"] == "assistant" else "user"
        prefix = f"{system}\n\n" if system and j == 0 else ""
        out.append(f"<start_of_turn>{role}\n{prefix}{t['content'].strip()}<end_of_turn>\n")
    return "".join(out) + "<start_of_turn>model\n"


def _phi3(turns: Turns) -> str:  # Phi-3-mini-4k-instruct
    body = "".join(f"<|{t['role']}|>\n{t['content']}<|end|>\n" for t in turns)
    return "<s>" + body + "<|assistant|>\n"


def _zephyr(turns: Turns) -> str:  # zephyr-7b-beta
    return "".join(f"<|{t['role']}|>\n{t['content']}</s>\n" for t in turns) + "<|assistant|>\n"


# name -> (renderer, BOS it writes, stop strings)
BUILTINS: dict[str, tuple[Callable[[Turns], str], str, tuple[str, ...]]] = {
    "chatml": (_chatml, "", ("<|im_end|>",)),
    "llama3": (_llama3, "<|begin_of_text|>", ("<|eot_id|>",)),
    "mistral": (_mistral, "<s>", ("</s>",)),
    "gemma": (_gemma, "<bos>", ("<end_of_turn>",)),
    "phi3": (_phi3, "<s>", ("<|end|>", "<|endoftext|>")),
    "zephyr": (_zephyr, "", ("</s>",)),
}

# End-of-turn markers: when a Jinja template writes one, generation stops there too.
_TURN_ENDS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")


# --- Jinja templates (rendered the way transformers' apply_chat_template does) ---

class _TemplateRefused(Exception):
    pass


def _raise_exception(message: str) -> None:
    raise _TemplateRefused(message)


def _jinja(source: str, bos: str, eos: str) -> Callable[[Turns], str]:
    try:
        import jinja2
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        raise MissingDependencyError("a Jinja chat template", "templates", "jinja2") from None

    class Generation(jinja2.ext.Extension):
        # transformers' {% generation %} marks assistant text for training masks: keep its body
        tags = {"generation"}  # noqa: RUF012 - jinja2's own declaration

        def parse(self, parser: Any) -> Any:
            next(parser.stream)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = functools.partial(json.dumps, ensure_ascii=False)  # as transformers
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        template = env.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise ConfigurationError(f"the chat template is not valid Jinja: {e}") from None

    def render(turns: Turns) -> str:
        try:
            return template.render(messages=turns, add_generation_prompt=True, bos_token=bos,
                                   eos_token=eos, tools=None, documents=None)
        except _TemplateRefused as e:
            raise InvalidMessageError(f"the chat template refused these messages: {e}") from None
        except Exception as e:  # the template's own code failed (undefined name, sandbox, ...)
            raise ConfigurationError(
                f"the chat template failed to render: {type(e).__name__}: {e}") from None
    return render


# --- loading -----------------------------------------------------------------

def load_chat_template(value: str, *, bos_token: str | None = None, eos_token: str | None = None,
                       server_adds_bos: bool | None = None) -> ChatTemplate:
    """A built-in name, a Jinja template or a file path -> ChatTemplate (cached)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"chat_template must be a non-empty string, got {value!r:.80}")
    stamp = None
    if value not in BUILTINS and "{{" not in value and "{%" not in value:
        try:
            st = os.stat(os.path.expanduser(value))
            stamp = (st.st_mtime_ns, st.st_size)  # an edited file is read again
        except OSError:
            raise ConfigurationError(
                f"chat_template {value!r:.120} is not a built-in name "
                f"({', '.join(BUILTINS)}), a Jinja template, or an existing file "
                "(tokenizer_config.json, .jinja or .gguf)") from None
    return _load(value, stamp, bos_token, eos_token, server_adds_bos)


@functools.lru_cache(maxsize=32)
def _load(value: str, stamp: object, bos_token: str | None, eos_token: str | None,
          server_adds_bos: bool | None) -> ChatTemplate:
    if value in BUILTINS:
        render, bos, stops = BUILTINS[value]
        return ChatTemplate(value, render, stops, bos, bool(server_adds_bos))
    if stamp is None:
        source, name, bos, eos, adds = value, "jinja", "", "", False
    else:
        path = os.path.expanduser(value)
        source, bos, eos, adds = _read_template_file(path)
        name = os.path.basename(path)
    bos = bos if bos_token is None else bos_token
    eos = eos if eos_token is None else eos_token
    ends = ([eos] if eos else []) + [s for s in _TURN_ENDS if s in source and s != eos]
    adds = adds if server_adds_bos is None else server_adds_bos
    return ChatTemplate(name, _jinja(source, bos, eos), tuple(ends), bos, adds)


def _read_template_file(path: str) -> tuple[str, str, str, bool]:
    """(template source, BOS text, EOS text, tokenizer adds BOS itself) from a file."""
    if path.lower().endswith(".gguf"):
        return _from_gguf(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigurationError(f"cannot read the chat template file {path!r}: {e}") from None
    if not path.lower().endswith(".json"):
        return text, "", "", False  # a bare Jinja file (e.g. chat_template.jinja)
    try:
        config = json.loads(text)
    except ValueError as e:
        raise ConfigurationError(f"{path!r} is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise ConfigurationError(f"{path!r} is not a tokenizer_config.json (not an object)")
    source = config.get("chat_template")
    if isinstance(source, list):  # named templates: [{"name": ..., "template": ...}]
        named = {t.get("name"): t.get("template") for t in source if isinstance(t, dict)}
        source = named.get("default") or next(iter(named.values()), None)
    sibling = os.path.join(os.path.dirname(path), "chat_template.jinja")
    if not source and os.path.isfile(sibling):  # newer transformers save it beside the config
        source = _read_template_file(sibling)[0]
    if not isinstance(source, str) or not source:
        raise ConfigurationError(f"{path!r} has no chat_template; pass a built-in name or a "
                                 "Jinja template as chat_template instead")
    return (source, _token_text(config.get("bos_token")), _token_text(config.get("eos_token")),
            config.get("add_bos_token") is True)


def _token_text(token: Any) -> str:
    if isinstance(token, dict):  # a serialized AddedToken
        token = token.get("content")
    return token if isinstance(token, str) else ""


# --- GGUF metadata -------------------------------------------------------------

_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_GGUF_KEYS = ("tokenizer.chat_template", "tokenizer.ggml.tokens", "tokenizer.ggml.model",
              "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
              "tokenizer.ggml.add_bos_token")


def _from_gguf(path: str) -> tuple[str, str, str, bool]:
    md = read_gguf_metadata(path, _GGUF_KEYS)
    source = md.get("tokenizer.chat_template")
    if not isinstance(source, str) or not source:
        raise ConfigurationError(f"{path!r} has no tokenizer.chat_template; pass a built-in "
                                 "name or a Jinja template as chat_template instead")
    tokens = md.get("tokenizer.ggml.tokens") or []

    def text(key: str) -> str:
        i = md.get(key)
        return tokens[i] if isinstance(i, int) and 0 <= i < len(tokens) else ""
    # llama.cpp's default when the key is missing: SentencePiece ("llama") vocabularies add BOS
    adds = md.get("tokenizer.ggml.add_bos_token", md.get("tokenizer.ggml.model") == "llama")
    return (source, text("tokenizer.ggml.bos_token_id"), text("tokenizer.ggml.eos_token_id"),
            bool(adds))


def read_gguf_metadata(path: str, keys: Collection[str]) -> dict[str, Any]:
    """The values of ``keys`` in a GGUF (v2/v3) file's metadata (arrays: string ones only)."""
    try:
        with open(path, "rb") as f:
            return _read_gguf(f, path, set(keys))
    except OSError as e:
        raise ConfigurationError(f"cannot read {path!r}: {e.strerror or e}") from None
    except (EOFError, struct.error):
        raise ConfigurationError(f"{path!r} is not a valid GGUF file: its metadata is cut "
                                 "short or corrupt") from None


def _take(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _value(f: BinaryIO, kind: int, where: str) -> Any:
    if kind == _STRING:
        (n,) = struct.unpack("<Q", _take(f, 8))
        if n > 1 << 24:  # a corrupt length: never try to read gigabytes
            raise EOFError
        return _take(f, n).decode("utf-8", "replace")
    fmt = _GGUF_SCALARS.get(kind)
    if fmt is None:
        raise ConfigurationError(f"{where}: unsupported GGUF value type {kind}")
    return struct.unpack(fmt, _take(f, struct.calcsize(fmt)))[0]


def _read_gguf(f: BinaryIO, path: str, wanted: set[str]) -> dict[str, Any]:
    magic, version, _tensors, n_kv = struct.unpack("<4sIQQ", _take(f, 24))
    if magic != b"GGUF" or version < 2:
        raise ConfigurationError(f"{path!r} is not a GGUF file of version 2 or later")
    out: dict[str, Any] = {}
    for _ in range(n_kv):
        if len(out) == len(wanted):
            break  # the rest (and the tensors) are of no interest
        key = _value(f, _STRING, path)
        (kind,) = struct.unpack("<I", _take(f, 4))
        if kind != _ARRAY:
            value = _value(f, kind, f"{path!r} {key}")
        else:
            item, count = struct.unpack("<IQ", _take(f, 12))
            if item != _STRING and item in _GGUF_SCALARS:  # skip numeric arrays unread
                f.seek(count * struct.calcsize(_GGUF_SCALARS[item]), os.SEEK_CUR)
                continue
            value = [_value(f, item, f"{path!r} {key}") for _ in range(count)]
        if key in wanted:
            out[key] = value
    return out


# --- the codec hook ---------------------------------------------------------------

def template_for(provider: str, options: Mapping[str, Any]) -> ChatTemplate:
    """The chat template a completion-only provider's options name."""
    value = options.get("chat_template")
    if value is None:
        raise ConfigurationError(
            f"provider {provider!r} is completion_only, so chat calls need a chat template: "
            f"provider_options={{{provider!r}: {{'completion_only': True, 'chat_template': "
            f"...}}}} with a built-in name ({', '.join(BUILTINS)}), a Jinja template, or the "
            "path of the model's tokenizer_config.json or .gguf file")
    bos, eos, adds = (options.get(k) for k in ("bos_token", "eos_token", "server_adds_bos"))
    for key, v, kind in (("bos_token", bos, str), ("eos_token", eos, str),
                         ("server_adds_bos", adds, bool)):
        if v is not None and not isinstance(v, kind):
            raise ConfigurationError(f"provider_options[{provider!r}][{key!r}] must be a "
                                     f"{kind.__name__}, got {type(v).__name__}")
    return load_chat_template(value, bos_token=bos, eos_token=eos, server_adds_bos=adds)


def completion_only_request(call: Call,
                            target_options: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    """(prompt, stop strings to add) when a chat call goes to a completion-only
    target, else None. The stops returned are those ``call.stop`` lacks."""
    if call.mode != "chat" or not target_options.get("completion_only"):
        return None
    provider = call.target.provider
    if call.tools or call.tool_choice is not None:
        raise UnsupportedFeatureError(
            f"provider {provider!r} is completion_only: a text prompt cannot offer tools "
            "(use a chat endpoint for tool calling)")
    template = template_for(provider, target_options)
    prompt = template.render(call.messages)
    have = call.stop or ()
    return prompt, [s for s in template.stops if s not in have]
