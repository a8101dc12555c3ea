"""Chat templates for completion-only endpoints (modelwire.chat_template).

The built-in templates are checked against the models' published Jinja
templates (copied below from their tokenizer_config.json files), rendered by a
plain jinja2 environment set up as transformers sets it up; the GGUF path is
checked against llama.cpp's own formatter and a real llama.cpp server.
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_support import ALIAS, LlamaServer, llama_server, smollm2_path  # noqa: F401

from modelwire import AsyncClient
from modelwire.chat_template import (
    BUILTINS,
    completion_only_request,
    load_chat_template,
    read_gguf_metadata,
)
from modelwire.config import Settings
from modelwire.errors import (
    ConfigurationError,
    InvalidMessageError,
    MissingDependencyError,
    UnsupportedFeatureError,
)
from modelwire.pipeline import Call
from modelwire.registry import OPENAI, ProviderSpec
from modelwire.response import TextDelta
from modelwire.types import ImagePart, Message, TextPart, Tool, to_messages

# --- the published templates -----------------------------------------------------

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
          "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
          "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] "
          "| trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content "
          "%}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
MISTRAL = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
           "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
           "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
           "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
           "'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception("
           "'Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")
GEMMA = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System "
         "role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] "
         "== 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must "
         "alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == "
         "'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
         "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + "
         "'<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}"
         "{{'<start_of_turn>model\n'}}{% endif %}")
GEMMA3 = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""
PHI3 = ("{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + "
        "message['content'] + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")
ZEPHYR = ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
          "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n"
          "{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == "
          "'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
          "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n"
          "{% endif %}\n{% endfor %}")

# name -> (published template, its bos_token, its eos_token, takes a system message)
PUBLISHED = {
    "chatml": (CHATML, "", "<|im_end|>", True),
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>", True),
    "mistral": (MISTRAL, "<s>", "</s>", False),
    "gemma": (GEMMA, "<bos>", "<eos>", False),
    "phi3": (PHI3, "<s>", "<|endoftext|>", True),
    "zephyr": (ZEPHYR, "", "</s>", True),
}
CHAT = [
    {"role": "user", "content": "Hello, how are you?"},
    {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
    {"role": "user", "content": "  I'd like to show off how chat templating works!\n"},
]
SYSTEM = {"role": "system", "content": "You are a friendly chatbot who talks like a pirate"}


def reference(template: str, messages: list[dict[str, str]], bos: str = "", eos: str = "") -> str:
    """Render as transformers' apply_chat_template(add_generation_prompt=True) does."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=True,
                                            bos_token=bos, eos_token=eos)


def call_for(messages: Any, options: dict[str, Any], provider: str = "vllm",
             **kw: Any) -> Call:
    target = Settings(options={provider: options}).resolve(f"{provider}/m")
    return Call(messages=[] if messages is None else to_messages(messages), target=target, **kw)


def hook(messages: Any, **options: Any) -> tuple[str, list[str]] | None:
    call = call_for(messages, options)
    return completion_only_request(call, call.target.options)


# --- built-in templates ----------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_builtins_render_as_the_published_templates(name: str) -> None:
    source, bos, eos, takes_system = PUBLISHED[name]
    chats = [CHAT, [CHAT[0]]] + ([[SYSTEM, *CHAT]] if takes_system else [])
    for chat in chats:
        got = load_chat_template(name).render(to_messages(chat))
        assert got == reference(source, chat, bos, eos), chat


@pytest.mark.parametrize("name", ["gemma", "mistral"])
def test_a_system_message_joins_the_first_user_turn(name: str) -> None:
    # their published templates refuse a system role; Gemma 3's (and mistral-common) fold it in
    template = load_chat_template(name)
    folded = [{"role": "user", "content": SYSTEM["content"] + "\n\n" + CHAT[0]["content"]},
              *CHAT[1:]]
    assert template.render(to_messages([SYSTEM, *CHAT])) == template.render(to_messages(folded))
    if name == "gemma":
        assert template.render(to_messages([SYSTEM, *CHAT])) == \
            reference(GEMMA3, [SYSTEM, *CHAT], "<bos>", "<eos>")


