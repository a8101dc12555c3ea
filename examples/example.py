"""Six modelwire examples, each runnable as written.

    python examples/example.py                  # all six
    python examples/example.py streaming        # just one (names below)

Which model answers: ``EXAMPLE_MODEL`` if set (``openai/gpt-4o-mini`` with
OPENAI_API_KEY, ``local/smollm2-135m-instruct`` for the embedded local model,
...), else ``mock/echo``: the built-in mock provider, which needs no key and
no network and echoes your message back. Settings can also come from a file:
copy examples/example.env to examples/.env (or point ``EXAMPLE_ENV_FILE`` at
one); variables already set in the environment win.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import modelwire
from modelwire.mock import MockReply

HERE = Path(__file__).resolve().parent


def load_env_file(path: Path) -> None:
    """KEY=VALUE lines (``#`` comments, also after a value; an optional ``export``);
    never overrides the real environment."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.removeprefix("export ").split("=", 1)
            value = value.strip()
            if value[:1] in ("'", '"') and value[0] in value[1:]:
                value = value[1:value.index(value[0], 1)]  # quoted: taken as written
            else:
                value = value.split(" #", 1)[0].split("\t#", 1)[0].strip()
            os.environ.setdefault(key.strip(), value)


def concrete(model: str) -> str:
    """An alias's first configured route ('<provider>/<model>'); an id as it is."""
    if "/" in model:
        return model
    with modelwire.Client() as client:
        try:
            return client.resolve(model).name
        except modelwire.ModelwireError as e:  # unknown, or no key for any of its routes
            sys.exit(f"EXAMPLE_MODEL={model!r}: {type(e).__name__}: {e}")


load_env_file(Path(os.environ.get("EXAMPLE_ENV_FILE", HERE / ".env")))
MODEL = os.environ.get("EXAMPLE_MODEL") or "mock/echo"  # an id or an alias
MODEL_ID = concrete(MODEL)
try:
    MAX_TOKENS = int(os.environ.get("EXAMPLE_MAX_TOKENS") or "32")
except ValueError:
    sys.exit(f"EXAMPLE_MAX_TOKENS must be a whole number, got "
             f"{os.environ['EXAMPLE_MAX_TOKENS']!r}")


def basic_usage() -> None:
    """One call, one normalized Response."""
    with modelwire.Client() as client:
        response = client.complete(MODEL, "Say hello in five words.", max_tokens=MAX_TOKENS)
    print("text:", response.text.strip())
    print("served by:", f"{response.provider}/{response.model}")
    u = response.usage  # `source` says whether the provider reported these numbers
    print(f"usage: {u.input_tokens} in, {u.output_tokens} out ({u.source})")


def provider_selection() -> None:
    """Models as clients: an alias routes to the first provider that is configured."""
    routes = ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5", MODEL_ID]
    with modelwire.Client(aliases={"my-model": routes}) as client:
        model = client.model("my-model")
        print("routes:", ", ".join(model.routes))
        print("serving from:", model.provider)  # the first route whose key is set
        response = model.complete("Name a colour.", max_tokens=MAX_TOKENS)
        for attempt in response.attempts:  # a route that failed (a bad key, ...) says why
            if attempt.error:
                print(f"  {attempt.provider}/{attempt.model} failed: {attempt.error[:100]}")
        print("answer:", response.text.strip(), f"(from {response.provider}/{response.model})")
        provider = MODEL_ID.split("/", 1)[0]
        model.set_provider(provider, fallback=False)  # pin one route
        print("pinned to:", [t.name for t in model.targets()])


def streaming() -> None:
    """Text as it arrives; the final Response afterwards."""
    with modelwire.Client() as client:
        print("stream: ", end="")
        with client.stream(MODEL, "Count from one to five.", max_tokens=MAX_TOKENS) as stream:
            for event in stream:
                if isinstance(event, modelwire.TextDelta):
                    print(event.text, end="", flush=True)
        print()
        print("finish reason:", stream.response.finish_reason)


def error_handling_and_fallback() -> None:
    """Typed errors, and a fallback that takes over when the first target fails."""
    with modelwire.Client(max_retries=0) as client:
        # The mock provider can script failures: its next answer is a 503.
        client.mock.script(MockReply(status=503, error="the mock is down for a moment"))
        response = client.complete("mock/flaky", "Are you there?", fallbacks=[MODEL],
                                   max_tokens=MAX_TOKENS)
        for attempt in response.attempts:
            print(f"tried {attempt.provider}/{attempt.model}:", attempt.error or "served")

        client.mock.script(MockReply(status=429, headers={"retry-after": "3"}))
        try:
            client.complete("mock/busy", "Hello?")
        except modelwire.RateLimitError as e:  # every error carries the same fields
            print(f"{type(e).__name__}: retry after {e.retry_after}s "
                  f"(provider={e.provider}, status={e.status}, retryable={e.retryable})")
        try:
            client.complete("no-such-model", "Hello?")
        except modelwire.ConfigurationError as e:  # caller mistakes: before any traffic
            print(f"{type(e).__name__}: {str(e)[:60]}...")


def configuration() -> None:
    """Aliases, default model and fallbacks from a config file; timeouts from code."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"  # normally ~/.config/modelwire/config.toml
        path.write_text(f'default_model = "everyday"\n\n[aliases]\neveryday = ["{MODEL_ID}"]\n')
        with modelwire.Client(config=path, timeout=modelwire.Timeouts(total=120),
                              max_retries=1) as client:
            response = client.complete(None, "Which model are you?", max_tokens=MAX_TOKENS)
            print("default model from the file:", f"{response.provider}/{response.model}")
            print("known aliases:", ", ".join(client.routes.names()))


def integration_through_facades() -> None:
    """Code written for the older interfaces runs unchanged on modelwire."""
    from modelwire.compat import LLMCommunication, RateLimitException, SimpleLLMService

    # the old (provider, model) pair; a full id or an alias as `model` names both
    with LLMCommunication(model=MODEL, max_tokens=MAX_TOKENS) as llm:
        reply = llm.generate_response("Summarize modelwire in one line.")
        print("LLMResponse:", reply.content.strip()[:60], f"({reply.usage.total_tokens} tokens)")
        print("legacy keys:", sorted(reply.to_legacy_format()))
        print("provider info:", llm.get_provider_info()["model_id"])
    service = SimpleLLMService(provider="mock", max_retries=0)
    print("simple_llm:", service.simple_llm("old code keeps working"))
    service.communication.client.mock.script(MockReply(status=429))
    try:
        service.llm_call("rate limited?")
    except RateLimitException as e:  # the old except clause still catches it
        print("old except caught:", type(e).__name__, isinstance(e, modelwire.RateLimitError))
    service.close()


EXAMPLES: dict[str, Callable[[], None]] = {
    "basic_usage": basic_usage,
    "provider_selection": provider_selection,
    "streaming": streaming,
    "error_handling_and_fallback": error_handling_and_fallback,
    "configuration": configuration,
    "integration_through_facades": integration_through_facades,
}


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in EXAMPLES]
    if unknown:
        print(f"unknown example(s): {', '.join(unknown)}; choose from {', '.join(EXAMPLES)}",
              file=sys.stderr)
        return 2
    failed = 0
    for name in names or list(EXAMPLES):
        print(f"== {name} ({MODEL})", flush=True)
        try:
            EXAMPLES[name]()
        except modelwire.ModelwireError as e:  # a bad key, no network, ...: say so, go on
            failed += 1
            print(f"example {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
