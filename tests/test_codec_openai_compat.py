"""OpenAICodec against recorded traffic and synthetic traps.

Expected values for recorded exchanges are computed here straight from the raw
JSON / SSE text (never through the codec), so a decoding bug cannot hide.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import wirekit

from modelwire.accumulate import DONE_AFTER_FINISH, Finish, Meta, Refusal, ToolCallChunk
from modelwire.config import Settings
from modelwire.errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    InvalidMessageError,
    MalformedResponseError,
    NotFoundError,
    OverloadedError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UnsupportedFeatureError,
)
from modelwire.pipeline import Call, Target
from modelwire.providers.openai_compat import OpenAICodec
from modelwire.registry import ProviderSpec, get_codec, get_spec
from modelwire.response import ReasoningDelta, Response, TextDelta, ToolCall
from modelwire.types import ImagePart, Message, TextPart, Tool, to_messages, to_tools
from modelwire.wire.sse import SSEEvent

PROVIDERS = ("openai", "azure", "groq", "openrouter", "deepseek", "mistral")
KEY = "sk-test-SECRET-0123456789"
# The wire's finish reasons and what they must become (OpenAI's documented set).
FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
          "content_filter": "content_filter", "function_call": "tool_calls"}


def _path(it: wirekit.Interaction) -> str:
    return it.path.split("#", 1)[0]  # Mistral's recorder appends "#stream"


ALL = [it for p in PROVIDERS for it in wirekit.interactions(p)]
CHAT = [it for it in ALL if _path(it).endswith("chat/completions")]
SKIPPED = [it for it in ALL if it not in CHAT]
CHAT_JSON = [it for it in CHAT if it.status == 200 and not it.is_sse]
CHAT_SSE = [it for it in CHAT if it.status == 200 and it.is_sse]
ERRORS = [it for it in ALL if it.status >= 400]


def ids(items: list[wirekit.Interaction]) -> list[str]:
    return [it.id for it in items]


def codec(provider: str) -> OpenAICodec:
    return OpenAICodec(get_spec(provider))


def call_for(provider: str, model: str = "m", **kw: Any) -> Call:
    return Call([Message("user", "hi")], Target(get_spec(provider), model, "http://x"), **kw)


# --- the set of recorded exchanges ---------------------------------------------


def test_only_responses_and_embeddings_endpoints_are_left_to_other_codecs() -> None:
    assert {_path(it).rsplit("/", 1)[-1] for it in SKIPPED} == {"responses", "embeddings"}
    assert {it.provider for it in CHAT_JSON} == set(PROVIDERS)
    assert {it.provider for it in CHAT_SSE} == set(PROVIDERS)
    assert {it.status for it in CHAT} <= {200, 400, 401, 404, 429}
    assert (len(CHAT_JSON), len(CHAT_SSE)) == (35, 25)


def test_registry_rows_build_this_codec() -> None:
    rows = ("openai", "azure", "groq", "mistral", "deepseek", "openrouter", "together",
            "fireworks", "xai", "ollama", "vllm", "llamacpp", "lmstudio", "mock", "local")
    for name in rows:
        assert isinstance(get_codec(get_spec(name)), OpenAICodec), name


# --- unstreamed bodies ------------------------------------------------------------


@pytest.mark.parametrize("it", CHAT_JSON, ids=ids(CHAT_JSON))
def test_decode_recorded_body(it: wirekit.Interaction) -> None:
    raw = it.json()
    r = codec(it.provider).decode(it.body, it.headers, call_for(it.provider))
    choice = raw["choices"][0]
    msg = choice["message"]
    assert isinstance(msg.get("content"), (str, type(None)))  # no list bodies recorded
    assert r.text == (msg.get("content") or "")
    assert r.reasoning == (msg.get("reasoning_content") or msg.get("reasoning") or "")
    expected_calls = [(tc["id"], tc["function"]["name"], json.loads(tc["function"]["arguments"]))
                      for tc in msg.get("tool_calls") or []]
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == expected_calls
    assert [c.raw_arguments for c in r.tool_calls] == [
        tc["function"]["arguments"] for tc in msg.get("tool_calls") or []]
    assert r.raw_finish_reason == choice["finish_reason"]
    assert r.finish_reason == FINISH[choice["finish_reason"]]
    u = raw["usage"]
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (
        u["prompt_tokens"], u["completion_tokens"], u["total_tokens"])
    assert r.usage.source == "reported"
    details = u.get("completion_tokens_details") or {}
    assert r.usage.reasoning_tokens == details.get("reasoning_tokens")
    assert (r.request_id, r.model, r.raw) == (raw["id"], raw["model"], raw)


def test_cached_tokens_in_each_providers_spelling() -> None:
    def usage(file: str, i: int = 0) -> Any:
        it = wirekit.load(file)[i]
        return codec(it.provider).decode(it.body, it.headers, call_for(it.provider)).usage
    # OpenAI/DeepSeek prompt_tokens_details.cached_tokens; Mistral num_cached_tokens
    assert usage("deepseek/test_deepseek_deferred_capability_with_thinking.yaml").\
        cached_input_tokens == 512
    assert usage("groq/test_tool_use_failed_error.yaml", 2).cached_input_tokens == 256
    assert usage("mistral/test_tool_choice_matrix[auto-mistral].yaml").cached_input_tokens == 76
    assert usage("openai/test_stop_settings[openai].yaml").reasoning_tokens == 448


def test_groq_think_tags_stay_in_text_and_parsed_reasoning_is_separate() -> None:
    raw_fmt, parsed_fmt = wirekit.load("groq/test_groq_model_thinking_part.yaml")
    r = codec("groq").decode(raw_fmt.body, raw_fmt.headers, call_for("groq"))
    assert r.text.startswith("<think>") and "</think>" in r.text and r.reasoning == ""
    r = codec("groq").decode(parsed_fmt.body, parsed_fmt.headers, call_for("groq"))
    assert "<think>" not in r.text and r.reasoning.startswith("Alright")


# --- recorded streams -------------------------------------------------------------


@dataclass
class Expected:
    text: str = ""
    reasoning: str = ""
    calls: dict[int, list[Any]] = field(default_factory=dict)  # index -> [id, name, args]
    finish: str | None = None
    usage: dict[str, Any] | None = None
    id: str | None = None
    model: str | None = None
    error: dict[str, Any] | None = None
    done: bool = False


def expected_stream(body: bytes) -> Expected:
    """A deliberately plain reading of an OpenAI-style SSE body."""
    exp, event = Expected(), "message"
    for line in body.decode().splitlines():
        if line.startswith("event:"):
            event = line[6:].strip()
            continue
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            exp.done = True
            continue
        chunk = json.loads(data)
        if event == "error" or chunk.get("error"):
            exp.error = chunk["error"]
            break
        exp.id = exp.id or chunk.get("id") or None
        exp.model = exp.model or chunk.get("model") or None
        exp.usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage") or exp.usage
        for ch in chunk.get("choices") or []:
            delta = ch.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                exp.text += content
            for part in content if isinstance(content, list) else []:
                if part["type"] == "text":
                    exp.text += part["text"]
                else:
                    exp.reasoning += "".join(p["text"] for p in part["thinking"])
            exp.reasoning += delta.get("reasoning_content") or delta.get("reasoning") or ""
            for tc in delta.get("tool_calls") or []:
                slot = exp.calls.setdefault(tc["index"], [None, None, ""])
                slot[0] = slot[0] or tc.get("id")
                slot[1] = slot[1] or (tc.get("function") or {}).get("name")
                slot[2] += (tc.get("function") or {}).get("arguments") or ""
            exp.finish = ch.get("finish_reason") or exp.finish
    return exp


# The two streams that fail inside HTTP 200, and what they must raise.
STREAM_ERRORS = {
    "groq/test_tool_use_failed_error_streaming.yaml#0": (BadRequestError, "tool_use_failed", 400),
    # "Token limit reached" (the output cap): any bad-request class, never retryable
    "openrouter/test_openrouter_stream_error.yaml#0": (BadRequestError, "400", 400),
}


@pytest.mark.parametrize("it", CHAT_SSE, ids=ids(CHAT_SSE))
def test_replay_recorded_stream(it: wirekit.Interaction) -> None:
    exp = expected_stream(it.body)
    events, result = wirekit.replay_stream(codec(it.provider), it.body, it.provider, "m")
    assert "".join(e.text for e in events if type(e) is TextDelta) == exp.text
    assert "".join(e.text for e in events if type(e) is ReasoningDelta) == exp.reasoning
    if exp.error is not None:
        kind, code, status = STREAM_ERRORS[it.id]
        assert isinstance(result, kind) and not result.retryable
        assert (result.code, result.status, result.provider) == (code, status, it.provider)
        assert result.message.startswith(exp.error["message"])
        return
    assert it.id not in STREAM_ERRORS and exp.done
    assert isinstance(result, Response), result
    assert (result.text, result.reasoning) == (exp.text, exp.reasoning)
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [
        (i, n, json.loads(a)) for _, (i, n, a) in sorted(exp.calls.items())]
    assert result.raw_finish_reason == exp.finish
    assert result.finish_reason == FINISH[exp.finish or ""]
    assert (result.request_id, result.model) == (exp.id, exp.model)
    if exp.usage is None:
        assert result.usage.source == "none" and result.usage.total_tokens is None
    else:
        assert result.usage.source == "reported"
        assert (result.usage.input_tokens, result.usage.output_tokens,
                result.usage.total_tokens) == (exp.usage["prompt_tokens"],
                                               exp.usage["completion_tokens"],
                                               exp.usage["total_tokens"])


def test_every_recorded_stream_error_is_covered() -> None:
    failing = {it.id for it in CHAT_SSE if expected_stream(it.body).error is not None}
    assert failing == set(STREAM_ERRORS)


def test_parallel_streamed_tool_calls_exactly() -> None:
    it = wirekit.load("openai/test_open_ai_function_calls_tools_streaming_parallel.yaml")[0]
    _, r = wirekit.replay_stream(codec("openai"), it.body)
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [
        ("call_cCPjAyfwTzboEKjVlqFrArNF", "get_current_weather", {"location": "San Francisco"}),
        ("call_Zi4He1Ns0mozwT6f85nW1BOW", "get_current_weather", {"location": "Boston"}),
    ]


def summary(result: Any) -> Any:
    if isinstance(result, Exception):
        return (type(result), getattr(result, "code", None), str(result))
    return (result.text, result.reasoning, [(c.id, c.name, c.raw_arguments)
                                            for c in result.tool_calls],
            result.finish_reason, result.raw_finish_reason, result.usage, result.request_id,
            result.model)


@pytest.mark.parametrize("it", CHAT_SSE, ids=ids(CHAT_SSE))
def test_rechunking_never_changes_the_result(it: wirekit.Interaction) -> None:
    c = codec(it.provider)
    whole = summary(wirekit.replay_stream(c, it.body)[1])
    for size in (1, 7, 64):
        assert summary(wirekit.replay_stream(c, it.body, chunk_size=size)[1]) == whole, size


# --- recorded errors ------------------------------------------------------------

# Every recorded error status of these providers (any endpoint: the error shape
# is shared) -> exact class, provider code, retryable.
RECORDED_ERRORS: dict[str, tuple[type[ProviderError], str | None, bool]] = {
    "openai/test_model_name_suggestion[openai-chat].yaml#0":
        (NotFoundError, "model_not_found", False),
    # HTTP 400, but the provider code says what happened
    "openai/test_model_name_suggestion[openai-responses].yaml#0":
        (NotFoundError, "model_not_found", False),
    "openai/test_openai_o1_mini_system_role[system].yaml#0":
        (BadRequestError, "unsupported_value", False),
    "openai/test_openai_responses_model_http_error.yaml#0":
        (BadRequestError, "decimal_below_min_value", False),
    "openai/test_openai_responses_thinking_with_modified_history.yaml#1":
        (BadRequestError, "invalid_request_error", False),
    "openai/test_openai_web_search_tool_model_not_supported.yaml#0":
        (BadRequestError, "invalid_request_error", False),
    "azure/test_azure_openai_embeddings.yaml#2": (AuthenticationError, "401", False),
    "azure/test_azure_openai_embeddings.yaml#3": (AuthenticationError, "401", False),
    "azure/test_chat_reasoning.yaml#1": (NotFoundError, "DeploymentNotFound", False),
    "azure/test_chat_reasoning.yaml#2": (NotFoundError, "DeploymentNotFound", False),
    "azure/test_chat_reasoning.yaml#3": (NotFoundError, "DeploymentNotFound", False),
    "groq/test_model_name_suggestion[groq].yaml#0": (NotFoundError, "model_not_found", False),
    "groq/test_tool_regular_error.yaml#0": (NotFoundError, "model_not_found", False),
    "groq/test_tool_use_failed_error.yaml#0": (BadRequestError, "tool_use_failed", False),
    "openrouter/test_openrouter_errors_raised.yaml#0": (RateLimitError, "429", True),
    "openrouter/test_openrouter_errors_raised.yaml#1": (RateLimitError, "429", True),
    "openrouter/test_openrouter_errors_raised.yaml#2": (RateLimitError, "429", True),
    # served as application/octet-stream
    "deepseek/test_deepseek_responses_rejects_interleaved_function_calls.yaml#0":
        (BadRequestError, "invalid_request_error", False),
}


def test_every_recorded_error_is_in_the_table() -> None:
    assert set(ids(ERRORS)) == set(RECORDED_ERRORS)


@pytest.mark.parametrize("it", ERRORS, ids=ids(ERRORS))
def test_classify_recorded_error(it: wirekit.Interaction) -> None:
    kind, code, retryable = RECORDED_ERRORS[it.id]
    err = codec(it.provider).classify_error(it.status, it.headers, it.body)
    assert type(err) is kind
    assert (err.code, err.retryable, err.status, err.provider) == (
        code, retryable, it.status, it.provider)
    raw = json.loads(it.body)
    assert err.body == raw
    assert err.message.startswith(raw["error"]["message"])
    assert err.request_id == it.headers.get("apim-request-id")  # Azure's; others redacted


def test_openrouter_error_names_the_upstream_cause() -> None:
    it = wirekit.load("openrouter/test_openrouter_errors_raised.yaml")[0]
    err = codec("openrouter").classify_error(it.status, it.headers, it.body)
    assert "temporarily rate-limited upstream" in err.message and "Google" in err.message


def test_groq_failed_generation_is_kept_in_the_body() -> None:
    it = wirekit.load("groq/test_tool_use_failed_error.yaml")[0]
    err = codec("groq").classify_error(it.status, it.headers, it.body)
    assert "get_something_by_name" in err.body["error"]["failed_generation"]


# --- synthetic errors -----------------------------------------------------------


def classify(status: int, body: Any, headers: dict[str, str] | None = None,
             provider: str = "openai") -> ProviderError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return codec(provider).classify_error(status, headers or {}, raw)


def oai(code: str | None, message: str = "m", type_: str = "invalid_request_error") -> Any:
    return {"error": {"message": message, "type": type_, "code": code, "param": None}}


def test_provider_code_decides_before_status() -> None:
    assert type(classify(400, oai("context_length_exceeded"))) is ContextWindowExceededError
    assert type(classify(400, oai("invalid_api_key"))) is AuthenticationError
    assert type(classify(400, oai("model_not_found"))) is NotFoundError
    assert type(classify(503, oai(None, type_="overloaded"))) is OverloadedError


def test_insufficient_quota_is_a_rate_limit_that_is_not_retried() -> None:
    err = classify(429, oai("insufficient_quota", "You exceeded your quota", "insufficient_quota"))
    assert type(err) is RateLimitError and err.retryable is False
    assert classify(429, oai("rate_limit_exceeded")).retryable is True


def test_retry_after_and_request_id_come_from_headers() -> None:
    err = classify(429, oai("rate_limit_exceeded"),
                   {"retry-after-ms": "1500", "x-request-id": "req_123"})
    assert (err.retry_after, err.request_id) == (1.5, "req_123")


def test_status_decides_without_a_known_code_and_context_by_text() -> None:
    assert type(classify(400, oai(None, "This model's maximum context length is 8192"))) \
        is ContextWindowExceededError
    assert type(classify(500, oai(None, type_="server_error"))) is ServerError
    assert type(classify(502, oai(None, type_="weird"))) is ServerError


def test_other_error_shapes() -> None:
    azure = classify(401, {"statusCode": 401, "message": "Unauthorized. Access token is "
                           "missing"}, provider="azure")
    assert type(azure) is AuthenticationError and azure.message.startswith("Unauthorized")
    ollama = classify(404, {"error": "model 'llama9' not found"}, provider="ollama")
    assert type(ollama) is NotFoundError and ollama.message == "model 'llama9' not found"
    mistral = classify(422, {"object": "error", "message": {"detail": [
        {"type": "extra_forbidden", "loc": ["body", "seed"]}]}, "type":
        "invalid_request_error", "param": None, "code": None}, provider="mistral")
    assert type(mistral) is BadRequestError and "extra_forbidden" in mistral.message
    credits = classify(402, {"error": {"code": 402, "message": "Insufficient credits"}},
                       provider="openrouter")
    assert type(credits) is RateLimitError and not credits.retryable


def test_non_json_error_body_is_typed_by_status_with_a_trimmed_message() -> None:
    html = (b"<html><head><title>502 Bad Gateway</title><style>body{x:1}</style></head>"
            b"<body><h1>502 Bad Gateway</h1>" + b"<p>nginx</p>" * 200 + b"</body></html>")
    err = classify(502, html)
    assert type(err) is ServerError and err.retryable
    assert err.message.startswith("502 Bad Gateway 502 Bad Gateway nginx")
    assert "<" not in err.message and "body{" not in err.message and len(err.message) <= 300
    assert err.body == html.decode()
    empty = classify(503, b"")
    assert type(empty) is ServerError and empty.message == "empty error body"


def test_a_200_body_with_an_error_object_raises() -> None:
    body = json.dumps({"error": {"code": 502, "message": "upstream died"}}).encode()
    with pytest.raises(ServerError) as e:
        codec("openrouter").decode(body, {}, call_for("openrouter"))
    assert e.value.status == 502 and e.value.message == "upstream died"


# --- decode: synthetic bodies ---------------------------------------------------


def decode(body: Any, provider: str = "openai") -> Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return codec(provider).decode(raw, {"x-request-id": "hdr"}, call_for(provider, "asked"))


def test_mistral_content_chunks_split_into_text_and_reasoning() -> None:
    r = decode({"id": "x", "model": "magistral", "choices": [{"index": 0, "finish_reason":
                "stop", "message": {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
                    {"type": "text", "text": "answer"}]}}]}, "mistral")
    assert (r.text, r.reasoning, r.usage.source) == ("answer", "hmm", "none")


def test_text_completion_body_and_fallbacks() -> None:
    r = decode({"object": "text_completion", "choices": [{"text": "once upon",
                "finish_reason": "length", "index": 0}], "usage": {"prompt_tokens": 2,
                "completion_tokens": 3}})
    assert (r.text, r.finish_reason, r.usage.total_tokens) == ("once upon", "length", 5)
    assert (r.request_id, r.model) == ("hdr", "asked")  # header id, the model asked for


def test_finish_reasons_normalize_and_keep_the_raw_value() -> None:
    def finish(raw: str) -> tuple[str, str | None]:
        r = decode({"choices": [{"finish_reason": raw, "message": {"content": "x"}}]})
        return r.finish_reason, r.raw_finish_reason
    assert finish("function_call") == ("tool_calls", "function_call")
    assert finish("content_filter") == ("content_filter", "content_filter")
    assert finish("eos") == ("stop", "eos")
    assert finish("something_new") == ("stop", "something_new")


def test_legacy_function_call_and_dict_arguments() -> None:
    r = decode({"choices": [{"finish_reason": "function_call", "message": {
        "content": None, "function_call": {"name": "f", "arguments": "{\"a\": 1}"}}}]})
    assert [(c.id, c.name, c.arguments) for c in r.tool_calls] == [("call_0", "f", {"a": 1})]
    r = decode({"choices": [{"finish_reason": "tool_calls", "message": {"tool_calls": [
        {"id": "c1", "function": {"name": "g", "arguments": {"b": 2}}}]}}]})
    assert r.tool_calls[0].arguments == {"b": 2}


@pytest.mark.parametrize("body", [b"<html>oops</html>", b"[1, 2]", b'{"choices": []}',
                                  b'{"choices": [{"message": {"tool_calls": [{"x": 1}]}}]}',
                                  b'{"choices": [{"message": {"content": "a"}}], "x_groq": 5}'])
def test_bad_bodies_are_malformed_response_errors(body: bytes) -> None:
    with pytest.raises(MalformedResponseError):
        decode(body)


def test_invalid_tool_arguments_are_kept_raw_and_the_rest_of_the_answer_survives() -> None:
    r = decode({"choices": [{"finish_reason": "length", "message": {"content": "so", "tool_calls": [
        {"id": "c", "function": {"name": "f", "arguments": "{\"a\": "}},
        {"id": "d", "function": {"name": "g", "arguments": "{\"b\": 1}"}}]}}]})
    bad, good = r.tool_calls
    assert (r.text, r.finish_reason) == ("so", "length")
    assert (bad.arguments, bad.raw_arguments) == (None, '{"a": ')
    assert bad.arguments_error is not None and "not valid JSON" in bad.arguments_error
    assert (good.arguments, good.arguments_error) == ({"b": 1}, None)
    assert r.to_dict()["tool_calls"][0] == {
        "id": "c", "name": "f", "arguments": None, "raw_arguments": '{"a": ',
        "arguments_error": bad.arguments_error}


# --- decode_event: synthetic streams and the accumulator traps -------------------


def sse(*chunks: Any, done: bool = True) -> bytes:
    lines = [f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in chunks]
    return ("".join(lines) + ("data: [DONE]\n\n" if done else "")).encode()


def tc_chunk(*calls: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "model": "gpt", "choices": [
        {"index": 0, "delta": {"tool_calls": list(calls)} if calls else {},
         "finish_reason": finish}]}


def call(index: int | None = None, id: str | None = None, name: str | None = None,
         args: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"function": {}}
    if index is not None:
        out["index"] = index
    if id:
        out["id"], out["type"] = id, "function"
    if name:
        out["function"]["name"] = name
    if args is not None:
        out["function"]["arguments"] = args
    return out


def run(body: bytes, provider: str = "openai") -> Any:
    return wirekit.replay_stream(codec(provider), body, provider, "m")[1]


def calls_of(r: Response) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c.id, c.name, c.arguments) for c in r.tool_calls]


def test_interleaved_parallel_calls_join_by_index() -> None:
    r = run(sse(tc_chunk(call(0, "a", "f", "")), tc_chunk(call(1, "b", "g", "")),
                tc_chunk(call(0, args='{"x"')), tc_chunk(call(1, args='{"y"')),
                tc_chunk(call(0, args=": 1}")), tc_chunk(call(1, args=": 2}")),
                tc_chunk(finish="tool_calls")))
    assert calls_of(r) == [("a", "f", {"x": 1}), ("b", "g", {"y": 2})]
    assert r.finish_reason == "tool_calls"


def test_id_only_continuation_chunks_join_their_call() -> None:
    r = run(sse(tc_chunk(call(id="a", name="f", args='{"x"')),
                tc_chunk(call(id="b", name="g", args='{"y": 2}')),
                tc_chunk(call(id="a", args=": 1}")), tc_chunk(finish="tool_calls")))
    assert calls_of(r) == [("a", "f", {"x": 1}), ("b", "g", {"y": 2})]


def test_repeated_same_name_calls_stay_separate() -> None:
    r = run(sse(tc_chunk(call(0, "a", "f", '{"n": 1}')), tc_chunk(call(1, "b", "f", "")),
                tc_chunk(call(1, args='{"n": 2}')), tc_chunk(finish="tool_calls")))
    assert calls_of(r) == [("a", "f", {"n": 1}), ("b", "f", {"n": 2})]


def test_keyless_fragments_start_on_a_name_and_continue_the_latest_call() -> None:
    r = run(sse(tc_chunk(call(name="f", args='{"a"')), tc_chunk(call(args=": 1}")),
                tc_chunk(call(name="f", args='{"a": 2}')), tc_chunk(finish="tool_calls")))
    assert [(c.name, c.arguments) for c in r.tool_calls] == [("f", {"a": 1}), ("f", {"a": 2})]


def text_chunk(text: str, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "c1", "model": "gpt", "choices": [
        {"index": 0, "delta": {"content": text}, "finish_reason": finish}], **extra}


def test_missing_done_is_an_interrupted_stream_even_after_finish_and_usage() -> None:
    usage = {"id": "c1", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    err = run(sse(text_chunk("Hel"), text_chunk("lo", "stop"), usage, done=False))
    assert type(err) is StreamInterruptedError and err.retryable
    assert err.partial is not None and err.partial.text == "Hello"
    assert err.partial.finish_reason == "error"


def test_a_row_may_declare_that_the_finish_chunk_ends_its_streams() -> None:
    spec = ProviderSpec("oldserver", "x:y", "http://127.0.0.1:1", options={"stream_end": "finish"})
    _, r = wirekit.replay_stream(OpenAICodec(spec), sse(text_chunk("hi", "stop"), done=False))
    assert isinstance(r, Response) and r.text == "hi"


def test_usage_sources_in_streams() -> None:
    groq = {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "x_groq": {"id": "req", "usage": {"prompt_tokens": 5, "completion_tokens": 6,
                                              "total_tokens": 11}}}
    r = run(sse(text_chunk("a"), groq))
    assert (r.usage.total_tokens, r.usage.source) == (11, "reported")
    assert run(sse(text_chunk("a", "stop"))).usage.source == "none"


def test_meta_is_emitted_by_the_first_and_the_finish_chunk_only() -> None:
    c = codec("openai")
    first = {"id": "c9", "model": "gpt-x", "choices": [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    assert c.decode_event(SSEEvent("message", json.dumps(first))) == [Meta("c9", "gpt-x")]
    assert c.decode_event(SSEEvent("message", json.dumps(text_chunk("x")))) == [TextDelta("x")]
    last = c.decode_event(SSEEvent("message", json.dumps(text_chunk("", "length"))))
    assert last == [Meta("c1", "gpt"), Finish("length", "length")]


def test_events_that_decode_to_nothing_or_done() -> None:
    c = codec("azure")
    azure_first = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                   "prompt_filter_results": [{"prompt_index": 0}]}
    assert c.decode_event(SSEEvent("message", json.dumps(azure_first))) == []
    assert c.decode_event(SSEEvent("message", "")) == []
    assert c.decode_event(SSEEvent("message", " [DONE] ")) == [DONE_AFTER_FINISH]
    other_choice = {"choices": [{"index": 1, "delta": {"content": "n=2"}}]}
    assert c.decode_event(SSEEvent("message", json.dumps(other_choice))) == []


@pytest.mark.parametrize("data", ['{"choices": [{"delta": {"content": "x"}', "42",
                                  '{"choices": [1]}', '{"choices": [{"delta": []}]}'])
def test_bad_stream_data_is_a_malformed_response_naming_it(data: str) -> None:
    with pytest.raises(MalformedResponseError) as e:
        codec("openai").decode_event(SSEEvent("message", data))
    assert data[:20] in str(e.value)


def test_in_stream_errors_raise_typed_errors() -> None:
    c = codec("groq")
    data = json.dumps({"error": {"message": "Rate limit reached", "type": "tokens",
                                 "code": "rate_limit_exceeded"}})
    with pytest.raises(RateLimitError):
        c.decode_event(SSEEvent("error", data))
    with pytest.raises(ServerError):
        c.decode_event(SSEEvent("message", json.dumps({"error": {
            "message": "boom", "code": 500}, "choices": []})))
    with pytest.raises(OverloadedError):  # no status, no known code: the text decides
        c.decode_event(SSEEvent("error", json.dumps({"error": {"message": "Overloaded"}})))


def test_streamed_reasoning_refusal_and_text_completion_chunks() -> None:
    c = codec("deepseek")
    chunk = {"choices": [{"index": 0, "delta": {"reasoning_content": "think",
                                                "content": None}}]}
    assert c.decode_event(SSEEvent("message", json.dumps(chunk))) == [ReasoningDelta("think")]
    chunk = {"choices": [{"index": 0, "delta": {"refusal": "I can't"}}]}
    assert c.decode_event(SSEEvent("message", json.dumps(chunk))) == [Refusal("I can't")]
    r = run(sse({"id": "cmpl-1", "object": "text_completion", "model": "m1",
                 "choices": [{"index": 0, "text": "once", "finish_reason": None}]},
                {"id": "cmpl-1", "object": "text_completion", "model": "m1",
                 "choices": [{"index": 0, "text": " upon", "finish_reason": "length"}]}))
    assert (r.text, r.finish_reason, r.request_id) == ("once upon", "length", "cmpl-1")


def test_tool_chunk_keys() -> None:
    out = codec("openai").decode_event(SSEEvent("message", json.dumps(
        tc_chunk(call(3, "a", "f", "{"), call(id="b", args="x")))))
    assert out == [ToolCallChunk(3, "a", "f", "{"), ToolCallChunk("b", "b", None, "x")]


# --- encode ------------------------------------------------------------------------


def target(name: str, model: str = "gpt-x", env: dict[str, str] | None = None) -> Target:
    settings = Settings(api_keys={name: KEY}, env=env or {})
    return settings.resolve(f"{name}/{model}")


def encode(t: Target, **kw: Any) -> tuple[Any, dict[str, Any]]:
    kw.setdefault("messages", [Message("user", "hi")])
    req = OpenAICodec(t.spec).encode(Call(target=t, **kw))
    assert KEY not in repr(req) and KEY not in req.url and KEY.encode() not in (req.body or b"")
    return req, json.loads(req.body or b"{}")


ROWS = {  # provider: (URL, max-tokens field, stream_options sent)
    "openai": ("https://api.openai.com/v1/chat/completions", "max_completion_tokens", True),
    "groq": ("https://api.groq.com/openai/v1/chat/completions", "max_completion_tokens", True),
    "xai": ("https://api.x.ai/v1/chat/completions", "max_completion_tokens", True),
    "mistral": ("https://api.mistral.ai/v1/chat/completions", "max_tokens", False),
    "deepseek": ("https://api.deepseek.com/chat/completions", "max_tokens", True),
    "openrouter": ("https://openrouter.ai/api/v1/chat/completions", "max_tokens", True),
    "together": ("https://api.together.xyz/v1/chat/completions", "max_tokens", True),
    "fireworks": ("https://api.fireworks.ai/inference/v1/chat/completions", "max_tokens", True),
    "ollama": ("http://127.0.0.1:11434/v1/chat/completions", "max_tokens", True),
    "vllm": ("http://127.0.0.1:8000/v1/chat/completions", "max_tokens", True),
    "llamacpp": ("http://127.0.0.1:8080/v1/chat/completions", "max_tokens", True),
    "lmstudio": ("http://127.0.0.1:1234/v1/chat/completions", "max_tokens", True),
    "mock": ("mock://chat/completions", "max_tokens", True),
    "local": ("local://chat/completions", "max_tokens", True),
}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_encode_each_row(name: str) -> None:
    url, max_field, stream_options = ROWS[name]
    req, body = encode(target(name), stream=True, max_tokens=50, temperature=0.2, seed=7,
                       stop=["\n"], top_p=0.9)
    assert (req.method, req.url, req.stream) == ("POST", url, True)
    assert req.headers["content-type"] == "application/json"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == "gpt-x" and body["messages"] == [{"role": "user", "content": "hi"}]
    assert body[max_field] == 50 and len({"max_tokens", "max_completion_tokens"} & set(body)) == 1
    assert (body["temperature"], body["stop"], body["top_p"], body["stream"]) == (
        0.2, ["\n"], 0.9, True)
    assert body["random_seed" if name == "mistral" else "seed"] == 7
    assert ("stream_options" in body) is stream_options
    if stream_options:
        assert body["stream_options"] == {"include_usage": True}


def test_encode_omits_unset_fields_and_auth_without_a_key() -> None:
    t = Settings(env={}).resolve("ollama/llama3")
    req = OpenAICodec(t.spec).encode(Call([Message("user", "hi")], t))
    assert json.loads(req.body or b"") == {"model": "llama3", "messages": [
        {"role": "user", "content": "hi"}]}
    assert set(req.headers) == {"content-type"} and req.stream is False


AZ = {"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com/"}


def test_azure_deployment_url_with_dated_api_version() -> None:
    req, body = encode(target("azure", "gpt-4o", AZ), max_tokens=9)
    assert req.url == ("https://res.openai.azure.com/openai/deployments/gpt-4o/chat/completions"
                       "?api-version=2024-10-21")
    assert req.headers["api-key"] == KEY and "authorization" not in req.headers
    assert body["max_tokens"] == 9  # 2024-10-21 GA documents only max_tokens
    req, body = encode(target("azure", "gpt-4o", {**AZ, "OPENAI_API_VERSION":
                                                  "2025-04-01-preview"}), max_tokens=9)
    assert req.url.endswith("/deployments/gpt-4o/chat/completions?api-version=2025-04-01-preview")
    assert body["max_completion_tokens"] == 9


@pytest.mark.parametrize(("version", "query"), [("v1", ""), ("latest", ""),
                                                ("preview", "?api-version=preview")])
def test_azure_v1_url(version: str, query: str) -> None:
    req, body = encode(target("azure", "my-deploy", {**AZ, "OPENAI_API_VERSION": version}),
                       max_tokens=3)
    assert req.url == f"https://res.openai.azure.com/openai/v1/chat/completions{query}"
    assert body["model"] == "my-deploy" and body["max_completion_tokens"] == 3


def test_azure_base_url_already_at_openai_v1_is_used_as_is() -> None:
    env = {"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com/openai/v1"}
    req, body = encode(target("azure", "d", env), max_tokens=4)
    assert req.url == "https://res.openai.azure.com/openai/v1/chat/completions"
    assert body["max_completion_tokens"] == 4  # the v1 API, whatever api_version says
    env = {"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com/openai"}
    assert encode(target("azure", "d", env))[0].url == (
        "https://res.openai.azure.com/openai/deployments/d/chat/completions"
        "?api-version=2024-10-21")


def test_encode_reproduces_recorded_request_urls() -> None:
    checked = 0
    for it in CHAT:
        base = it.uri.split("#")[0]
        if it.provider == "azure":
            host, _, rest = base.partition("/openai/deployments/")
            deployment = rest.split("/")[0]
            version = base.split("api-version=")[1]
            t = target("azure", deployment, {"AZURE_OPENAI_ENDPOINT": host,
                                             "OPENAI_API_VERSION": version})
        elif "/beta/" in base:  # DeepSeek's beta base URL
            t = target("deepseek", "m", {"DEEPSEEK_BASE_URL": "https://api.deepseek.com/beta"})
        else:
            t = target(it.provider)
        assert encode(t)[0].url == base, it.id
        checked += 1
    assert checked == len(CHAT)


def test_encode_matches_what_the_official_sdks_sent() -> None:
    compared = 0
    for it in CHAT:
        req = it.request or {}
        if any(not isinstance(m.get("content"), (str, type(None))) for m in req["messages"]) \
                or any(t.get("type", "function") != "function" for t in req.get("tools") or []):
            continue  # Mistral thinking-chunk history, OpenRouter server tools: extra's job
        msgs = [{k: v for k, v in m.items() if k in ("role", "content", "tool_calls",
                                                       "tool_call_id")}
                for m in req["messages"]]
        _, body = encode(target(it.provider, req["model"], {"AZURE_OPENAI_ENDPOINT": "https://r"}),
                         messages=to_messages(msgs), tools=to_tools(req.get("tools")),
                         tool_choice=req.get("tool_choice"), stream=bool(req.get("stream")))
        for mine, sent in zip(body["messages"], req["messages"], strict=True):
            assert mine["role"] == sent["role"] and mine.get("content") == (
                sent.get("content") or (None if sent.get("tool_calls") else "")), it.id
            assert mine.get("tool_call_id") == sent.get("tool_call_id")
            assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                    for c in mine.get("tool_calls", [])] == [
                (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
                for c in sent.get("tool_calls") or []]
        assert [t["function"] for t in body.get("tools", [])] == [
            {k: v for k, v in t["function"].items() if k != "strict" and v != ""}
            for t in req.get("tools") or []], it.id
        assert body.get("tool_choice") == req.get("tool_choice"), it.id
        if req.get("stream_options"):
            assert body["stream_options"] == req["stream_options"]
        compared += 1
    assert compared >= 40


def test_encode_messages_of_every_role() -> None:
    history = [
        Message("system", "be brief"),
        Message("user", [TextPart("what is this?"), ImagePart("data:image/png;base64,AAA",
                                                              "low")]),
        Message("assistant", "", [ToolCall("call_1", "look", {"q": "é"}, '{"q":"é"}')]),
        Message("tool", "a cat", tool_call_id="call_1", name="look"),
        Message("assistant", "A cat."),
    ]
    _, body = encode(target("openai"), messages=history,
                     tools=[Tool("look", "Look it up", {"type": "object"})], tool_choice="look")
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA",
                                                "detail": "low"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "look", "arguments": '{"q": "é"}'}}]},
        {"role": "tool", "content": "a cat", "tool_call_id": "call_1", "name": "look"},
        {"role": "assistant", "content": "A cat."},
    ]
    assert body["tools"] == [{"type": "function", "function": {
        "name": "look", "description": "Look it up", "parameters": {"type": "object"}}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "look"}}


@pytest.mark.parametrize(("provider", "given", "sent"), [
    ("openai", "required", "required"), ("mistral", "required", "any"),
    ("groq", "any", "required"), ("mistral", "auto", "auto"), ("openai", "none", "none"),
    ("openai", {"type": "function", "function": {"name": "f"}},
     {"type": "function", "function": {"name": "f"}}),
    ("mistral", Tool("f"), {"type": "function", "function": {"name": "f"}}),
])
def test_tool_choice(provider: str, given: Any, sent: Any) -> None:
    _, body = encode(target(provider), tools=[Tool("f")], tool_choice=given)
    assert body["tool_choice"] == sent


@pytest.mark.parametrize("bad", ["nosuchtool", 3])
def test_bad_tool_choice_is_a_clear_error(bad: Any) -> None:
    with pytest.raises(InvalidMessageError, match="tool_choice"):
        encode(target("openai"), tools=[Tool("f")], tool_choice=bad)


def test_extra_is_merged_last_and_guarded() -> None:
    _, body = encode(target("openai"), temperature=1.0, extra={
        "temperature": 0.0, "response_format": {"type": "json_object"}, "user": "u1"})
    assert (body["temperature"], body["response_format"], body["user"]) == (
        0.0, {"type": "json_object"}, "u1")
    with pytest.raises(UnsupportedFeatureError, match="several"):
        encode(target("openai"), extra={"n": 2})
    with pytest.raises(InvalidMessageError, match="stream"):
        encode(target("openai"), stream=True, extra={"stream": False})


def test_text_mode_uses_the_completions_endpoint() -> None:
    req, body = encode(target("openai"), messages=[], mode="text", prompt="Once",
                       max_tokens=5, stream=True)
    assert req.url == "https://api.openai.com/v1/completions"
    assert body == {"model": "gpt-x", "prompt": "Once", "max_tokens": 5, "stream": True,
                    "stream_options": {"include_usage": True}}
    req, _ = encode(target("azure", "d", AZ), messages=[], mode="text", prompt="x")
    assert req.url == ("https://res.openai.azure.com/openai/deployments/d/completions"
                       "?api-version=2024-10-21")
    with pytest.raises(InvalidMessageError):
        encode(target("openai"), messages=[], mode="text")
    with pytest.raises(UnsupportedFeatureError):
        encode(target("openai"), messages=[], mode="text", prompt="x", tools=[Tool("f")])


def test_spec_headers_and_other_auth_schemes() -> None:
    spec = ProviderSpec("custom", "x:y", "https://h/v1", auth="x-api-key",
                        headers=(("x-title", "modelwire"),))
    req = OpenAICodec(spec).encode(Call([Message("user", "hi")], Target(spec, "m", "https://h/v1",
                                                                        KEY)))
    assert req.headers == {"content-type": "application/json", "x-api-key": KEY,
                           "x-title": "modelwire"}
    assert KEY not in repr(req)


def test_llamacpp_schema_errors_served_as_500_are_bad_requests_not_retryable() -> None:
    from modelwire.errors import BadRequestError, ServerError
    body = json.dumps({"error": {"message": "1 validation error for CreateChatCompletionRequest"
                                 "\ntemperature\n  Input should be a valid number",
                                 "type": "internal_server_error"}}).encode()
    err = codec("llamacpp").classify_error(500, {}, body)
    assert isinstance(err, BadRequestError) and not err.retryable
    assert isinstance(codec("openai").classify_error(500, {}, body), ServerError)
