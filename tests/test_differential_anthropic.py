"""Differential test: modelwire and the official ``anthropic`` SDK read the same bytes.

For every recorded 200 exchange (JSON and SSE) the SDK gets the recorded body
through a mock transport (the beta client for cassettes recorded against
``?beta=true``, as pydantic-ai's were) and both results must agree on text,
client tool calls, reasoning, stop reason and usage.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2 as httpx  # anthropic 2.x ships its own httpx fork and rejects httpx's classes
import pytest
from wirekit import Interaction, interactions, replay_stream

from modelwire.pipeline import Call, Target
from modelwire.providers.anthropic import AnthropicCodec
from modelwire.registry import get_spec
from modelwire.response import Response

SPEC = get_spec("anthropic")
CODEC = AnthropicCodec(SPEC)
MODEL = "claude-recorded"  # the request model does not matter to either decoder
OK = [it for it in interactions("anthropic") if it.status == 200]

# The SDK's stop reasons, mapped by the documented meaning of each.
STOP = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
        "max_tokens": "length", "model_context_window_exceeded": "length",
        "tool_use": "tool_calls", "refusal": "content_filter"}


def sdk_message(it: Interaction) -> Any:
    headers = {k: v for k, v in it.headers.items()
               if k not in ("content-encoding", "content-length", "transfer-encoding")}

    def handler(request: Any) -> Any:
        return httpx.Response(it.status, headers=headers, content=it.body)

    client = anthropic.Anthropic(
        api_key="test", base_url="http://127.0.0.1:9", max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    messages = client.beta.messages if "beta=true" in it.uri else client.messages
    kw: dict[str, Any] = {"model": MODEL, "max_tokens": 64,
                          "messages": [{"role": "user", "content": "hi"}]}
    if it.is_sse:
        with messages.stream(**kw) as stream:
            return stream.get_final_message()
    return messages.create(**kw)


def modelwire_response(it: Interaction) -> Response:
    if it.is_sse:
        _, r = replay_stream(CODEC, it.body, "anthropic", MODEL)
        assert isinstance(r, Response), r
        return r
    target = Target(SPEC, MODEL, "https://api.anthropic.com", "test")
    return CODEC.decode(it.body, it.headers, Call([], target))


@pytest.mark.parametrize("it", OK, ids=lambda it: it.id)
def test_modelwire_agrees_with_the_sdk(it: Interaction) -> None:
    sdk, mw = sdk_message(it), modelwire_response(it)
    blocks = sdk.content
    assert mw.text == "".join(b.text for b in blocks if b.type == "text")
    assert mw.reasoning == "".join(b.thinking for b in blocks if b.type == "thinking")
    assert [(c.id, c.name, c.arguments) for c in mw.tool_calls] == [
        (b.id, b.name, b.input) for b in blocks if b.type == "tool_use"]
    assert mw.finish_reason == STOP[sdk.stop_reason]
    assert mw.raw_finish_reason == sdk.stop_reason
    u = sdk.usage
    read, write = u.cache_read_input_tokens or 0, u.cache_creation_input_tokens or 0
    assert mw.usage.input_tokens == u.input_tokens + read + write
    assert mw.usage.output_tokens == u.output_tokens
    assert mw.usage.total_tokens == u.input_tokens + read + write + u.output_tokens
    # A reported 0 may surface as None after stream accumulation (Usage.merged).
    assert (mw.usage.cached_input_tokens or 0) == read
    assert (mw.usage.cache_write_tokens or 0) == write
    assert mw.model == sdk.model
    if "request-id" not in it.headers:
        assert mw.request_id == sdk.id


def test_every_recorded_success_is_covered() -> None:
    kinds = {(it.is_sse, "beta=true" in it.uri) for it in OK}
    assert kinds == {(True, True), (True, False), (False, True), (False, False)}
