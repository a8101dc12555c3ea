"""client.model(...) and set_provider(...) as a careless caller uses them."""

from __future__ import annotations

import gc

import pytest

import modelwire


@pytest.fixture
def client() -> modelwire.Client:
    return modelwire.Client(aliases={"house": ["mock/h1", "openai/gpt-4o-mini"]},
                            config=False, env={})


@pytest.mark.parametrize(("provider", "error", "match"), [
    ("nope", modelwire.ConfigurationError, "no route on provider 'nope'; its routes: mock/h1"),
    ("openai", modelwire.MissingAPIKeyError, "OPENAI_API_KEY"),
    ("", modelwire.ConfigurationError, "no route on provider ''"),
])
def test_a_failed_set_provider_is_typed_and_changes_nothing(
        client: modelwire.Client, provider: str, error: type[Exception], match: str) -> None:
    model = client.model("house")
    with pytest.raises(error, match=match):
        model.set_provider(provider)
    assert model.provider == "mock" and model.complete("still here").text == "still here"
    client.close()


def test_unknown_names_list_the_aliases_and_suggest_a_close_one(
        client: modelwire.Client) -> None:
    with pytest.raises(modelwire.InvalidModelError, match=r"known aliases: .*house") as info:
        client.model("nosuch")
    assert "did you mean" not in str(info.value)
    with pytest.raises(modelwire.InvalidModelError, match="did you mean 'deepseek-chat'"):
        client.complete("deepseek_chat", "hi")
    client.close()


def test_a_stream_keeps_its_client_alive() -> None:
    # Regression: Model.stream did not hold the Client, so a client made inline was
    # collected (and closed) before the stream was read.
    stream = modelwire.Client().model("mock/m").stream("a b c")
    gc.collect()
    assert "".join(e.text for e in stream if isinstance(e, modelwire.TextDelta)) == "a b c"
    text_stream = modelwire.Client().model("mock/m").stream_text("d e")
    gc.collect()
    assert [e for e in text_stream if isinstance(e, modelwire.TextDelta)]
