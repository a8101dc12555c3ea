"""A legacy app's except clauses against real failures from the fault server.

Code written for the old interfaces catches RateLimitException,
AuthenticationException, ProviderUnavailableException and LLMException; every
failure a provider can produce must land in one of them (never escape as a
raw aiohttp/asyncio error), and the same class as it always did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import modelwire
from modelwire.compat import (
    AuthenticationException,
    ChatClient,
    CircuitBreaker,
    ConfigurationValidator,
    LlmClientFactory,
    LLMCommunication,
    LLMException,
    MetricsCollector,
    ProviderManager,
    ProviderUnavailableException,
    RateLimitException,
    ResponseCache,
    RetryHandler,
    ServiceFactory,
    SimpleLLMService,
)
from modelwire.testing import Fault, FaultServer


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer.run_in_thread() as s:
        yield s


@pytest.fixture
def comm(server: FaultServer) -> Iterator[LLMCommunication]:
    server.reset()
    c = LLMCommunication("openai", model="gpt-4o", api_key="sk-fake-legacy-0000000000",
                         base_url=server.url_for("openai"), timeout=0.5, max_retries=0,
                         circuit_breaker=CircuitBreaker(failure_threshold=1000))
    yield c
    c.close()
    server.reset()


COMPLETE = [
    (Fault.status(429, retry_after=0.01), RateLimitException),
    (Fault.status(401), AuthenticationException),
    (Fault.status(403), AuthenticationException),
    (Fault.status(500), ProviderUnavailableException),
    (Fault.status(503), ProviderUnavailableException),
    (Fault.html(502), ProviderUnavailableException),
    (Fault.error_200(), ProviderUnavailableException),
    (Fault.slow_first_byte(5), ProviderUnavailableException),  # a timeout
    (Fault.reset_before_headers(), ProviderUnavailableException),  # a connection error
    (Fault.status(400), LLMException),
    (Fault.html(), LLMException),  # a malformed answer
    (Fault.redirect(), LLMException),
]


@pytest.mark.parametrize(("fault", "legacy"), COMPLETE, ids=lambda x: getattr(x, "kind", None)
                         or getattr(x, "__name__", str(x)))
def test_generate_response_failures_land_in_the_old_classes(
        comm: LLMCommunication, server: FaultServer, fault: Fault,
        legacy: type[LLMException]) -> None:
    server.script(fault)
    with pytest.raises(LLMException) as info:
        comm.generate_response([{"role": "user", "content": "hi"}])
    assert isinstance(info.value, legacy), type(info.value).__mro__
    assert isinstance(info.value, modelwire.ModelwireError)
    assert "sk-fake-legacy" not in str(info.value)


STREAM = [
    (Fault.reset_mid_stream(2), ProviderUnavailableException),  # connection lost mid-way
    (Fault.cut_stream(2), ProviderUnavailableException),  # ended before its terminal event
    (Fault.stall(2, 5), ProviderUnavailableException),  # a timeout mid-way
    (Fault.status(429, retry_after=0.01), RateLimitException),
    (Fault.status(401), AuthenticationException),
    (Fault.malformed_chunk(1), LLMException),
    (Fault.invalid_utf8(1), LLMException),
]


@pytest.mark.parametrize(("fault", "legacy"), STREAM)
def test_generate_stream_failures_land_in_the_old_classes(
        comm: LLMCommunication, server: FaultServer, fault: Fault,
        legacy: type[LLMException]) -> None:
    server.script(fault)
    with pytest.raises(LLMException) as info:
        for _ in comm.generate_stream("hi"):
            pass
    assert isinstance(info.value, legacy), type(info.value).__mro__


def test_a_stream_cut_mid_way_keeps_its_partial_text(comm: LLMCommunication,
                                                     server: FaultServer) -> None:
    server.script(Fault.reset_mid_stream(3))
    got: list[str] = []
    with pytest.raises(ProviderUnavailableException) as info:
        for piece in comm.generate_stream("hi"):
            got.append(piece)
    assert isinstance(info.value, modelwire.StreamInterruptedError)
    assert got and info.value.partial is not None
    assert info.value.partial.text == "".join(got)


# --- detection as modelwire itself decides it --------------------------------------------


def _fake_claude(tmp_path: Path) -> Path:
    program = tmp_path / "bin" / "claude"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    return program


def test_claude_cli_detection_follows_modelwires_own_lookup(tmp_path: Path) -> None:
    # Regression: detection used shutil.which("claude") on the process PATH, so
    # CLAUDE_CLI_PATH (which the claude-cli provider honours) and the env's PATH were
    # ignored.
    program = _fake_claude(tmp_path)
    assert ProviderManager({"PATH": "/nonexistent"}).detect_available_providers() == ["local"]
    by_var = ProviderManager({"PATH": "/nonexistent", "CLAUDE_CLI_PATH": str(program)})
    assert by_var.detect_available_providers() == ["claude-cli", "local"]
    on_path = ProviderManager({"PATH": str(program.parent), "OPENAI_API_KEY": "sk-o"})
    assert on_path.detect_available_providers() == ["openai", "claude-cli", "local"]
    only_anthropic = ProviderManager({"PATH": "/nonexistent", "ANTHROPIC_API_KEY": "sk-ant-a"})
    assert only_anthropic.get_active_provider() == "anthropic"
    with pytest.raises(ProviderUnavailableException, match="CLAUDE_CLI_PATH"):
        ProviderManager({"PATH": "/nonexistent"}).switch_provider("claude-cli")
    assert by_var.switch_provider("claude-cli") == "claude-cli"


# --- odd configurations ----------------------------------------------------------------


@pytest.mark.parametrize("option", [{"cache": True}, {"metrics": True}, {"retry_handler": 3},
                                    {"circuit_breaker": "x"}, {"client": object()},
                                    {"env": ["OPENAI_API_KEY"]}])
def test_helper_options_of_the_wrong_type_are_typed_errors(option: dict[str, object]) -> None:
    # Regression: cache=True built fine and then raised AttributeError inside the first
    # call; retry_handler=3 and circuit_breaker="x" were silently ignored.
    name = next(iter(option))
    with pytest.raises(modelwire.ConfigurationError, match=f"{name}= must be a") as info:
        ServiceFactory.create_llm_service({"provider": "mock", **option})
    assert isinstance(info.value, LLMException)


@pytest.mark.parametrize("option", ["timeout", "max_tokens"])
def test_zero_is_a_value_not_unset(option: str) -> None:
    # Regression: timeout=0 / max_tokens=0 fell through `or` to the defaults silently.
    with pytest.raises(modelwire.InvalidParameterError, match=option), \
            LLMCommunication("mock", **{option: 0}) as c:
        c.generate_text("q")


def test_a_modelwire_alias_as_the_old_model_setting(tmp_path: Path) -> None:
    env = {"OPENROUTER_API_KEY": "sk-or-x", "PATH": "/nonexistent"}
    # no provider: the alias itself, with its routes as fallbacks
    with LLMCommunication(model="deepseek-chat", env=env, client=modelwire.Client(
            env=env, config=False)) as c:
        assert c.model_id == "deepseek-chat" and c.provider == "openrouter"
        info = c.get_provider_info()  # Regression: IndexError on an id without a slash
        assert info["model"] == "deepseek-chat" and info["provider"] == "openrouter"
        c.client.close()
    # a provider named: the alias's route there (not "openrouter/deepseek-chat")
    with LLMCommunication("openrouter", model="deepseek-chat", env=env) as c:
        assert c.model_id == "openrouter/deepseek/deepseek-chat"
    with LLMCommunication("mock", model="smollm2") as c:  # no route on mock: a mock model
        assert c.model_id == "mock/smollm2"
    with LLMCommunication(model="smollm2", env={}) as c:  # keyless: the local model
        assert (c.model_id, c.provider) == ("smollm2", "local")


def test_simple_llm_model_override_takes_an_alias() -> None:
    with modelwire.Client(aliases={"house": ["mock/house-model"]}, config=False) as client:
        service = SimpleLLMService(provider="openai", model="gpt-4o", client=client)
        assert service.simple_llm("echo me", model="house") == "echo me"
        assert client.mock.requests[-1]["model"] == "house-model"
        assert service.simple_llm("again", model="mock/direct") == "again"


# --- the client pool under threads ---------------------------------------------------------

POOL_APP = r"""
import threading
from modelwire.compat import LlmClientFactory, LlmRequest
from modelwire.testing import Fault, FaultServer

