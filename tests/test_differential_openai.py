"""Differential test: the official ``openai`` SDK and modelwire read the same bytes.

Every recorded Chat Completions 200 exchange of the OpenAI-compatible providers
is served to the SDK through an ``httpx.MockTransport`` and decoded by
modelwire's codec (``decode`` or ``replay_stream``); text, reasoning, tool
calls, finish reason, usage, id and model must agree. The SDK is a test-only
dependency.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2 as httpx  # the openai SDK (3.x) ships its own httpx fork and rejects httpx's classes
import openai
import pytest
import wirekit
from openai.lib.streaming.chat import ChatCompletionStreamState

from modelwire.errors import ProviderError
from modelwire.pipeline import Call, Target
from modelwire.providers.openai_compat import OpenAICodec
from modelwire.registry import get_spec
from modelwire.response import Response
from modelwire.types import Message

PROVIDERS = ("openai", "azure", "groq", "deepseek", "openrouter", "mistral")
FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
          "content_filter": "content_filter", "function_call": "tool_calls"}
EXCHANGES = [it for p in PROVIDERS for it in wirekit.interactions(p)
             if it.status == 200 and it.path.split("#")[0].endswith("chat/completions")]
JSON = [it for it in EXCHANGES if not it.is_sse]
SSE = [it for it in EXCHANGES if it.is_sse]
# Transfer headers that no longer describe the stored (decompressed) body.
_DROP = {"content-encoding", "content-length", "transfer-encoding"}


def sdk(it: wirekit.Interaction) -> openai.OpenAI:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {k: v for k, v in it.headers.items() if k not in _DROP}
        return httpx.Response(it.status, headers=headers, content=it.body)
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return openai.OpenAI(api_key="test", base_url="http://127.0.0.1:9/v1", http_client=http,
                         max_retries=0)


def sdk_call(it: wirekit.Interaction, stream: bool) -> Any:
    return sdk(it).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=stream)


def extra(obj: Any, name: str) -> Any:
    """A field the SDK's types do not declare (reasoning, x_groq, ...)."""
    return (obj.model_extra or {}).get(name)


def ours(it: wirekit.Interaction) -> Response:
    spec = get_spec(it.provider)
    call = Call([Message("user", "hi")], Target(spec, "m", "http://x"))
    return OpenAICodec(spec).decode(it.body, it.headers, call)


def assert_usage(r: Response, usage: Any) -> None:
    assert usage is not None and r.usage.source == "reported"
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (
        usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
    ptd, ctd = usage.prompt_tokens_details, usage.completion_tokens_details
    if ptd is not None and ptd.cached_tokens:
        assert r.usage.cached_input_tokens == ptd.cached_tokens
    if ctd is not None and ctd.reasoning_tokens:
        assert r.usage.reasoning_tokens == ctd.reasoning_tokens


@pytest.mark.parametrize("it", JSON, ids=[it.id for it in JSON])
def test_unstreamed_answers_agree_with_the_sdk(it: wirekit.Interaction) -> None:
    completion = sdk_call(it, stream=False)
    r = ours(it)
    choice = completion.choices[0]
    msg = choice.message
    assert r.text == (msg.content or "")
    assert r.reasoning == (extra(msg, "reasoning_content") or extra(msg, "reasoning") or "")
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        (tc.id, tc.function.name, json.loads(tc.function.arguments))
        for tc in msg.tool_calls or []]
    assert r.raw_finish_reason == choice.finish_reason
    assert r.finish_reason == FINISH[choice.finish_reason]
    assert_usage(r, completion.usage)
    assert (r.request_id, r.model) == (completion.id, completion.model)


def sdk_stream(it: wirekit.Interaction) -> tuple[dict[str, Any], BaseException | None]:
    """Run the SDK over a recorded stream and accumulate what it yields.

    ChatCompletionStreamState (the SDK's own accumulator) builds text, tool calls
    and finish reason; reasoning and Groq's x_groq usage are undeclared extras,
    and Mistral's list-valued content is outside the SDK's types, so those are
    joined here from the SDK's chunk objects (as is the plain text, a second
    reading to compare with the accumulator's).
    """
    state = ChatCompletionStreamState()
    mistral_lists = False
    got: dict[str, Any] = {"reasoning": "", "text_parts": "", "usage": None, "id": None,
                           "model": None}
    try:
        for chunk in sdk_call(it, stream=True):
            got["id"] = got["id"] or chunk.id or None
            got["model"] = got["model"] or chunk.model or None
            got["usage"] = chunk.usage or got["usage"]
            groq = extra(chunk, "x_groq")
            if got["usage"] is None and groq and groq.get("usage"):
                got["usage"] = openai.types.CompletionUsage(**groq["usage"])
            for ch in chunk.choices:
                d = ch.delta
                got["reasoning"] += extra(d, "reasoning_content") or extra(d, "reasoning") or ""
                if isinstance(d.content, list):
                    mistral_lists = True
                    for part in d.content:
                        if part["type"] == "thinking":
                            got["reasoning"] += "".join(p["text"] for p in part["thinking"])
                        else:
                            got["text_parts"] += part["text"]
                    d.content = None  # keep the SDK accumulator on its declared types
                elif isinstance(d.content, str):
                    got["text_parts"] += d.content
                # OpenRouter's url_citation annotations lack the `index` the SDK's
                # accumulator needs; they carry no text, tool call or usage.
                (d.model_extra or {}).pop("annotations", None)
            state.handle_chunk(chunk)
    except openai.APIError as e:
        return got, e
    final = state.get_final_completion()
    choice = final.choices[0]
    got["text"] = got["text_parts"] if mistral_lists else (choice.message.content or "")
    got["calls"] = [(tc.id, tc.function.name, json.loads(tc.function.arguments))
                    for tc in choice.message.tool_calls or []]
    got["finish"] = choice.finish_reason
    return got, None


@pytest.mark.parametrize("it", SSE, ids=[it.id for it in SSE])
def test_streamed_answers_agree_with_the_sdk(it: wirekit.Interaction) -> None:
    got, sdk_error = sdk_stream(it)
    _, r = wirekit.replay_stream(OpenAICodec(get_spec(it.provider)), it.body, it.provider, "m")
    if sdk_error is not None:  # Groq's event: error, OpenRouter's error chunk
        assert isinstance(r, ProviderError), r
        body = getattr(sdk_error, "body", None)
        assert isinstance(body, dict)
        assert r.code == str(body.get("code")) and r.message.startswith(body["message"])
        return
    assert isinstance(r, Response), r
    assert r.text == got["text"] and r.text == got["text_parts"]
    assert r.reasoning == got["reasoning"]
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == got["calls"]
    assert r.raw_finish_reason == got["finish"]
    assert r.finish_reason == FINISH[got["finish"]]
    if got["usage"] is None:
        assert r.usage.source == "none"
    else:
        assert_usage(r, got["usage"])
    assert (r.request_id, r.model) == (got["id"], got["model"])


def test_the_differential_covers_every_provider_and_both_error_streams() -> None:
    assert {it.provider for it in JSON} == set(PROVIDERS) == {it.provider for it in SSE}
    errors = [it.id for it in SSE if sdk_stream(it)[1] is not None]
    assert sorted(errors) == ["groq/test_tool_use_failed_error_streaming.yaml#0",
                              "openrouter/test_openrouter_stream_error.yaml#0"]