@pytest.mark.parametrize("name", ["gemma", "mistral"])
def test_turns_out_of_order_are_refused_as_the_template_does(name: str) -> None:
    bad = [CHAT[0], CHAT[0]]
    with pytest.raises(ValueError, match="alternate"):
        reference(PUBLISHED[name][0], bad)
    with pytest.raises(InvalidMessageError, match=r"messages\[1\] is 'user'"):
        load_chat_template(name).render(to_messages(bad))
    with pytest.raises(InvalidMessageError, match="needs a user message"):
        load_chat_template(name).render(to_messages([SYSTEM]))


def test_builtin_stops_end_the_assistant_turn() -> None:
    # each template's end-of-turn text follows an assistant message in the rendered prompt
    for name in BUILTINS:
        template = load_chat_template(name)
        prompt = template.render(to_messages(CHAT))
        answer = CHAT[1]["content"]
        after = prompt[prompt.index(answer) + len(answer):]
        assert any(after.startswith(s) for s in template.stops), (name, after[:20])


# --- the codec hook ---------------------------------------------------------------

def test_not_completion_only_is_left_alone() -> None:
    assert hook(CHAT) is None
    assert hook(CHAT, completion_only=False, chat_template="chatml") is None
    text = call_for(None, {"completion_only": True, "chat_template": "chatml"},
                    mode="text", prompt="Once upon")
    assert completion_only_request(text, text.target.options) is None


def test_hook_returns_prompt_and_the_missing_stops() -> None:
    prompt, stops = hook([SYSTEM, *CHAT], completion_only=True, chat_template="chatml") or ("", [])
    assert prompt == reference(CHATML, [SYSTEM, *CHAT]) and stops == ["<|im_end|>"]
    call = call_for(CHAT, {"completion_only": True, "chat_template": "phi3"},
                    stop=["<|end|>", "###"])
    assert completion_only_request(call, call.target.options) == (
        load_chat_template("phi3").render(call.messages), ["<|endoftext|>"])


def test_options_can_come_from_the_provider_row() -> None:
    spec = ProviderSpec("tgi", OPENAI, "http://127.0.0.1:9/v1", requires_key=False,
                        options={"completion_only": True, "chat_template": "zephyr"})
    options = Settings().provider_options(spec)
    call = call_for(CHAT, {})
    result = completion_only_request(call, options)
    assert result == (reference(ZEPHYR, CHAT, eos="</s>"), ["</s>"])


def test_completion_only_without_a_template_names_the_option() -> None:
    with pytest.raises(ConfigurationError, match=r"'chat_template'") as e:
        hook(CHAT, completion_only=True)
    assert "provider_options={'vllm'" in str(e.value) and "chatml" in str(e.value)


@pytest.mark.parametrize(("options", "match"), [
    ({"chat_template": "no-such-template"}, "not a built-in name"),
    ({"chat_template": 3}, "non-empty string"),
    ({"chat_template": "chatml", "server_adds_bos": "yes"}, "must be a bool"),
    ({"chat_template": "{{ x }}", "eos_token": 2}, "must be a str"),
])
def test_bad_options_are_configuration_errors(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        hook(CHAT, completion_only=True, **options)


@pytest.mark.parametrize(("messages", "kw", "match"), [
    ([CHAT[0], {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "function": {"name": "f", "arguments": "{}"}}]}],
     {}, "has tool calls"),
    ([CHAT[0], {"role": "tool", "tool_call_id": "c1", "content": "42"}], {}, "tool result"),
    ([Message("user", [TextPart("look"), ImagePart("data:image/png;base64,AA==")])], {},
     "has an image"),
    ([CHAT[0]], {"tools": [Tool("f")]}, "cannot offer tools"),
    ([CHAT[0]], {"tool_choice": "auto"}, "cannot offer tools"),
])
def test_what_a_text_prompt_cannot_carry_is_unsupported(
        messages: list[Any], kw: dict[str, Any], match: str) -> None:
    call = call_for(messages, {"completion_only": True, "chat_template": "chatml"}, **kw)
    with pytest.raises(UnsupportedFeatureError, match=match):
        completion_only_request(call, call.target.options)


# --- Jinja templates ---------------------------------------------------------------

