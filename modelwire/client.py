"""AsyncClient: resolve model ids, build a Call, run it through the middleware chain."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import endpoint, validate
from .config import Settings
from .errors import (
    ConfigurationError,
    InvalidMessageError,
    InvalidParameterError,
    MalformedResponseError,
)
from .hooks import Hooks, logger
from .pipeline import (
    CALL_OPTIONS,
    MAX_EVENT_BYTES,
    MAX_RESPONSE_BYTES,
    Call,
    Middleware,
    Next,
    Outcome,
    Target,
    Timeouts,
    chain,
)
from .registry import ProviderSpec, get_codec, get_spec
from .response import Embeddings, Response
from .streaming import StreamRequest
from .transports.base import Transport
from .types import Message, MessageLike, ToolLike, to_messages, to_tools

if TYPE_CHECKING:
    from .batch import BatchResult, OnResult, RequestLike
    from .conversation import AsyncConversation
    from .health import HealthReport
    from .model_client import AsyncModel
    from .observe.budget import BudgetMiddleware
    from .observe.metrics import MetricsCollector
    from .observe.tokens import TokenCount
    from .routes import AliasesLike, Routes
    from .tools.loop import ToolRunResult, ToolStream
    from .transports.mock import MockTransport

_announced_default = False


class AsyncClient:
    """The async original. ``Client`` (modelwire.sync) mirrors every method.

    Arguments override the environment: ``api_keys={"openai": ...}``,
    ``base_urls={"openai": ...}``, ``provider_options={"azure": {"api_version": ...}}``.
    ``timeout`` is seconds for the whole call or a :class:`Timeouts`.
    ``middleware=None`` gives the default resilience chain; pass ``[]`` for none.
    ``aliases={"fast": ["groq/...", "together/..."]}`` names model routes (see
    :mod:`modelwire.routes`); ``default_model`` is used when a call passes ``None``;
    ``config`` is the user config file's path, or False to ignore it (default: the
    platform location, read lazily on the first call; see :mod:`modelwire.userconfig`).
    ``max_response_bytes`` (default 64 MiB) bounds a ``complete()`` body (and a
    whole stream) and
    ``max_event_bytes`` (default 16 MiB) one event of a stream: past either the
    connection is closed and :class:`~modelwire.errors.ResponseTooLargeError` raised.
    """

    def __init__(
        self,
        *,
        api_keys: Mapping[str, str] | None = None,
        base_urls: Mapping[str, str] | None = None,
        provider_options: Mapping[str, Mapping[str, Any]] | None = None,
        timeout: Timeouts | float | None = None,
        max_retries: int = 2,
        fallbacks: Sequence[str] | None = None,
        middleware: Sequence[Middleware] | None = None,
        transport: Transport | None = None,
        env: Mapping[str, str] | None = None,
        aliases: AliasesLike | None = None,
        default_model: str | None = None,
        config: str | os.PathLike[str] | bool | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_event_bytes: int = MAX_EVENT_BYTES,
        **resilience: Any,
    ) -> None:
        self.max_response_bytes = validate.byte_limit("max_response_bytes", max_response_bytes)
        self.max_event_bytes = validate.byte_limit("max_event_bytes", max_event_bytes)
        validate.settings_map("api_keys", api_keys, str, "{'openai': 'sk-...'}")
        validate.settings_map("base_urls", base_urls, str, "{'openai': 'https://...'}")
        validate.settings_map("provider_options", provider_options, Mapping,
                              "{'azure': {'api_version': '...'}}")
        validate.settings_map("env", env, str, "os.environ")
        if default_model is not None and not isinstance(default_model, str):
            raise InvalidParameterError(
                f"default_model must be a model id string, got {type(default_model).__name__}")
        if middleware is not None and (isinstance(middleware, (str, bytes)) or not all(
                callable(m) for m in middleware)):
            raise InvalidParameterError(
                "middleware must be a list of middleware (callables taking call and next), "
                "or None for the default chain")
        self.settings = Settings(api_keys or {}, base_urls or {}, provider_options or {})
        self._aliases: Mapping[str, Sequence[str]] = {}
        if aliases is not None:
            from .routes import coerce_aliases  # lazily: keeps `import modelwire` lean
            self._aliases = coerce_aliases(aliases)
        self.default_model = default_model
        self._config_source = config
        self._routes: Routes | None = None  # built with the user config, on first use
        self._fallbacks_given = fallbacks is not None
        if env is not None:
            self.settings.env = env
        self.timeouts = Timeouts.coerce(timeout, Timeouts())
        validate.model_ids("fallbacks", fallbacks)
        self.max_retries = max_retries
        self.fallbacks = list(fallbacks or ())
        self._transport_override = transport
        self._transports: dict[str, Transport] = {}
        self.hooks = Hooks()  # default_middleware replaces it with the configured one
        self.metrics: MetricsCollector | None = None  # set by default_middleware (metrics=)
        self.budgets: BudgetMiddleware | None = None  # set by default_middleware (budget=)
        if middleware is None:
            from .middleware import default_middleware
            middleware = default_middleware(self, **resilience)
        self.middleware = list(middleware)
        self._run: Next = chain(self.middleware, self._terminal)

    def __repr__(self) -> str:
        return f"<AsyncClient middleware={[type(m).__name__ for m in self.middleware]}>"

    # --- plumbing -----------------------------------------------------------

    def transport_for(self, spec: ProviderSpec) -> Transport:
        kind = spec.transport
        if kind == "http" and self._transport_override is not None:
            return self._transport_override
        t = self._transports.get(kind)
        if t is None:
            if kind == "http":
                from .transports.http import HTTPTransport
                t = HTTPTransport()
            elif kind == "mock":
                from .transports.mock import MockTransport
                t = MockTransport()
            elif kind == "subprocess":
                from .transports.subprocess import SubprocessTransport
                t = SubprocessTransport(self.settings.provider_options(spec))
            else:
                from .transports.local import LocalTransport
                t = LocalTransport(self.settings.provider_options(spec))
            self._transports[kind] = t
        return t

    @property
    def mock(self) -> MockTransport:
        """Script the ``mock`` provider: ``client.mock.script(MockReply(...))``, ``.requests``."""
        from .transports.mock import MockTransport  # lazily: keeps `import modelwire` lean
        t = self.transport_for(get_spec("mock"))
        assert isinstance(t, MockTransport)
        return t

    def _terminal(self, call: Call) -> Awaitable[Outcome]:
        # A plain function returning the endpoint's coroutine: no frame of its own.
        spec = call.target.spec
        codec, transport = get_codec(spec), self.transport_for(spec)
        if call.stream:
            return endpoint.open_stream(call, codec, transport)
        if call.options and call.options.get("verb") == "count_tokens":
            return endpoint.count_tokens(call, codec, transport)
        if call.mode == "embed":
            return endpoint.embed(call, codec, transport)
        return endpoint.complete(call, codec, transport)

    @property
    def routes(self) -> Routes:
        """The alias table (client ``aliases=`` > user config file > built-ins)."""
        return self._routes or self._load_config()

    def _load_config(self) -> Routes:
        """Read the user config once (lazily) and fold it under the explicit arguments."""
        from . import userconfig
        from .routes import BUILTIN_ALIASES, Routes
        src = self._config_source
        user = userconfig.EMPTY if src is False else userconfig.load(
            None if src is None or src is True else Path(src))
        userconfig.merge_into(self.settings, user)
        if not self._fallbacks_given and user.fallbacks:
            self.fallbacks = list(user.fallbacks)
        self.default_model = self.default_model or user.default_model
        self._routes = Routes(self._aliases, user.aliases, BUILTIN_ALIASES)
        return self._routes

    def plan(self, model: str | None, prefer: str | None = None) -> list[Target]:
        """The targets a call to ``model`` would use, primary first (no traffic)."""
        global _announced_default
        routes = self._routes or self._load_config()
        if prefer is None and isinstance(model, str) and "/" in model:
            return [self.settings.resolve(model)]  # the common case: a plain id
        if model is None:
            model = self.default_model or self.settings.default_model()
            if model.startswith("local/") and not _announced_default:
                _announced_default = True
                # A warning on the "modelwire" logger: printed on stderr when logging is
                # not configured; logging.getLogger("modelwire").setLevel("ERROR") hides it.
                logger.warning("modelwire: no provider key set; using %s (embedded local model)",
                               model)
        return routes.plan(self.settings, model, prefer)

    def resolve(self, model: str | None) -> Target:
        return self.plan(model)[0]

    def model(self, name: str) -> AsyncModel:
        """A client for one model (an alias or an id): ``.complete``, ``.stream``,
        ``.set_provider(...)`` to move it to another of its routes."""
        from .model_client import AsyncModel
        return AsyncModel(self, name)

    def build_call(
        self,
        model: str | None,
        messages: Iterable[MessageLike] | str | None,
        *,
        stream: bool = False,
        prompt: str | None = None,
        tools: Iterable[ToolLike] | None = None,
        tool_choice: Any = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: str | Sequence[str] | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        timeout: Timeouts | float | None = None,
        extra: Mapping[str, Any] | None = None,
        fallbacks: Sequence[str] | None = None,
        response_format: Any = None,
        **options: Any,
    ) -> Call:
        """Validate everything and resolve every target before any traffic."""
        unknown = sorted(set(options) - CALL_OPTIONS) if options else None
        if unknown == ["retries"]:  # complete() takes it; a stream cannot be repaired
            raise InvalidParameterError(
                "retries= (structured-output repair) works with complete(), not with a "
                "stream: the invalid answer has already been streamed to you")
        if unknown:
            raise validate.unknown_keywords(unknown, [*validate.KEYWORDS, *CALL_OPTIONS])
        if "breaker" in options and not isinstance(options["breaker"], bool):
            raise InvalidParameterError(
                f"breaker (per call) must be True or False, got {options['breaker']!r}")
        if options and options.get("cache") is not None:
            validate.cache_option(options["cache"], self.middleware)
        if fallbacks is not None:
            validate.model_ids("fallbacks", fallbacks)
        if options and "budget" in options and self.budgets is None:
            from .middleware import find
            from .observe.budget import BudgetMiddleware
            if find(self.middleware, BudgetMiddleware) is None:
                raise ConfigurationError(
                    "budget= per call needs the budget middleware, which a custom "
                    "middleware= list leaves out: add modelwire.observe.budget."
                    "BudgetMiddleware(...) to it, or use the default chain")
        targets = self.plan(model)
        if messages is None and prompt is None:
            raise InvalidMessageError("messages is None: pass a list of messages or a string")
        if prompt is not None and not isinstance(prompt, str):
            raise InvalidMessageError(f"prompt must be a string, got {type(prompt).__name__}")
        msgs: list[Message] = [] if messages is None else to_messages(messages)
        if temperature is not None or top_p is not None or max_tokens is not None \
                or seed is not None:
            validate.number("temperature", temperature, 0.0, 2.0)
            validate.number("top_p", top_p, 0.0, 1.0)
            validate.integer("max_tokens", max_tokens, 1, "a positive int")
            validate.integer("seed", seed, -2**63, "an int")
        stops = None if stop is None else validate.stop_sequences(stop)
        if extra is not None:
            validate.json_object("extra", extra)
            validate.extra_fields(extra, stream)
        if response_format is not None and prompt is not None:
            from .errors import UnsupportedFeatureError
            raise UnsupportedFeatureError(
                "response_format needs a chat call (complete/stream with messages), not a "
                "plain text completion")
        timeouts = self.timeouts if timeout is None else Timeouts.coerce(timeout, self.timeouts)
        chain_ids = self.fallbacks if fallbacks is None else fallbacks
        return Call(
            messages=msgs, target=targets[0], mode="text" if prompt is not None else "chat",
            prompt=prompt, stream=stream, tools=[] if tools is None else to_tools(tools),
            tool_choice=tool_choice,
            temperature=temperature, max_tokens=max_tokens, stop=stops,
            top_p=top_p, seed=seed, extra=extra, timeouts=timeouts,
            deadline=time.monotonic() + timeouts.total if timeouts.total else None,
            fallbacks=[*targets[1:], *(t for m in chain_ids for t in self.plan(m))]
            if chain_ids or len(targets) > 1 else (),
            options=options, max_response_bytes=self.max_response_bytes,
            max_event_bytes=self.max_event_bytes,
            response_format=None if response_format is None else _output_spec(response_format),
        )

    # --- public API ---------------------------------------------------------

    async def complete(self, model: str | None, messages: Iterable[MessageLike] | str,
                       **kwargs: Any) -> Response:
        """One normalized Response. See the README for every keyword.

        ``response_format=`` (a pydantic model, dataclass, TypedDict or JSON Schema
        dict) asks for structured output: ``Response.parsed`` holds the validated
        value; ``retries=N`` lets the model repair an answer that did not validate.
        """
        validate.fixed(kwargs, "complete", "stream", "prompt")
        if kwargs and ("response_format" in kwargs or "retries" in kwargs):
            from .structured import complete_structured
            return await complete_structured(self, model, messages, kwargs)
        outcome = await self._run(self.build_call(model, messages, **kwargs))
        assert isinstance(outcome, Response)
        return outcome

    def stream(self, model: str | None, messages: Iterable[MessageLike] | str,
               **kwargs: Any) -> StreamRequest:
        """``async with client.stream(...) as s: async for event in s: ...``"""
        validate.fixed(kwargs, "stream", "stream", "prompt")
        return StreamRequest(self, self.build_call(model, messages, stream=True, **kwargs))

    async def complete_text(self, model: str | None, prompt: str, **kwargs: Any) -> Response:
        """Plain text completion (the /v1/completions wire, or the local model)."""
        validate.fixed(kwargs, "complete_text", "stream", "prompt")
        outcome = await self._run(self.build_call(model, None, prompt=prompt, **kwargs))
        assert isinstance(outcome, Response)
        return outcome

    def stream_text(self, model: str | None, prompt: str, **kwargs: Any) -> StreamRequest:
        validate.fixed(kwargs, "stream_text", "stream", "prompt")
        return StreamRequest(self, self.build_call(model, None, prompt=prompt, stream=True,
                                                   **kwargs))

    async def batch(self, requests: Iterable[RequestLike], *, model: str | None = None,
                    concurrency: int = 16, on_result: OnResult | None = None
                    ) -> list[BatchResult]:
        """Run many requests (dicts: id, messages or prompt, model, options), at most
        ``concurrency`` at once through the whole chain (rate limits apply); one
        BatchResult per request, in input order, errors included.
        ``on_result(result)`` (sync or async) runs as each one finishes."""
        from .batch import run_batch
        return await run_batch(self, requests, model=model, concurrency=concurrency,
                               on_result=on_result)

    async def count_tokens(self, model: str | None,
                           messages: Iterable[MessageLike] | str | None = None,
                           *, text: str | None = None,
                           tools: Iterable[ToolLike] | None = None) -> TokenCount:
        """Input tokens of a prompt. Anthropic and Gemini count on their servers
        (``provenance="provider"``: one request through the same transport, retries,
        breaker and limits, never billed); every other model is counted offline by
        :func:`modelwire.count_tokens` (``exact`` or a flagged ``estimate``)."""
        from .observe.tokens import TokenCount, count_tokens, split_model
        if not isinstance(model, str) or "/" not in model:
            model = self.plan(model)[0].name  # an alias or the default, as complete() has it
        provider, _ = split_model(model)  # an offline count needs no key: no resolve()
        if not hasattr(get_codec(get_spec(provider)), "encode_count_tokens"):
            return count_tokens(model, messages, text=text, tools=tools)
        if messages is None and text is None:
            raise InvalidMessageError("count_tokens needs messages=... or text=...")
        call = self.build_call(model, messages if messages is not None else text,
                               tools=tools, fallbacks=[])
        call.options["verb"] = "count_tokens"
        # a separate, free endpoint: its failures must not open the model's breaker
        # (nor its success close it); retries and limits still apply
        call.options["breaker"] = False
        outcome = await self._run(call)
        assert isinstance(outcome, Response)
        how = "one user message" if messages is None else "the chat request"
        if outcome.usage.input_tokens is None:
            raise MalformedResponseError(f"{provider}'s count-tokens answer carried no count",
                                         provider=provider, model=model)
        return TokenCount(outcome.usage.input_tokens, "provider",
                          f"{provider} count-tokens endpoint ({how})", model)

    async def budget_status(self) -> dict[str, dict[str, float]]:
        """Spent so far in each client budget's current period: ``{name: {"usd": ...,
        "tokens": ...}}`` (empty without ``budget=``)."""
        return {} if self.budgets is None else await self.budgets.status()

    async def run_tools(self, model: str | None, messages: Iterable[MessageLike] | str, *,
                        tools: Sequence[ToolLike], max_turns: int = 10,
                        tool_timeout: float | None = None, parallel: bool = True,
                        **kwargs: Any) -> ToolRunResult:
        """Call the model, run the tools it asks for, send results back, repeat.

        See :mod:`modelwire.tools.loop`: ``.response``, ``.messages``, ``.steps``,
        ``.pending`` (calls awaiting approval; pass ``approved=[ids]`` to go on).
        """
        from .tools.loop import ToolLoop
        return await ToolLoop(self, model, messages, tools, max_turns=max_turns,
                              tool_timeout=tool_timeout, parallel=parallel, **kwargs).run()

    def stream_tools(self, model: str | None, messages: Iterable[MessageLike] | str, *,
                     tools: Sequence[ToolLike], **kwargs: Any) -> ToolStream:
        """``run_tools`` streamed: each turn's events, a ToolResultEvent as each tool
        finishes, then the next turn's events; ``.result`` at the end."""
        from .tools.loop import ToolLoop, ToolStream
        return ToolStream(ToolLoop(self, model, messages, tools, stream=True, **kwargs))

    async def embed(self, model: str | None, inputs: str | Sequence[str], *,
                    batch_size: int | None = None, **kwargs: Any) -> Embeddings:
        """One vector per input (OpenAI, Azure, Gemini, Mistral, OpenAI-compatible
        servers), batched within the provider's limits; ``extra=`` for fields such
        as ``dimensions``. Same errors, retries, limits and fallback as chat."""
        from .embeddings import embed
        return await embed(self, model, inputs, batch_size=batch_size, **kwargs)

    def conversation(self, model: str | None, *, system: str | None = None,
                     tools: Sequence[ToolLike] | None = None,
                     max_context_tokens: int | None = None, summarize_with: str | None = None,
                     **settings: Any) -> AsyncConversation:
        """A conversation that keeps its history (see :mod:`modelwire.conversation`)."""
        from .conversation import AsyncConversation
        return AsyncConversation(self, model, system=system, tools=tools,
                                 max_context_tokens=max_context_tokens,
                                 summarize_with=summarize_with, **settings)

    async def health_check(self, providers: Sequence[str] | None = None) -> list[HealthReport]:
        """Key present, reachable, latency and breaker state for every configured
        provider (or those named), by listing models: never spends tokens."""
        from .health import health_check
        self.routes  # noqa: B018 - loads the user config, which may hold keys
        return await health_check(self, providers)

    async def aclose(self) -> None:
        for t in list(self._transports.values()):
            await t.aclose()
        self._transports.clear()
        if self._transport_override is not None:
            await self._transport_override.aclose()

    async def close(self) -> None:
        """Same as :meth:`aclose`: release pooled connections and transports."""
        await self.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


def _output_spec(response_format: Any) -> Any:
    from .structured import output_spec  # lazily: pydantic only when asked for
    return output_spec(response_format)
