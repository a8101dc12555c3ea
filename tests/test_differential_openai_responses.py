"""Differential test: the official ``openai`` SDK and modelwire read the same
recorded Responses API bytes (OpenAI, Azure, DeepSeek).

Each recorded ``/responses`` exchange is served to the SDK through an
``httpx.MockTransport``: 200 bodies via ``responses.create()``, streams via
``responses.stream()`` (the SDK's own event accumulator), errors via the
exception the SDK raises. Text, function calls, reasoning, usage, id, model and
status must agree with modelwire's codec. The SDK is a test-only dependency.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2 as httpx  # the openai SDK (3.x) ships its own httpx fork and rejects httpx's classes
import openai
import pytest
import wirekit

from modelwire import errors
from modelwire.pipeline import Call, Target
from modelwire.providers.openai_responses import ResponsesCodec
from modelwire.registry import get_spec
from modelwire.response import Response
from modelwire.types import Message

# The SDK's stream accumulator copies web_search_call items with a pydantic
# serializer warning about its own union types; it is the SDK's, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")

CODEC = ResponsesCodec(get_spec("openai-responses"))
EXCHANGES = [it for p in ("openai", "deepseek", "azure") for it in wirekit.interactions(p)
             if it.path == "responses" or it.path.endswith("/responses")]
JSON = [it for it in EXCHANGES if it.status == 200 and not it.is_sse]
SSE = [it for it in EXCHANGES if it.status == 200 and it.is_sse]
ERRORS = [it for it in EXCHANGES if it.status >= 400]
_DROP = {"content-encoding", "content-length", "transfer-encoding"}
# The SDK's exception classes by HTTP status, against the codec's typed errors.
SDK_TO_OURS = {openai.BadRequestError: errors.BadRequestError,
               openai.NotFoundError: errors.NotFoundError}


def sdk(it: wirekit.Interaction) -> openai.OpenAI:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {k: v for k, v in it.headers.items() if k not in _DROP}
        return httpx.Response(it.status, headers=headers, content=it.body)
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return openai.OpenAI(api_key="test", base_url="http://127.0.0.1:9/v1", http_client=http,
                         max_retries=0)


def ours(it: wirekit.Interaction) -> Response:
    call = Call([Message("user", "hi")], Target(CODEC.spec, "m", "http://x"))
    return CODEC.decode(it.body, it.headers, call)


def sdk_view(resp: Any) -> dict[str, Any]:
    """What the SDK's typed Response object says, in modelwire's terms."""
    calls = [(o.call_id, o.name, json.loads(o.arguments or "{}"))
             for o in resp.output if o.type == "function_call"]
    reasoning = [p.text for o in resp.output if o.type == "reasoning"
                 for p in [*(o.summary or []), *(o.content or [])] if p.text]
    u = resp.usage
    return {
        "text": resp.output_text, "calls": calls, "reasoning": "\n\n".join(reasoning),
        "usage": (u.input_tokens, u.output_tokens, u.total_tokens,
                  u.input_tokens_details.cached_tokens,
                  u.output_tokens_details.reasoning_tokens),
        "id": resp.id, "model": resp.model, "status": resp.status,
    }


def our_view(r: Response) -> dict[str, Any]:
    u = r.usage
    return {
        "text": r.text, "calls": [(c.id, c.name, c.arguments) for c in r.tool_calls],
        "reasoning": r.reasoning,
        "usage": (u.input_tokens, u.output_tokens, u.total_tokens, u.cached_input_tokens,
                  u.reasoning_tokens),
        "id": r.request_id, "model": r.model, "status": r.raw_finish_reason,
    }


@pytest.mark.parametrize("it", JSON, ids=[it.id for it in JSON])
def test_unstreamed_answers_agree_with_the_sdk(it: wirekit.Interaction) -> None:
    resp = sdk(it).responses.create(model="m", input="hi")
    r = ours(it)
    assert our_view(r) == sdk_view(resp)
    has_calls = any(o.type == "function_call" for o in resp.output)
    assert r.finish_reason == ("tool_calls" if has_calls else "stop")


@pytest.mark.parametrize("it", SSE, ids=[it.id for it in SSE])
def test_streamed_answers_agree_with_the_sdk(it: wirekit.Interaction) -> None:
    text, reasoning, arg_deltas = "", "", 0
    with sdk(it).responses.stream(model="m", input="hi") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                text += event.delta
            elif event.type in ("response.reasoning_summary_text.delta",
                                "response.reasoning_text.delta"):
                reasoning += event.delta
            elif event.type == "response.function_call_arguments.delta":
                arg_deltas += 1
        final = stream.get_final_response()
    events, r = wirekit.replay_stream(CODEC, it.body, "openai-responses", "m")
    assert isinstance(r, Response), r
    want = sdk_view(final)
    assert our_view(r) == want
    assert r.text == text  # the SDK's deltas, joined, are our text
    assert r.reasoning.replace("\n\n", "") == reasoning.replace("\n\n", "")
    assert sum(type(e).__name__ == "ToolCallArgumentsDelta" for e in events) == arg_deltas


@pytest.mark.parametrize("it", ERRORS, ids=[it.id for it in ERRORS])
def test_errors_agree_with_the_sdk(it: wirekit.Interaction) -> None:
    stream = bool(it.request and it.request.get("stream"))
    with pytest.raises(openai.APIStatusError) as info:
        sdk(it).responses.create(model="m", input="hi", stream=stream)
    sdk_error = info.value
    err = CODEC.classify_error(it.status, it.headers, it.body)
    # The SDK types by status only; modelwire lets a provider code refine it (a 400
    # "model_not_found" is a NotFoundError).
    refined = err.code == "model_not_found" and type(err) is errors.NotFoundError
    assert refined or issubclass(type(err), SDK_TO_OURS[type(sdk_error)])
    assert err.status == sdk_error.status_code
    assert isinstance(sdk_error.body, dict)
    assert err.message == sdk_error.body["message"]
    assert err.code == (sdk_error.code or sdk_error.body.get("type"))


def test_the_differential_covers_every_exchange() -> None:
    assert len(JSON) + len(SSE) + len(ERRORS) == len(EXCHANGES) == 31
    assert {it.provider for it in JSON} == {"openai", "deepseek", "azure"}
    assert {it.provider for it in SSE} == {"openai", "deepseek"}