def test_a_jinja_string_renders_with_the_given_tokens() -> None:
    opts = {"completion_only": True, "chat_template": ZEPHYR, "eos_token": "</s>"}
    prompt, stops = hook([SYSTEM, *CHAT], **opts) or ("", [])
    assert prompt == load_chat_template("zephyr").render(to_messages([SYSTEM, *CHAT]))
    assert stops == ["</s>"]
    # no eos given: the end-of-turn marker the template writes is the stop
    assert hook(CHAT, completion_only=True, chat_template=CHATML) == (
        reference(CHATML, CHAT), ["<|im_end|>"])


def test_jinja_has_what_transformers_gives_templates() -> None:
    source = ("{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}"
              "{% generation %}{{ m | tojson }}{% endgeneration %}{% endfor %}"
              "[{{ strftime_now('%Y') | length }}]")
    prompt, _ = hook([{"role": "user", "content": "héllo"}, CHAT[0]],
                     completion_only=True, chat_template=source) or ("", [])
    assert prompt == '{"role": "user", "content": "héllo"}[4]'


def test_jinja_failures_are_typed() -> None:
    with pytest.raises(InvalidMessageError, match="refused these messages: no system"):
        hook([SYSTEM], completion_only=True,
             chat_template="{{ raise_exception('no system') }}")
    with pytest.raises(ConfigurationError, match="not valid Jinja"):
        hook(CHAT, completion_only=True, chat_template="{% for m in messages %}")
    # the sandbox: a template may not change the messages
    with pytest.raises(ConfigurationError, match="failed to render"):
        hook(CHAT, completion_only=True,
             chat_template="{{ messages.append(1) }}{{ messages | length }}")


def test_missing_jinja2_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'modelwire\[templates\]'"):
        hook(CHAT, completion_only=True, chat_template="{{ 'only without jinja2' }}")
    assert hook(CHAT, completion_only=True, chat_template="chatml")  # built-ins need none


# --- template files ------------------------------------------------------------------

def write_config(path: Path, **config: Any) -> str:
    path.write_text(json.dumps(config))
    return str(path)


def test_tokenizer_config_json(tmp_path: Path) -> None:
    path = write_config(tmp_path / "tokenizer_config.json", chat_template=LLAMA3,
                        bos_token={"content": "<|begin_of_text|>", "lstrip": False},
                        eos_token="<|eot_id|>")
    prompt, stops = hook(CHAT, completion_only=True, chat_template=path) or ("", [])
    assert prompt == reference(LLAMA3, CHAT, "<|begin_of_text|>", "<|eot_id|>")
    assert prompt == load_chat_template("llama3").render(to_messages(CHAT))
    assert stops == ["<|eot_id|>"]


def test_a_tokenizer_that_adds_bos_gets_no_second_one(tmp_path: Path) -> None:
    path = write_config(tmp_path / "tokenizer_config.json", chat_template=MISTRAL,
                        bos_token="<s>", eos_token="</s>", add_bos_token=True)
    full = reference(MISTRAL, CHAT, "<s>", "</s>")
    assert hook(CHAT, completion_only=True, chat_template=path) == (full[3:], ["</s>"])
    assert hook(CHAT, completion_only=True, chat_template=path,
                server_adds_bos=False) == (full, ["</s>"])
    assert hook(CHAT, completion_only=True, chat_template="mistral",
                server_adds_bos=True) == (full[3:], ["</s>"])


def test_named_templates_and_a_separate_jinja_file(tmp_path: Path) -> None:
    path = write_config(tmp_path / "tokenizer_config.json", eos_token="</s>", chat_template=[
        {"name": "tool_use", "template": "{{ 'tools' }}"},
        {"name": "default", "template": ZEPHYR}])
    assert hook(CHAT, completion_only=True, chat_template=path) == (
        reference(ZEPHYR, CHAT, eos="</s>"), ["</s>"])
    (tmp_path / "chat_template.jinja").write_text(PHI3)
    path = write_config(tmp_path / "tokenizer_config.json", bos_token="<s>",
                        eos_token="<|endoftext|>")
    assert hook(CHAT, completion_only=True, chat_template=path) == (
        reference(PHI3, CHAT, "<s>", "<|endoftext|>"), ["<|endoftext|>", "<|end|>"])
    bare = hook(CHAT, completion_only=True, chat_template=str(tmp_path / "chat_template.jinja"))
    assert bare == (reference(PHI3, CHAT), ["<|end|>"])


