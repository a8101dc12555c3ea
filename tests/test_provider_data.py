"""Provider-private data on tool calls goes back only to the provider it came from."""

from __future__ import annotations

import json
from typing import Any

from modelwire.pipeline import Call, Target
from modelwire.providers.gemini import SIGNATURE_SEP
from modelwire.registry import get_codec, get_spec
from modelwire.response import ToolCall
from modelwire.types import Message


def body(provider: str, messages: list[Message]) -> dict[str, Any]:
    spec = get_spec(provider)
    call = Call(messages=messages, target=Target(spec, "m", "http://127.0.0.1:1", "k"))
    return json.loads(get_codec(spec).encode(call).body)  # type: ignore[no-any-return]


def history(call: ToolCall) -> list[Message]:
    return [Message("user", "q"), Message("assistant", "", [call]),
            Message("tool", "42", tool_call_id=call.id)]


SIGNED = ToolCall("call_ab12", "f", {"n": 1}, '{"n": 1}',
                  provider_data={"gemini": {"thoughtSignature": "c2lnbmF0dXJl"}})


def test_gemini_gets_its_signature_back() -> None:
    part = body("gemini", history(SIGNED))["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == "c2lnbmF0dXJl"
    assert part["functionCall"]["id"] == "call_ab12"


def test_other_providers_see_a_plain_id_and_no_private_data() -> None:
    for provider in ("openai", "anthropic", "openai-responses"):
        text = json.dumps(body(provider, history(SIGNED)))
        assert "c2lnbmF0dXJl" not in text and "thoughtSignature" not in text
        assert "call_ab12" in text


def test_a_signature_from_another_gemini_row_is_not_sent() -> None:
    other = ToolCall("call_1", "f", {}, "{}",
                     provider_data={"vertex": {"thoughtSignature": "b3RoZXI="}})
    part = body("gemini", history(other))["contents"][1]["parts"][0]
    assert "thoughtSignature" not in part


def test_older_packed_ids_are_still_split() -> None:
    old = ToolCall(f"call_x{SIGNATURE_SEP}c2ln", "f", {}, "{}")
    part = body("gemini", history(old))["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == "c2ln" and part["functionCall"]["id"] == "call_x"
