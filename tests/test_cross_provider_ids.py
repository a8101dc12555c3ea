"""A history whose tool call ids came from other providers continues on each provider."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from modelwire import Message, ToolCall
from modelwire.pipeline import Call, Target
from modelwire.registry import get_codec, get_spec


def _history() -> list[Message]:
    """Calls from OpenAI, Kimi (``functions.name:0``), Gemini (``call_0`` every turn),
    a legacy Gemini id carrying its signature, and Mistral."""
    turns = [("call_Ab12Cd34Ef56Gh78Ij90Kl12", "get"), ("functions.get_weather:0", "get"),
             ("call_0", "get"), ("call_0", "get"), ("call_1__thought__c2ln+/==", "get"),
             ("Ab3dE6gH9", "get")]
    out: list[Message] = []
    for n, (cid, name) in enumerate(turns):
        out.append(Message("user", f"question {n}"))
        out.append(Message("assistant", "", [ToolCall(cid, name, {"n": n}, json.dumps({"n": n}))]))
        out.append(Message("tool", f"result {n}", tool_call_id=cid, name=name))
        out.append(Message("assistant", f"answer {n}"))
    out.append(Message("user", "and now?"))
    return out


def _encode(provider: str) -> dict[str, Any]:
    spec = get_spec(provider)
    call = Call(_history(), Target(spec, "m", "https://example.invalid/v1", "k"))
    body: dict[str, Any] = json.loads(get_codec(spec).encode(call).body)
    return body


def test_anthropic_gets_valid_unique_ids_paired_with_their_results() -> None:
    body = _encode("anthropic")
    uses = [b for m in body["messages"] for b in m["content"] if b["type"] == "tool_use"]
    results = [b for m in body["messages"] for b in m["content"] if b["type"] == "tool_result"]
    ids = [b["id"] for b in uses]
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", i) for i in ids)
    assert len(set(ids)) == len(ids) == 6  # "`tool_use` ids must be unique"
    assert [b["tool_use_id"] for b in results] == ids  # each result answers its own call
    assert [json.loads(json.dumps(b["input"]))["n"] for b in uses] == list(range(6))
    assert ids[0] == "call_Ab12Cd34Ef56Gh78Ij90Kl12" and ids[2] == "call_0"  # valid: kept
    assert _encode("anthropic") == body  # deterministic: prompt caching sees one prefix


@pytest.mark.parametrize("provider", ["mistral"])
def test_mistral_gets_nine_character_ids_paired_with_their_results(provider: str) -> None:
    body = _encode(provider)
    calls = [c["id"] for m in body["messages"] for c in m.get("tool_calls") or ()]
    results = [m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"]
    assert all(re.fullmatch(r"[a-zA-Z0-9]{9}", i) for i in calls)
    assert len(set(calls)) == len(calls)  # Gemini's call_0 twice: two ids
    assert results == calls and calls[-1] == "Ab3dE6gH9"


@pytest.mark.parametrize("provider", ["openai", "azure"])
def test_openai_keeps_ids_it_accepts_and_maps_the_rest(provider: str) -> None:
    history = _history()
    long_id = "fc_0f0e50a1476a6c35006912c58dc9f8819192c25864eb16f07f"  # Responses, 53
    history[1].tool_calls[0] = ToolCall(long_id, "get", {"n": 0}, '{"n": 0}')
    history[2].tool_call_id = long_id
    spec = get_spec(provider)
    target = Target(spec, "m", "https://example.invalid/v1", "k",
                    {"api_version": "2024-10-21"} if provider == "azure" else {})
    body = json.loads(get_codec(spec).encode(Call(history, target)).body)
    calls = [c["id"] for m in body["messages"] for c in m.get("tool_calls") or ()]
    results = [m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"]
    assert all(len(i) <= 40 for i in calls) and len(set(calls)) == len(calls)
    assert results == calls
    assert calls[1:3] == ["functions.get_weather:0", "call_0"]  # accepted: kept


def test_gemini_pairs_every_result_with_its_function() -> None:
    spec = get_spec("gemini")
    call = Call(_history(), Target(spec, "gemini-2.5-flash",
                                   "https://example.invalid", "k"))
    body = json.loads(get_codec(spec).encode(call).body)
    parts = [p for c in body["contents"] for p in c["parts"]]
    calls = [p["functionCall"] for p in parts if "functionCall" in p]
    responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
    assert len(calls) == len(responses) == 6
    assert [r["name"] for r in responses] == ["get"] * 6
    assert [r["response"] for r in responses] == [{"result": f"result {n}"} for n in range(6)]
    signed = next(p for p in parts if p.get("thoughtSignature"))
    assert signed["thoughtSignature"] == "c2ln+/=="


def test_anthropic_pairs_results_when_one_answer_repeats_an_id() -> None:
    calls = [ToolCall("dup", "get", {"n": n}, json.dumps({"n": n})) for n in range(2)]
    history = [Message("user", "q"), Message("assistant", "", calls),
               Message("tool", "r0", tool_call_id="dup", name="get"),
               Message("tool", "r1", tool_call_id="dup", name="get")]
    spec = get_spec("anthropic")
    body = json.loads(get_codec(spec).encode(
        Call(history, Target(spec, "m", "https://example.invalid/v1", "k"))).body)
    uses = [b["id"] for m in body["messages"] for b in m["content"] if b["type"] == "tool_use"]
    results = [b["tool_use_id"] for m in body["messages"] for b in m["content"]
               if b["type"] == "tool_result"]
    assert len(set(uses)) == 2 and results == uses
