"""modelwire.compat: every old name, exercised over the mock provider."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import modelwire
from modelwire import registry
from modelwire.compat import (
    AuthenticationException,
    BaseLlmClient,
    ChatClient,
    CircuitBreaker,
    ClientPool,
    CompletionClient,
    ConfigurationValidator,
    InputValidator,
    LlmClientFactory,
    LLMCommunication,
    LLMException,
    LlmRequest,
    LLMResponse,
    LlmResponse,
    MetricsCollector,
    ModelRegistry,
    ProviderConfig,
    ProviderManager,
    ProviderUnavailableException,
    RateLimitException,
    ResponseCache,
    RetryHandler,
    SecureConfig,
    ServiceFactory,
    SimpleLLMService,
    StreamingHandler,
    TokenCounter,
    UsageInfo,
    enable_deprecation_warnings,
    translate,
)
from modelwire.middleware.breaker import BreakerPolicy
from modelwire.middleware.retry import RetryPolicy
from modelwire.mock import MockReply
from modelwire.registry import ProviderSpec

SECRET = "sk-ant-test-SECRET-0123456789"


@pytest.fixture
def comm() -> Iterator[LLMCommunication]:
    c = LLMCommunication("mock", model="echo", max_retries=0)
    yield c
    c.close()


def test_import_modelwire_does_not_import_compat() -> None:
    code = ("import sys, modelwire; modelwire.Client; "
            "print([m for m in sys.modules if m.startswith('modelwire.compat')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# --- LLMCommunication and its types ------------------------------------------------------


def test_generate_text_response_and_legacy_format(comm: LLMCommunication) -> None:
    assert comm.generate_text("hello there") == "hello there"
    comm.client.mock.script(MockReply("the answer", usage=(7, 2)))
    r = comm.generate_response([{"role": "user", "content": "q"}])
    assert isinstance(r, LLMResponse)
    assert (r.content, r.model, r.provider) == ("the answer", "echo", "mock")
    assert r.usage == UsageInfo(7, 2, 9, 0.0, "reported")  # the mock is free, and says so
    assert r.usage.cost_note == "mock model: no charge"
    assert r.request_id and r.response_time >= 0 and r.created_at.tzinfo is not None
    legacy = r.to_legacy_format()
    assert legacy["content"] == "the answer" and legacy["usage"]["total_tokens"] == 9
    assert legacy["usage"]["estimated_cost"] == 0.0
    assert legacy["created_at"] == r.created_at.isoformat()


def test_generate_stream_and_last_response(comm: LLMCommunication) -> None:
    assert list(comm.generate_stream("one two three")) == ["one", " two", " three"]
    assert comm.last_response is not None and comm.last_response.content == "one two three"


def test_system_prompt_and_defaults_are_sent() -> None:
    with LLMCommunication("mock", system_prompt="Be brief.", max_tokens=5,
                          temperature=0.2) as c:
        c.generate_text("hi")
        body = c.client.mock.requests[-1]
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["max_tokens"] == 5 and body["temperature"] == 0.2


def test_provider_info_masks_the_key_and_health_check() -> None:
    with LLMCommunication("mock", api_key=SECRET) as c:
        info = c.get_provider_info()
        assert info["provider"] == "mock" and info["has_api_key"]
        assert SECRET not in repr(info) and info["api_key"].endswith(SECRET[-4:])
        assert info["available_providers"][-1] == "local"
        health = c.health_check()
    assert health["healthy"] is True and health["provider"] == "mock"


def test_a_full_model_id_names_the_provider() -> None:
    with LLMCommunication("openai", model="mock/other", api_key="sk-for-mock-000") as c:
        assert (c.provider, c.model_id) == ("mock", "mock/other")
        assert c.generate_text("routed") == "routed"
        assert c.client.aio.settings.api_keys == {"mock": "sk-for-mock-000"}


def test_unknown_option_is_a_configuration_error() -> None:
    with pytest.raises(modelwire.ConfigurationError, match="unknown LLMCommunication") as e:
        LLMCommunication("mock", modle="x")
    assert isinstance(e.value, LLMException)


# --- errors: both trees -----------------------------------------------------------------


@pytest.mark.parametrize("status, modern, legacy", [
    (429, modelwire.RateLimitError, RateLimitException),
    (401, modelwire.AuthenticationError, AuthenticationException),
    (403, modelwire.PermissionDeniedError, AuthenticationException),
    (503, modelwire.ServerError, ProviderUnavailableException),
    (400, modelwire.BadRequestError, LLMException),
])
def test_errors_are_both_modelwire_and_legacy(comm: LLMCommunication, status: int,
                                              modern: type[Exception],
                                              legacy: type[Exception]) -> None:
    comm.client.mock.script(MockReply(status=status, headers={"retry-after": "7"}))
    with pytest.raises(modern) as info:
        comm.generate_text("q")
    assert isinstance(info.value, legacy) and isinstance(info.value, LLMException)
    assert isinstance(info.value, modelwire.ProviderError)
    assert info.value.status == status and info.value.provider == "mock"
    if status == 429:
        assert info.value.retry_after == 7.0
    # and the old spelling catches it as well
    comm.client.mock.script(MockReply(status=status))
    try:
        comm.generate_text("q")
    except legacy as e:
        assert type(e).__name__ == modern.__name__
    else:  # pragma: no cover
        pytest.fail("not raised")


def test_stream_errors_and_missing_keys_are_translated() -> None:
    with LLMCommunication("mock", max_retries=0) as c:
        c.client.mock.script(MockReply(status=429))
        with pytest.raises(RateLimitException):
            list(c.generate_stream("q"))
    c2 = LLMCommunication("openai", env={})
    with pytest.raises(modelwire.MissingAPIKeyError) as info:
        c2.generate_text("q")
    assert isinstance(info.value, AuthenticationException)
    c2.close()


def test_translate_is_idempotent_and_leaves_others_alone() -> None:
    e = modelwire.OverloadedError("busy", provider="p")
    assert translate(e) is e and translate(e) is e
    assert isinstance(e, ProviderUnavailableException) and isinstance(e, modelwire.OverloadedError)
    import pickle
    back = pickle.loads(pickle.dumps(e))
    assert isinstance(back, modelwire.OverloadedError) and isinstance(back, LLMException)
    assert (back.message, back.provider) == ("busy", "p")
    plain = ValueError("x")
    assert translate(plain) is plain and not isinstance(plain, LLMException)
    assert isinstance(LLMException("m", provider="p"), Exception)


# --- providers --------------------------------------------------------------------------


def fake_claude_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._REGISTRY, "claude-cli", ProviderSpec(
        "claude-cli", registry.OPENAI, "mock://", requires_key=False, transport="mock"))


def test_detection_order_and_claude_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ProviderManager({}).get_active_provider() == "local"  # no key, no PATH
    env = {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-ant-a"}
    on_path = ProviderManager(env, which=lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(registry, "_plugins_loaded", True)
    monkeypatch.delitem(registry._REGISTRY, "claude-cli", raising=False)
    assert on_path.detect_available_providers() == ["anthropic", "openai", "local"]
    fake_claude_cli(monkeypatch)
    assert on_path.detect_available_providers() == ["anthropic", "openai", "claude-cli", "local"]
    off_path = ProviderManager({"OPENAI_API_KEY": "sk-o"}, which=lambda name: None)
    assert off_path.detect_available_providers() == ["openai", "local"]


def test_switch_provider() -> None:
    pm = ProviderManager({"OPENAI_API_KEY": "sk-o"}, which=lambda name: None)
    assert pm.get_active_provider() == "openai"
    assert pm.switch_provider("mock") == "mock" and pm.get_active_provider() == "mock"
    with pytest.raises(ProviderUnavailableException, match="ANTHROPIC_API_KEY"):
        pm.switch_provider("anthropic")
    with pytest.raises(modelwire.UnknownProviderError) as info:
        pm.switch_provider("nosuch")
    assert isinstance(info.value, ProviderUnavailableException)
    assert pm.get_provider_config().name == "mock"


def test_provider_config_from_env() -> None:
    env = {"ANTHROPIC_API_KEY": SECRET, "ANTHROPIC_MODEL": "claude-x",
           "ANTHROPIC_MAX_TOKENS": "300", "OPENAI_API_KEY": "sk-o", "OPENAI_MODEL": "gpt-x",
           "OPENAI_MAX_TOKENS": "50", "LLM_TIMEOUT": "12.5"}
    a = ProviderConfig.from_env("anthropic", env)
    assert (a.model, a.api_key, a.max_tokens, a.timeout) == ("claude-x", SECRET, 300, 12.5)
    assert SECRET not in repr(a) and a.model_id == "anthropic/claude-x"
    o = ProviderConfig.from_env("openai", env)
    assert (o.model, o.max_tokens) == ("gpt-x", 50)
    assert ProviderConfig.from_env("openai", {}).model == "gpt-4o-mini"  # modelwire's default
    with pytest.raises(modelwire.ConfigurationError, match="OPENAI_MAX_TOKENS='lots'") as e:
        ProviderConfig.from_env("openai", {"OPENAI_MAX_TOKENS": "lots"})
    assert isinstance(e.value, LLMException)


def test_communication_uses_env_settings() -> None:
    env = {"OPENAI_API_KEY": "sk-o", "OPENAI_MODEL": "gpt-x", "OPENAI_MAX_TOKENS": "50",
           "LLM_TIMEOUT": "9"}
    with LLMCommunication(env=env) as c:  # detection: openai is the first with a key
        assert c.model_id == "openai/gpt-x" and c.max_tokens == 50
        assert c.client.aio.timeouts.total == 9.0


# --- services ---------------------------------------------------------------------------


def test_simple_service_and_factory() -> None:
    service = ServiceFactory.create_llm_service({"provider": "mock", "model": "echo"})
    assert isinstance(service, SimpleLLMService)
    assert service.llm_call("ping pong") == "ping pong"
    assert service.simple_llm("alpha beta", model="other", max_tokens=3) == "alpha beta"
    body = service.communication.client.mock.requests[-1]
    assert body["model"] == "other" and body["max_tokens"] == 3
    service.close()
    from_config = ServiceFactory.create_llm_service(ProviderConfig("mock", model="m"))
    assert from_config.communication.model_id == "mock/m"
    from_config.close()
    with pytest.raises(LLMException, match="dict or a ProviderConfig"):
        ServiceFactory.create_llm_service(42)  # type: ignore[arg-type]


# --- thin resilience / hygiene names ----------------------------------------------------


def test_retry_handler_and_circuit_breaker_configure_the_middleware() -> None:
    rh = RetryHandler(max_retries=1, base_delay=0.0, max_delay=0.0, jitter=0.0)
    assert rh.client_options() == {"max_retries": 1, "retry": RetryPolicy(0.0, 0.0, 0.0)}
    assert rh.is_retryable(modelwire.ServerError("x")) and not rh.is_retryable(ValueError())
    cb = CircuitBreaker(failure_threshold=2, recovery_timeout=60)
    assert cb.policy == BreakerPolicy(failures=2, cooldown=60, failure_rate=None)
    with LLMCommunication("mock", retry_handler=rh, circuit_breaker=cb) as c:
        c.client.mock.script(*[MockReply(status=500)] * 4)
        for _ in range(2):  # each call is retried once; two failed calls open it
            with pytest.raises(ProviderUnavailableException):
                c.generate_text("q")
        assert len(c.client.mock.requests) == 4
        with pytest.raises(modelwire.CircuitOpenError) as info:
            c.generate_text("q")
        assert isinstance(info.value, ProviderUnavailableException)
        assert len(c.client.mock.requests) == 4  # the open breaker sent nothing
    with pytest.raises(modelwire.ConfigurationError):
        CircuitBreaker(failure_threshold=0).policy  # noqa: B018


def test_circuit_breaker_opens_on_consecutive_failures_only_as_it_always_did() -> None:
    # Regression: the old breaker counted consecutive failures; modelwire's default also
    # opens at a 50% failure rate over 20 calls, which the compat name must not add.
    with LLMCommunication("mock", max_retries=0,
                          circuit_breaker=CircuitBreaker(failure_threshold=3)) as c:
        c.client.mock.script(*[MockReply(status=500), MockReply("ok")] * 15)
        for _ in range(15):
            with pytest.raises(ProviderUnavailableException):
                c.generate_text("q")
            assert c.generate_text("q") == "ok"  # never CircuitOpenError
    assert CircuitBreaker(3, failure_rate=0.5).policy.failure_rate == 0.5


def test_response_cache_hits_and_tenancy() -> None:
    cache = ResponseCache(max_size=2)
    with LLMCommunication("mock", cache=cache) as c:
        first = c.generate_response("same question")
        again = c.generate_response("same question")
        assert again is first and len(c.client.mock.requests) == 1
        assert (cache.hits, cache.misses) == (1, 1)
    k1 = ResponseCache.key("m", ["x"], {}, api_key="tenant-one-key")
    k2 = ResponseCache.key("m", ["x"], {}, api_key="tenant-two-key")
    assert k1 != k2 and "tenant-one-key" not in k1
    now = [0.0]
    timed = ResponseCache(max_size=2, ttl=10, clock=lambda: now[0])
    timed.set("a", 1)
    timed.set("b", 2)
    timed.set("c", 3)  # evicts "a"
    assert timed.get("a") is None and timed.get("c") == 3
    now[0] = 11.0
    assert timed.get("c") is None and len(timed) == 1
    timed.clear()
    assert len(timed) == 0


def test_secure_config() -> None:
    assert SecureConfig.mask_api_key(SECRET) == "sk-***6789"
    assert SecureConfig.mask_api_key("short") == "***" and SecureConfig.mask_api_key(None) == ""
    assert SecureConfig.validate_api_key(SECRET, "anthropic")
    assert not SecureConfig.validate_api_key("sk-proj-abcdefgh", "anthropic")
    assert not SecureConfig.validate_api_key("has space inside", None)
    assert not SecureConfig.validate_api_key("", "openai")
    assert SecureConfig.get_api_key("openai", {"OPENAI_API_KEY": "sk-z"}) == "sk-z"


def test_input_validator_uses_modelwire_validation() -> None:
    v = InputValidator(max_length=10)
    assert v.validate_prompt("hi") == "hi"
    assert v.validate_messages([{"role": "user", "content": "ok"}])[0].text == "ok"
    for bad in ("", None, "x" * 11):
        with pytest.raises(modelwire.InvalidMessageError) as info:
            v.validate_prompt(bad)
        assert isinstance(info.value, LLMException)
    with pytest.raises(LLMException, match="role 'robot'"):
        v.validate_messages([{"role": "robot", "content": "x"}])


# --- the refactoring plan's clients -----------------------------------------------------


async def test_chat_client_async_and_sync() -> None:
    with ChatClient("mock/m") as client:
        assert isinstance(client, BaseLlmClient)
        r = await client.complete(LlmRequest("async hello"))
        assert isinstance(r, LlmResponse) and r.content == "async hello"
        assert client.complete_sync(LlmRequest([{"role": "user", "content": "x"}],
                                               max_tokens=4)).content == "x"
        assert client.client.mock.requests[-1]["max_tokens"] == 4
        assert list(client.stream_sync(LlmRequest("a b"))) == ["a", " b"]
        with pytest.raises(LLMException, match="no messages"):
            client.complete_sync(LlmRequest())
    with ChatClient("mock/m", max_retries=0) as failing:
        failing.client.mock.script(MockReply(status=429), MockReply(status=401))
        with pytest.raises(modelwire.RateLimitError) as info:  # across event loops, too
            await failing.complete(LlmRequest("x"))
        assert isinstance(info.value, RateLimitException)
        with pytest.raises(AuthenticationException):
            failing.complete_sync(LlmRequest("x"))


def test_completion_client_uses_the_text_wire() -> None:
    with CompletionClient("mock/m") as client:
        assert client.complete_sync(LlmRequest(prompt="once upon")).content == "once upon"
        body = client.client.mock.requests[-1]
        assert body["prompt"] == "once upon" and "messages" not in body
        assert list(client.stream_sync(LlmRequest(prompt="x y"))) == ["x", " y"]


def test_factory_pools_clients_per_configuration() -> None:
    with LlmClientFactory(max_clients=2) as factory:
        a = factory.create_client("chat", "mock/a", timeout=5)
        b = factory.create_client("completion", "mock/b", timeout=5)
        assert isinstance(a, ChatClient) and isinstance(b, CompletionClient)
        first = a.client
        assert first is b.client and factory.pool.created == 1
        c = factory.create_client("chat", "mock/c", timeout=6)
        factory.create_client("chat", "mock/d", timeout=7)  # evicts (and closes) timeout=5
        assert len(factory.pool) == 2 and first._loop.loop.is_closed()
        assert c.complete_sync(LlmRequest("alive")).content == "alive"
        # an evicted configuration gets a new client from the pool at its next call
        assert a.complete_sync(LlmRequest("back")).content == "back"
        assert factory.pool.created == 4 and len(factory.pool) == 2
        with pytest.raises(LLMException, match="unknown client kind"):
            factory.create_client("embedding")
        held = c.client
    assert held._loop.loop.is_closed()  # shutdown closed the pool
    with pytest.raises(modelwire.ConfigurationError, match="shut down"):
        c.complete_sync(LlmRequest("late"))


def test_client_pool_keys_hash_credentials() -> None:
    pool = ClientPool(max_size=4)
    try:
        one = pool.get({"api_keys": {"openai": "sk-one"}})
        assert pool.get({"api_keys": {"openai": "sk-one"}}) is one
        assert pool.get({"api_keys": {"openai": "sk-two"}}) is not one
        from modelwire.compat.clients import config_key
        assert "sk-one" not in config_key({"api_keys": {"openai": "sk-one"}})
    finally:
        pool.close()
    assert len(pool) == 0
    with pytest.raises(LLMException):
        ClientPool(0)


def test_model_registry_and_configuration_validator() -> None:
    reg = ModelRegistry({"mine": ["openai/gpt-4o-mini", "mock/fallback"]})
    reg.register("other", "mock/x")
    assert {"mine", "other", "deepseek-chat"} <= set(reg.list_models())
    assert reg.get_routes("mine") == ("openai/gpt-4o-mini", "mock/fallback")
    assert reg.resolve("mine", env={}) == "mock/fallback"
    assert reg.resolve("mine", env={"OPENAI_API_KEY": "k"}) == "openai/gpt-4o-mini"
    with pytest.raises(LLMException):
        reg.register("bad/name", "mock/x")
    v = ConfigurationValidator()
    assert v.validate({"provider": "mock", "model": "echo", "max_tokens": 10}) == []
    problems = v.validate({"provider": "openai", "model": "gpt-4o", "timeout": -1}, env={})
    assert any("timeout" in p for p in problems) and any("OPENAI_API_KEY" in p for p in problems)
    assert v.validate({"model": "no-such-alias"}, env={})[0].startswith("InvalidModelError")
    with pytest.raises(modelwire.ConfigurationError) as info:
        v.validate_or_raise({"max_retries": -1})
    assert isinstance(info.value, LLMException)


# --- observability stand-ins ------------------------------------------------------------


def test_token_counter_says_what_is_estimated() -> None:
    tc = TokenCounter()
    est = tc.count_tokens("abcdefgh")
    assert (est.tokens, est.source) == (2, "estimated") and "no model given" in est.method
    assert tc.count_messages([{"role": "user", "content": "abcd"}]).tokens == 1 + 4
    unknown = tc.count_tokens("abcdefgh", model="some-house-model")
    assert unknown.source == "estimated" and "some-house-model" in unknown.method
    reported = tc.from_usage(modelwire.Usage(3, 4, 7, source="reported"))
    assert (reported.tokens, reported.source, reported.method) == (7, "reported", "provider usage")
    nothing = tc.from_usage(modelwire.Usage(source="none"))
    assert (nothing.tokens, nothing.source) == (0, "none")


def test_token_counter_is_exact_over_modelwire_observe() -> None:
    from modelwire.observe.tokens import count_tokens
    text = "Tokenizers split words like antidisestablishmentarianism unevenly."
    for model, want in (("gpt-4o", "openai/gpt-4o"), ("openai/gpt-4o", "openai/gpt-4o"),
                        ("gpt-4o-mini", "openai/gpt-4o-mini")):  # bare name, id, alias
        c = TokenCounter(model).count_tokens(text)
        assert (c.source, c.model) == ("exact", want)
        assert c.tokens == count_tokens(want, text=text).tokens
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]
    chat = TokenCounter().count_messages(msgs, model="gpt-4")
    assert (chat.source, chat.model) == ("exact", "openai/gpt-4")
    assert chat.tokens == count_tokens("openai/gpt-4", msgs).tokens
    claude = TokenCounter("claude-sonnet-4-5").count_tokens(text)  # offline: flagged
    assert claude.source == "estimated" and claude.model == "anthropic/claude-sonnet-4-5"
    with pytest.raises(LLMException):
        TokenCounter().count_tokens(None, "gpt-4o")  # type: ignore[arg-type]


def test_usage_info_prices_with_response_cost() -> None:
    r = modelwire.Response(text="x", model="gpt-4o-mini", provider="openai",
                           usage=modelwire.Usage(1000, 500, 1500, source="reported"))
    info = UsageInfo.from_response(r)
    assert info.estimated_cost == r.cost.total and (info.estimated_cost or 0) > 0
    assert "genai-prices" in (info.cost_note or "") and "reported" in (info.cost_note or "")
    unpriced = modelwire.Response(text="x", model="no-such-model-9", provider="openai",
                                  usage=modelwire.Usage(10, 5, 15, source="reported"))
    u = UsageInfo.from_response(unpriced)
    assert u.estimated_cost is None and "no price" in (u.cost_note or "")
    none = modelwire.Response(text="x", model="gpt-4o-mini", provider="openai")
    n = UsageInfo.from_response(none)
    assert n.estimated_cost is None and "no usage" in (n.cost_note or "")


def test_metrics_collector_records_calls_errors_and_events() -> None:
    metrics = MetricsCollector()
    with LLMCommunication("mock", metrics=metrics, max_retries=1,
                          retry_handler=RetryHandler(1, 0.0, 0.0, 0.0)) as c:
        c.client.mock.script(MockReply(status=500), MockReply("ok", usage=(3, 1)))
        c.generate_text("q")
        c.client.mock.script(MockReply(status=400))
        with pytest.raises(LLMException):
            c.generate_text("q")
    snap = metrics.snapshot()
    assert snap["requests"] == 2 and snap["errors"] == {"BadRequestError": 1}
    assert snap["events"] == {"retries": 1}
    assert snap["tokens"] == {"input/reported": 3, "output/reported": 1}
    assert snap["by_provider"] == {"mock": 1} and snap["latency"]["count"] == 1
    assert snap["cost_usd"] == 0.0 and snap["models"]["mock/echo"]["retries"] == 1
    # the same numbers modelwire's own metrics hold: one collector, counted once
    assert c.client.aio.metrics is metrics.collector
    assert metrics.collector.snapshot()["totals"]["calls"] == 2
    metrics.reset()
    assert metrics.snapshot()["requests"] == 0


def test_metrics_collector_attaches_to_a_shared_clients_metrics() -> None:
    metrics = MetricsCollector()
    with modelwire.Client() as shared:
        with LLMCommunication("mock", client=shared, metrics=metrics) as c:
            c.generate_text("a b")
        shared.complete("mock/other", "direct")  # the shared client's calls all count
        snap = metrics.snapshot()
        assert snap["requests"] == 2 and snap["by_provider"] == {"mock": 2}
        with modelwire.Client(metrics=False) as bare, \
                pytest.raises(modelwire.ConfigurationError, match="metrics=False"):
            metrics.attach(bare)


def test_streaming_handler() -> None:
    seen: list[str] = []
    handler = StreamingHandler(on_chunk=seen.append)
    with modelwire.Client() as client:
        final = handler.handle(client.stream("mock/m", "red green blue"))
        assert seen == ["red", " green", " blue"] and final.content == "red green blue"
        client.mock.script(MockReply(status=401))
        with pytest.raises(AuthenticationException):
            list(handler.iter_text(client.stream("mock/m", "x", max_retries=0)))


# --- opt-in deprecation warnings --------------------------------------------------------


def _make_all() -> list[Any]:
    return [RetryHandler(), CircuitBreaker(), ResponseCache(), InputValidator(),
            TokenCounter(), MetricsCollector(), StreamingHandler(), ModelRegistry(),
            ProviderManager({})]


def test_no_deprecation_warnings_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELWIRE_COMPAT_WARNINGS", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _make_all()
        LLMCommunication("mock").close()


def test_deprecation_warnings_when_opted_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELWIRE_COMPAT_WARNINGS", "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LLMCommunication("mock").close()
        SimpleLLMService(provider="mock").close()
        LlmClientFactory().create_client("chat", "mock/m").close()
    # one warning per name the caller used (not for the compat objects built inside)
    assert [str(w.message).split()[0] for w in caught] == [
        "LLMCommunication", "SimpleLLMService", "LlmClientFactory"]
    assert all("docs/migration.md" in str(w.message) and w.filename == __file__
               for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _make_all()
    assert len([w for w in caught if issubclass(w.category, DeprecationWarning)]) == 9
    assert {w.filename for w in caught} == {__file__}  # they point at the caller's line
    monkeypatch.delenv("MODELWIRE_COMPAT_WARNINGS")
    enable_deprecation_warnings(True)
    try:
        with pytest.warns(DeprecationWarning, match="TokenCounter"):
            TokenCounter()
    finally:
        enable_deprecation_warnings(None)