def test_an_edited_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "t.jinja"
    path.write_text("{{ 'one' }}")
    assert hook(CHAT, completion_only=True, chat_template=str(path)) == ("one", [])
    path.write_text("{{ 'two!' }}")
    assert hook(CHAT, completion_only=True, chat_template=str(path)) == ("two!", [])


def test_a_config_without_a_template_says_so(tmp_path: Path) -> None:
    path = write_config(tmp_path / "tokenizer_config.json", bos_token="<s>")
    with pytest.raises(ConfigurationError, match="has no chat_template"):
        hook(CHAT, completion_only=True, chat_template=path)
    (tmp_path / "broken.json").write_text("{nope")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        hook(CHAT, completion_only=True, chat_template=str(tmp_path / "broken.json"))


# --- GGUF ------------------------------------------------------------------------------

def gguf_bytes(kv: list[tuple[str, int, Any]], version: int = 3) -> bytes:
    """A GGUF header and metadata as the spec lays them out (no tensors)."""
    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    def value(kind: int, v: Any) -> bytes:
        if kind == 8:
            return s(v)
        if kind == 9:
            item, items = v
            return struct.pack("<IQ", item, len(items)) + b"".join(value(item, i) for i in items)
        return struct.pack({4: "<I", 6: "<f", 7: "<?", 10: "<Q"}[kind], v)

    out = b"GGUF" + struct.pack("<IQQ", version, 0, len(kv))
    return out + b"".join(s(k) + struct.pack("<I", kind) + value(kind, v) for k, kind, v in kv)


GGUF_KV: list[tuple[str, int, Any]] = [
    ("general.architecture", 8, "llama"),
    ("llama.context_length", 4, 4096),
    ("tokenizer.ggml.model", 8, "llama"),
    ("tokenizer.ggml.scores", 9, (6, [0.0, -1.5, -2.5, 0.25])),
    ("tokenizer.ggml.tokens", 9, (8, ["<unk>", "<s>", "</s>", "▁hi"])),
    ("tokenizer.ggml.bos_token_id", 4, 1),
    ("tokenizer.ggml.eos_token_id", 4, 2),
    ("tokenizer.chat_template", 8, MISTRAL),
    ("general.file_type", 10, 2),
]


def test_gguf_metadata_gives_template_and_tokens(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_bytes(GGUF_KV))
    md = read_gguf_metadata(str(path), ["tokenizer.ggml.tokens", "llama.context_length",
                                        "general.file_type", "tokenizer.chat_template"])
    assert md == {"tokenizer.ggml.tokens": ["<unk>", "<s>", "</s>", "▁hi"],
                  "llama.context_length": 4096, "general.file_type": 2,
                  "tokenizer.chat_template": MISTRAL}
    # no add_bos_token key: a SentencePiece vocabulary adds BOS (llama.cpp's default)
    full = reference(MISTRAL, CHAT, "<s>", "</s>")
    assert hook(CHAT, completion_only=True, chat_template=str(path)) == (full[3:], ["</s>"])
    path.write_bytes(gguf_bytes([*GGUF_KV, ("tokenizer.ggml.add_bos_token", 7, False)]))
    assert hook(CHAT, completion_only=True, chat_template=str(path)) == (full, ["</s>"])


@pytest.mark.parametrize(("data", "match"), [
    (lambda b: b[:-5], "cut short"),
    (lambda b: b[:24] + struct.pack("<Q", 1 << 62) + b[32:], "corrupt"),
    (lambda b: b"GGML" + b[4:], "not a GGUF file"),
    (lambda b: b[:4] + struct.pack("<I", 1) + b[8:], "version 2 or later"),
])
def test_broken_gguf_files_are_configuration_errors(tmp_path: Path, data: Any,
                                                    match: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data(gguf_bytes(GGUF_KV)))
    with pytest.raises(ConfigurationError, match=match):
        hook(CHAT, completion_only=True, chat_template=str(path))