with FaultServer.run_in_thread() as server:
    server.default = Fault.slow_first_byte(0.05)
    factory = LlmClientFactory(max_clients=2)
    errors, done = [], []
    def work(i):
        for j in range(3):
            try:
                c = factory.create_client(
                    "chat", "openai/gpt-4o", timeout=10 + (i + j) % 5,
                    api_keys={"openai": "sk-test"},
                    base_urls={"openai": server.url_for("openai")})
                done.append(c.complete_sync(LlmRequest(messages=f"q{i}{j}")).content)
                assert len(factory.pool) <= 2
            except BaseException as e:
                errors.append(repr(e))
    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads: t.start()
    for t in threads: t.join(60)
    assert not any(t.is_alive() for t in threads), "a call hung"
    assert not errors, errors
    assert len(done) == 18 and len(factory.pool) <= 2
    factory.shutdown()
    assert len(factory.pool) == 0
    assert [t.name for t in threading.enumerate() if t.name == "modelwire-loop"] == []
print("POOL OK")
"""


def test_client_pool_under_threads_is_bounded_never_closes_a_call_and_shuts_down() -> None:
    # Regression: with more configurations than max_clients, eviction closed a client
    # another thread was calling through, and that call hung forever.
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-X", "dev", "-W", "always", "-c", POOL_APP],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "POOL OK" in out.stdout, out.stderr[-2000:]
    assert "Unclosed" not in out.stderr and "never awaited" not in out.stderr, out.stderr


# --- careless arguments: typed errors, never a raw TypeError/AttributeError ------------------


@pytest.mark.parametrize("messages", [None, 42, {"role": "user", "content": "x"}])
def test_generate_response_with_a_wrong_messages_type(messages: object) -> None:
    with LLMCommunication("mock") as c, pytest.raises(modelwire.InvalidMessageError,
                                                      match="messages must be") as info:
        c.generate_response(messages)  # type: ignore[arg-type]
    assert isinstance(info.value, LLMException)


@pytest.mark.parametrize("make", [
    lambda: LLMCommunication("mock", retry_handler=RetryHandler(base_delay="1")),  # type: ignore[arg-type]
    lambda: ResponseCache("5"),  # type: ignore[arg-type]
    lambda: ResponseCache(4, ttl=-1),
    lambda: LlmClientFactory().create_client("chat", "mock/m", bogus=1),
    lambda: ChatClient("mock/m", bogus=1),
])
def test_bad_helper_settings_are_llm_exceptions(make: Callable[[], object]) -> None:
    # Regression: these raised a ConfigurationError that was not an LLMException, or a
    # raw TypeError.
    with pytest.raises(modelwire.ConfigurationError) as info:
        make()
    assert isinstance(info.value, LLMException)


def test_configuration_validator_on_a_non_dict() -> None:
    assert ConfigurationValidator().validate(None) == [  # type: ignore[arg-type]
        "the configuration must be a dict, got NoneType"]


def test_metrics_snapshot_while_other_threads_call() -> None:
    import threading
    metrics = MetricsCollector()
    with LLMCommunication("mock", metrics=metrics) as c:
        def work(i: int) -> None:
            for j in range(20):
                c.client.complete(f"mock/m{i}-{j}", "x")  # a new target each call
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            metrics.snapshot()  # never "dictionary changed size during iteration"
        for t in threads:
            t.join()
        snap = metrics.snapshot()
    assert snap["requests"] == 80 and snap["by_provider"] == {"mock": 80}
    assert snap["tokens"]["input/reported"] == 80 and snap["cost_usd"] == 0.0


@pytest.mark.parametrize(("statuses", "legacy"), [
    ((429, 429), RateLimitException), ((401, 403), AuthenticationException),
    ((429, 500), None),
])
def test_all_fallbacks_failing_for_one_reason_is_that_old_class_too(
        statuses: tuple[int, int], legacy: type[LLMException] | None) -> None:
    # Regression: every target rate limited raised only ProviderUnavailableException,
    # so old `except RateLimitException:` back-off code missed it.
    import pickle

    from modelwire.mock import MockReply
    with LLMCommunication("mock", model="a", fallbacks=["mock/b"], max_retries=0) as c:
        c.client.mock.script(*(MockReply(status=s) for s in statuses))
        with pytest.raises(ProviderUnavailableException) as info:
            c.generate_text("hi")
    error = info.value
    assert isinstance(error, modelwire.AllTargetsFailedError)
    if legacy is None:
        assert not isinstance(error, (RateLimitException, AuthenticationException))
    else:
        assert isinstance(error, legacy)
    back = pickle.loads(pickle.dumps(error))
    assert type(back).__mro__[1:] == type(error).__mro__[1:]


def test_a_missing_claude_program_is_provider_unavailable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # the transport looks on the real PATH
    monkeypatch.delenv("CLAUDE_CLI_PATH", raising=False)
    with LLMCommunication("claude-cli", env={"PATH": "/nonexistent"}) as c, \
            pytest.raises(ProviderUnavailableException, match="CLAUDE_CLI_PATH"):
        c.generate_text("hi")


@pytest.mark.parametrize("call", ["complete_sync", "stream_sync"])
def test_llm_request_mistakes_are_typed(call: str) -> None:
    # Regression: options={"model": ...} raised "got multiple values for argument" and a
    # plain string instead of an LlmRequest an AttributeError.
    from modelwire.compat import LlmRequest
    with ChatClient("mock/m") as client:
        run = getattr(client, call)
        with pytest.raises(modelwire.ConfigurationError, match="set the LlmRequest field"):
            list(run(LlmRequest(messages="hi", options={"model": "mock/x"})))
        with pytest.raises(modelwire.ConfigurationError, match="takes an LlmRequest") as info:
            list(run("hi"))
        assert isinstance(info.value, LLMException)
        assert "".join(client.stream_sync(LlmRequest(messages="a b"))) == "a b"


def test_metrics_snapshot_prices_the_usage() -> None:
    # Regression: cost_usd stayed 0.0 whatever was spent.
    from modelwire.observe.cost import cost_of
    usage = modelwire.Usage(1000, 100, 1100, source="reported")
    metrics = MetricsCollector()
    metrics.record(modelwire.Response(text="x", model="gpt-4o-mini", provider="openai",
                                      usage=usage))
    snap = metrics.snapshot()
    expected = cost_of("openai", "gpt-4o-mini", usage).total
    assert expected and snap["cost_usd"] == pytest.approx(expected)
    assert snap["cost_note"] is None
    metrics.record(modelwire.Response(text="x", model="no-such-model-9", provider="openai",
                                      usage=usage))
    snap = metrics.snapshot()
    assert snap["cost_usd"] is None and "openai/no-such-model-9" in snap["cost_note"]


@pytest.mark.parametrize("option", [{"api_key": "sk-x-0000000000"}, {"timeout": 5},
                                    {"max_retries": 0}, {"fallbacks": ["mock/b"]},
                                    {"circuit_breaker": CircuitBreaker(2)}])
def test_client_settings_next_to_a_shared_client_are_refused(option: dict[str, object]) -> None:
    # Regression: with client= given these were silently ignored.
    with modelwire.Client() as shared, \
            pytest.raises(modelwire.ConfigurationError, match="shared client") as info:
        LLMCommunication("mock", client=shared, **option)
    assert isinstance(info.value, LLMException) and "sk-x" not in str(info.value)


EXIT_APP = r"""
from modelwire.testing import FaultServer
from modelwire.compat import LLMCommunication, LlmClientFactory, LlmRequest
running = FaultServer.run_in_thread()  # kept: dropping it would stop the server
server = running.__enter__()
llm = LLMCommunication("openai", model="gpt-4o", api_key="sk-test-00000000",
                       base_url=server.url_for("openai"))
print(llm.generate_text("hi"))
stream = llm.generate_stream("a b c")
print(next(stream))  # abandoned mid-stream
factory = LlmClientFactory(2)
client = factory.create_client("chat", "openai/gpt-4o", api_keys={"openai": "sk-test-0000"},
                               base_urls={"openai": server.url_for("openai")})
print(client.complete_sync(LlmRequest(messages="x")).content)
# an old app that never closes anything: the interpreter exits
"""


def test_an_app_that_closes_nothing_exits_quietly() -> None:
    # Regression: a generate_stream abandoned at exit printed "Exception ignored in
    # <generator ...>" (its close ran on the already closed client).
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-X", "dev", "-W", "always", "-c", EXIT_APP],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.count("Hello") == 3, out.stderr
    assert out.stderr == "", out.stderr