def test_a_gguf_without_a_template_says_so(tmp_path: Path) -> None:
    path = tmp_path / "base.gguf"
    path.write_bytes(gguf_bytes(GGUF_KV[:-2]))
    with pytest.raises(ConfigurationError, match=r"has no tokenizer\.chat_template"):
        hook(CHAT, completion_only=True, chat_template=str(path))


# --- against llama.cpp ----------------------------------------------------------------

CONVERSATIONS = [
    [{"role": "user", "content": "Name three fruits."}],
    [{"role": "system", "content": "You answer in one short sentence."},
     {"role": "user", "content": "What is the capital of Italy?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a fact about the sea."}],
]
GREEDY: dict[str, Any] = {"temperature": 0, "seed": 42, "max_tokens": 40}


@pytest.fixture(scope="module")
def llama_formatter() -> Iterator[Any]:
    """llama.cpp's chat formatter built from the GGUF exactly as its server builds it."""
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from modelwire.transports.local import model_params

    with model_params():
        tok = Llama(smollm2_path(), vocab_only=True, verbose=False)
    yield Jinja2ChatFormatter(tok.metadata["tokenizer.chat_template"],
                              eos_token=tok._model.token_get_text(tok.token_eos()),
                              bos_token=tok._model.token_get_text(tok.token_bos()))


@pytest.mark.llama
@pytest.mark.parametrize("chat", CONVERSATIONS)
def test_gguf_prompt_is_llama_cpps(chat: list[dict[str, str]], llama_formatter: Any) -> None:
    prompt, stops = hook(chat, completion_only=True, chat_template=smollm2_path()) or ("", [])
    expected = llama_formatter(messages=chat)
    assert prompt == expected.prompt
    assert stops == expected.stop  # llama.cpp stops a chat at the same string


@pytest.fixture
async def servers(llama_server: LlamaServer) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:  # noqa: F811
    """(a plain client, one for which the server is completion-only)."""
    base = {"llamacpp": llama_server.base_url}
    chat = AsyncClient(base_urls=base, middleware=[])
    text = AsyncClient(base_urls=base, middleware=[], provider_options={"llamacpp": {
        "completion_only": True, "chat_template": smollm2_path()}})
    yield chat, text
    await chat.aclose()
    await text.aclose()


@pytest.mark.llama
@pytest.mark.parametrize("chat", CONVERSATIONS[1:])
async def test_rendered_prompt_completes_as_the_server_chats(
        chat: list[dict[str, str]], servers: tuple[AsyncClient, AsyncClient]) -> None:
    plain, completion_only = servers
    model = f"llamacpp/{ALIAS}"
    call = completion_only.build_call(model, chat, **GREEDY)
    prompt, stops = completion_only_request(call, call.target.options) or ("", [])
    via_text = await plain.complete_text(model, prompt, stop=stops, **GREEDY)
    via_chat = await plain.complete(model, chat, **GREEDY)
    assert via_text.request_id and via_text.request_id.startswith("cmpl-")
    assert via_text.text.strip() and via_text.text == via_chat.text
    assert via_text.usage.input_tokens == via_chat.usage.input_tokens  # the very same prompt
    assert via_text.finish_reason == via_chat.finish_reason


@pytest.mark.llama
async def test_end_to_end_chat_on_a_completion_only_server(
        servers: tuple[AsyncClient, AsyncClient]) -> None:
    # Needs the OpenAI codec to call completion_only_request (the lead's hook).
    plain, completion_only = servers
    model, chat = f"llamacpp/{ALIAS}", CONVERSATIONS[1]
    whole = await completion_only.complete(model, chat, **GREEDY)
    reference_answer = await plain.complete(model, chat, **GREEDY)
    assert whole.request_id and whole.request_id.startswith("cmpl-")  # went to /completions
    assert whole.text == reference_answer.text and whole.text.strip()
    assert whole.usage.input_tokens == reference_answer.usage.input_tokens
    assert whole.finish_reason == reference_answer.finish_reason
    async with completion_only.stream(model, chat, **GREEDY) as s:
        deltas = [e.text async for e in s if isinstance(e, TextDelta)]
    assert "".join(deltas) == s.response.text == whole.text
